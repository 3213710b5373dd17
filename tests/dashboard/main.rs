//! The dashboard and `/api/stats` over fixture records of `sms.stats`
//! written to the embedded bus (encoded with `schema::stats()`, as the
//! analytics stage writes them): the JSON API sums source partitions,
//! replaces a record by its successor, merges histograms and names each
//! bad parameter (`api`); the page in headless Chromium shows the numbers
//! in its charts and tables and follows new records by reloading itself
//! (`browser`).

use std::sync::Arc;

use smsflow::bus::Produce;
use smsflow::message::{now_millis, Latency, Stats, StatsDimension, StatsWindow};
use smsflow::topology::Running;

mod api;
mod browser;
#[path = "../common/mod.rs"]
mod common;
#[allow(dead_code)]
#[path = "../campaigns_browser/driver.rs"]
mod driver;

/// The minute `back` minutes before the current one.
fn minute(back: i64) -> i64 {
    StatsWindow::Minute.start_of(now_millis()) - back * 60_000
}

/// A histogram of `n` latencies of `ms`.
fn latencies(n: i64, ms: i64) -> Latency {
    let mut l = Latency::default();
    for _ in 0..n {
        l.record(ms);
    }
    l
}

/// A record of minute `start` for `dimension` = `value`, as far as
/// partition `partition` of `sms.events` goes: `inbound` in, `sent` sent
/// (out) at `send_ms` each, half of them delivered at `deliver_ms`, one
/// failed.
#[allow(clippy::too_many_arguments)]
fn record(
    start: i64,
    dimension: StatsDimension,
    value: &str,
    partition: i32,
    inbound: i64,
    sent: i64,
    send_ms: i64,
    deliver_ms: i64,
) -> Stats {
    Stats {
        window: StatsWindow::Minute,
        start,
        dimension,
        value: value.into(),
        topic: "sms.events".into(),
        partition,
        through_offset: inbound + sent,
        inbound,
        outbound: sent + 1,
        queued: 0,
        sent,
        delivered: sent / 2,
        failed: 1,
        expired: 0,
        suppressed: 0,
        segments: sent,
        accepted_to_sent: latencies(sent, send_ms),
        sent_to_delivered: latencies(sent / 2, deliver_ms),
        closed: false,
        updated_at: now_millis(),
    }
}

/// Write `records` to the pipeline's `sms.stats`, keyed as the analytics
/// stage keys them.
async fn write(running: &Running, records: &[Stats]) {
    let producer = running.bus().producer().unwrap();
    let topic: Arc<str> = Arc::from("sms.stats");
    for r in records {
        let payload = smsflow::schema::stats().encode(r).unwrap();
        producer
            .send_and_wait(Produce::new(topic.clone(), r.key(), payload))
            .await
            .unwrap();
    }
}
