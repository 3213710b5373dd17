//! `smsflow export` and the `export` stage, checked with the tools users
//! read the files with (DuckDB, pyarrow, pandas, chDB, fastavro: see
//! tests/helpers/export_read.py), never with smsflow's own decoding.
//!
//! - readers: both formats and codecs, read by every tool, counts and
//!   values equal to what was produced, types as documented;
//! - stage: the continuous stage rotates by time and by records and
//!   dead-letters poison;
//! - config: a bad `export:` section is refused, naming the field;
//! - crash: kill -9 the exporter 5 times during the export on tansu.

#[path = "../common/mod.rs"]
mod common;

mod config;
mod crash;
mod readers;
mod stage;

use std::path::Path;
use std::process::Command;

use smsflow::message::{Connection, DeliveryEvent, DeliveryStatus};

/// 2026-03-02T00:00:00Z.
pub const T0: i64 = 1_772_409_600_000;

const STATUSES: [DeliveryStatus; 4] = [
    DeliveryStatus::Sent,
    DeliveryStatus::Delivered,
    DeliveryStatus::Failed,
    DeliveryStatus::Queued,
];

/// The `i`th test event: a status cycling sent/delivered/failed/queued, a
/// minute apart from T0, a provider id on even ones, a campaign on every
/// third.
pub fn event(i: i64) -> DeliveryEvent {
    DeliveryEvent {
        message_id: format!("m{i}"),
        connection: Connection::new(
            ["tester", "kannel"][(i % 2) as usize],
            format!("+2547{i:08}"),
        ),
        status: STATUSES[(i % 4) as usize],
        at: T0 + i * 60_000,
        provider_id: (i % 2 == 0).then(|| format!("p{i}")),
        error: None,
        provider_status: None,
        campaign_id: (i % 3 == 0).then(|| "c1".to_owned()),
        segments: (i % 4) as i32,
        app: (i % 5 == 0).then(|| "echo".to_owned()),
        accepted_at: T0 + i * 60_000 - 1_000,
        sent_at: 0,
        report: i % 4 == 1,
    }
}

/// Run tests/helpers/export_read.py `what` on `dir`: its JSON.
pub fn read(what: &str, dir: &Path) -> serde_json::Value {
    let out = Command::new(common::Tool::PythonAnalytics.path())
        .arg(common::root().join("tests/helpers/export_read.py"))
        .arg(what)
        .arg(dir)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "export_read.py {what} failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "export_read.py printed no JSON ({e}):\n{}",
            String::from_utf8_lossy(&out.stdout)
        )
    })
}
