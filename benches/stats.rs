//! The statistics' throughput, in records per second:
//!
//! - `aggregate`: [`Aggregator::record`] alone, over decoded delivery
//!   events (3 windows × 4 dimension values each), with a flush every
//!   1,024 records as the stage does;
//! - `decode+aggregate`: the stage's work per record without the bus:
//!   Avro decode, observe, count, and the flushed records encoded;
//! - `stage`: the `analytics` stage of a pipeline on the embedded bus,
//!   from the first record written to `sms.events` until the stage has
//!   read them all (writing `sms.stats` as it goes).
//!
//! ```text
//! cargo bench --bench stats                    # 500,000 records
//! cargo bench --bench stats -- --records 100000
//! ```
//!
//! Run by `cargo test --benches` (no `--bench` argument) it does 5,000 as a
//! smoke test: it fails when a count is wrong, never on a number.

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use smsflow::analytics::aggregate::Source;
use smsflow::analytics::{observe, Aggregator, Settings};
use smsflow::bus::Produce;
use smsflow::config::KafkaMode;
use smsflow::message::{
    Connection, DeliveryEvent, DeliveryStatus, OutboundMessage, StatsDimension, StatsWindow,
};
use smsflow::topology::Topology;

/// 2020-01-01T00:00:00Z.
const T0: i64 = 1_577_836_800_000;

/// `n` delivery events 10 ms of event time apart: sinks' `sent` and
/// reports' `delivered`, over 4 backends, 3 apps and 2 campaigns.
fn events(n: usize) -> Vec<DeliveryEvent> {
    (0..n)
        .map(|i| {
            let mut m = OutboundMessage::new(
                Connection::new(format!("gw{}", i % 4), format!("+1555{:06}", i % 5000)),
                "hi",
            );
            m.app = Some(format!("app{}", i % 3));
            m.campaign_id = (i % 2 == 0).then(|| format!("c{}", i % 4));
            m.segments = 1;
            m.created_at = T0 + i as i64 * 10 - 50;
            let report = i % 2 == 1;
            let status = if report {
                DeliveryStatus::Delivered
            } else {
                DeliveryStatus::Sent
            };
            let mut e = DeliveryEvent::now(&m, status);
            e.at = T0 + i as i64 * 10;
            e.report = report;
            e.sent_at = e.at - 500;
            e
        })
        .collect()
}

fn settings() -> Settings {
    Settings {
        windows: vec![StatsWindow::Minute, StatsWindow::Hour, StatsWindow::Day],
        grace_ms: 300_000,
    }
}

/// Records per second of `n` records in `took`.
fn rate(n: usize, took: Duration) -> f64 {
    n as f64 / took.as_secs_f64().max(1e-9)
}

/// The aggregator alone: records/s, and the day's total sent it counted.
pub fn aggregate(events: &[DeliveryEvent]) -> (f64, i64) {
    let source: Source = (Arc::from("sms.events"), 0);
    let mut agg = Aggregator::new(settings());
    let mut written = Vec::new();
    let started = Instant::now();
    for (offset, e) in events.iter().enumerate() {
        agg.record(&source, offset as i64, &observe::event(e));
        if offset % 1024 == 1023 {
            written.extend(agg.flush(0));
        }
    }
    written.extend(agg.flush(0));
    let took = started.elapsed();
    (rate(events.len(), took), day_total_sent(&written))
}

/// Decode, observe, count, encode what is flushed: records/s.
pub fn decode_and_aggregate(payloads: &[Vec<u8>]) -> (f64, i64) {
    let source: Source = (Arc::from("sms.events"), 0);
    let mut agg = Aggregator::new(settings());
    let mut latest = Vec::new();
    let mut bytes = 0usize;
    let started = Instant::now();
    for (offset, p) in payloads.iter().enumerate() {
        let e = smsflow::schema::event()
            .decode(p)
            .expect("the bench's events decode");
        agg.record(&source, offset as i64, &observe::event(&e));
        if offset % 1024 == 1023 || offset + 1 == payloads.len() {
            for s in agg.flush(0) {
                bytes += smsflow::schema::stats()
                    .encode(&s)
                    .expect("stats encode")
                    .len();
                latest.push(s);
            }
        }
    }
    let took = started.elapsed();
    assert!(bytes > 0);
    (rate(payloads.len(), took), day_total_sent(&latest))
}

/// The latest day-total `sent` of `written` (one source partition).
fn day_total_sent(written: &[smsflow::message::Stats]) -> i64 {
    written
        .iter()
        .filter(|s| s.window == StatsWindow::Day && s.dimension == StatsDimension::Total)
        .max_by_key(|s| s.through_offset)
        .map_or(0, |s| s.sent)
}

const PIPELINE: &str = "
kafka: embedded
backends:
  - type: tester
routes:
  - app: echo
apps:
  - type: echo
analytics:
  flush: 1s
";

/// The stage on the embedded bus: records/s from the first write to the
/// last record read by the stage.
pub async fn stage(payloads: &[Vec<u8>]) -> f64 {
    let p = smsflow::topology::load_str(PIPELINE, &|_| None).expect("the bench's pipeline");
    let mut p = p;
    p.kafka = smsflow::config::Kafka::with_mode(KafkaMode::Embedded);
    let running = Topology::new(p).unwrap().start(None, false).await.unwrap();
    let received = smsflow::metrics::metrics()
        .received
        .with_label_values(&["analytics"]);
    let before = received.get();
    let producer = running.bus().producer().unwrap();
    let topic: Arc<str> = Arc::from("sms.events");
    let started = Instant::now();
    for (i, p) in payloads.iter().enumerate() {
        let key = Bytes::from(format!("gw{}:+1555{:06}", i % 4, i % 5000));
        producer
            .send(Produce::new(topic.clone(), key, p.clone()))
            .await
            .unwrap();
    }
    let want = before + payloads.len() as u64;
    while received.get() < want {
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    let took = started.elapsed();
    running.shutdown().await.unwrap();
    rate(payloads.len(), took)
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let bench = args.iter().any(|a| a == "--bench");
    let records = args
        .iter()
        .position(|a| a == "--records")
        .and_then(|i| args.get(i + 1))
        .and_then(|n| n.parse().ok())
        .unwrap_or(if bench { 500_000 } else { 5_000 });
    let events = events(records);
    let sent = events.iter().filter(|e| !e.report).count() as i64;
    let payloads: Vec<Vec<u8>> = events
        .iter()
        .map(|e| smsflow::schema::event().encode(e).unwrap())
        .collect();

    let (per_s, counted) = aggregate(&events);
    assert_eq!(counted, sent, "the aggregator counted every sent");
    println!("aggregate         {records} records: {per_s:>12.0} records/s");
    let (per_s, counted) = decode_and_aggregate(&payloads);
    assert_eq!(counted, sent, "decode+aggregate counted every sent");
    println!("decode+aggregate  {records} records: {per_s:>12.0} records/s");
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let per_s = runtime.block_on(stage(&payloads));
    println!("stage (embedded)  {records} records: {per_s:>12.0} records/s");
}
