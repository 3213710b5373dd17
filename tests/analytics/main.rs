//! The `analytics` stage end to end: the `sms.stats` records, summed over
//! source partitions, equal counts made independently from the records the
//! stage read, window by window.
//!
//! - `pipeline`: the embedded bus, the tester backend and the echo app
//!   (a keyword app): a few thousand inbound messages with explicit
//!   timestamps, their replies, and a late event counted in the metric.
//! - `config`: the `analytics:` section's defaults and errors.
//! - `replicas`: several `analytics` processes on tansu, one SIGKILLed and
//!   started again mid-run: every count still exact.
//! - `oracle`: the same counts from DuckDB SQL over `smsflow export`'s
//!   Parquet files (tests/helpers/analytics_oracle.py), window by window.

#[path = "../common/mod.rs"]
mod common;
#[path = "../campaign_faults/fleet.rs"]
#[allow(dead_code)]
mod fleet;

mod config;
mod oracle;
mod pipeline;
mod replicas;

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use smsflow::bus::Consumer;
use smsflow::message::{DeliveryEvent, DeliveryStatus, Stats, StatsDimension, StatsWindow};

/// 2020-01-01T00:00:00Z: inbound messages are stamped from here on.
pub const T0: i64 = 1_577_836_800_000;

/// One window of one dimension value.
pub type Cell = (StatsWindow, i64, StatsDimension, String);

/// The counts the tests compare.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counts {
    pub inbound: i64,
    pub outbound: i64,
    pub sent: i64,
    pub delivered: i64,
    pub failed: i64,
    pub segments: i64,
    /// Latencies recorded (accepted → sent).
    pub latencies: i64,
}

pub const WINDOWS: [StatsWindow; 3] = [StatsWindow::Minute, StatsWindow::Hour, StatsWindow::Day];

/// The expected counts of `at` under `dims`, added to `into`.
pub fn expect(
    into: &mut BTreeMap<Cell, Counts>,
    at: i64,
    dims: &[(StatsDimension, &str)],
    add: impl Fn(&mut Counts),
) {
    for w in WINDOWS {
        for (d, v) in dims {
            add(into
                .entry((w, w.start_of(at), *d, (*v).to_owned()))
                .or_default());
        }
    }
}

/// What one delivery event adds (the stage's definitions, written again).
pub fn expect_event(into: &mut BTreeMap<Cell, Counts>, e: &DeliveryEvent) {
    let mut dims = vec![
        (StatsDimension::Total, ""),
        (StatsDimension::Backend, e.connection.backend.as_str()),
    ];
    if let Some(app) = &e.app {
        dims.push((StatsDimension::App, app));
    }
    if let Some(c) = &e.campaign_id {
        dims.push((StatsDimension::Campaign, c));
    }
    expect(into, e.at, &dims, |c| match (e.report, e.status) {
        (false, DeliveryStatus::Sent) => {
            c.outbound += 1;
            c.sent += 1;
            c.segments += i64::from(e.segments);
            c.latencies += i64::from(e.accepted_at > 0);
        }
        (false, DeliveryStatus::Delivered) => {
            c.outbound += 1;
            c.sent += 1;
            c.delivered += 1;
            c.segments += i64::from(e.segments);
            c.latencies += i64::from(e.accepted_at > 0);
        }
        (false, DeliveryStatus::Failed) => {
            c.outbound += 1;
            c.failed += 1;
        }
        (true, DeliveryStatus::Delivered) => c.delivered += 1,
        (true, DeliveryStatus::Failed) => c.failed += 1,
        _ => {}
    });
}

/// The latest record per key of a compacted topic, as read so far.
#[derive(Default)]
pub struct Latest {
    pub records: HashMap<String, Stats>,
}

impl Latest {
    /// Read what `consumer` has, until it is quiet for `idle`.
    pub async fn read(&mut self, consumer: &mut Consumer, idle: Duration) {
        let codec = smsflow::schema::stats();
        while let Ok(Ok(r)) = tokio::time::timeout(idle, consumer.recv()).await {
            let s = codec.decode(&r.payload).expect("sms.stats records decode");
            self.records.insert(s.key(), s);
        }
    }

    /// Summed over source partitions (and source topics), per cell.
    pub fn summed(&self) -> BTreeMap<Cell, Counts> {
        let mut out: BTreeMap<Cell, Counts> = BTreeMap::new();
        for s in self.records.values() {
            let c = out
                .entry((s.window, s.start, s.dimension, s.value.clone()))
                .or_default();
            c.inbound += s.inbound;
            c.outbound += s.outbound;
            c.sent += s.sent;
            c.delivered += s.delivered;
            c.failed += s.failed;
            c.segments += s.segments;
            c.latencies += s.accepted_to_sent.count;
        }
        out
    }
}

/// The first cells where `got` and `want` differ, for a failure message.
pub fn differences(got: &BTreeMap<Cell, Counts>, want: &BTreeMap<Cell, Counts>) -> Vec<String> {
    let mut out = Vec::new();
    for (cell, w) in want {
        let g = got.get(cell).copied().unwrap_or_default();
        if g != *w {
            out.push(format!("{cell:?}: got {g:?}, want {w:?}"));
        }
    }
    for cell in got.keys().filter(|c| !want.contains_key(*c)) {
        out.push(format!("{cell:?}: got {:?}, want nothing", got[cell]));
    }
    out.truncate(10);
    out
}
