//! The oracle: the statistics of 3,000 records (inbound messages, sinks'
//! `sent`, delivery reports; explicit times over 7.5 minutes) equal DuckDB
//! SQL over the Parquet export of the same topics, window by window
//! (`tests/helpers/analytics_oracle.py`), counts and latency sums alike.
//!
//! On tansu: the `analytics` stage runs in this process; `smsflow export`
//! writes `sms.inbound` and `sms.events` to Parquet once the stage has
//! counted everything.

use std::collections::BTreeMap;
use std::process::Command;
use std::time::{Duration, Instant};

use smsflow::bus::Bus;
use smsflow::message::{StatsDimension, StatsWindow};
use smsflow::topology::Topology;

use super::replicas::record;
use super::{common, Latest};
use crate::require_tools;

const YAML: &str = r#"
kafka:
  mode: kafka
  brokers: ${BROKERS}
  group: analytics-oracle
  producer:
    batch.num.messages: '1'
topics:
  partitions: 3
backends:
  - type: tester
    name: gw
routes:
  - app: echo
apps:
  - type: echo
analytics:
  flush: 200ms
"#;

const RECORDS: i64 = 3_000;

/// The fields both sides give, per (window, start, dimension, value).
type Row = BTreeMap<&'static str, i64>;
type Cell = (String, i64, String, String);

fn from_stats(latest: &Latest) -> BTreeMap<Cell, Row> {
    let mut out: BTreeMap<Cell, Row> = BTreeMap::new();
    for s in latest.records.values() {
        let row = out
            .entry((
                s.window.name().to_owned(),
                s.start,
                s.dimension.name().to_owned(),
                s.value.clone(),
            ))
            .or_default();
        for (k, v) in [
            ("inbound", s.inbound),
            ("outbound", s.outbound),
            ("queued", s.queued),
            ("sent", s.sent),
            ("delivered", s.delivered),
            ("failed", s.failed),
            ("expired", s.expired),
            ("suppressed", s.suppressed),
            ("segments", s.segments),
            ("a2s_count", s.accepted_to_sent.count),
            ("a2s_sum", s.accepted_to_sent.sum_ms),
            ("s2d_count", s.sent_to_delivered.count),
            ("s2d_sum", s.sent_to_delivered.sum_ms),
        ] {
            *row.entry(k).or_default() += v;
        }
    }
    out
}

fn from_oracle(json_lines: &str) -> BTreeMap<Cell, Row> {
    let mut out = BTreeMap::new();
    for line in json_lines.lines().filter(|l| !l.trim().is_empty()) {
        let v: serde_json::Value =
            serde_json::from_str(line).expect("the oracle prints JSON lines");
        let text = |k: &str| v[k].as_str().unwrap_or_default().to_owned();
        let mut row = Row::new();
        for k in [
            "inbound",
            "outbound",
            "queued",
            "sent",
            "delivered",
            "failed",
            "expired",
            "suppressed",
            "segments",
            "a2s_count",
            "a2s_sum",
            "s2d_count",
            "s2d_sum",
        ] {
            row.insert(k, v[k].as_i64().unwrap_or_else(|| panic!("{k} in {line}")));
        }
        let cell = (
            text("window"),
            v["start"].as_i64().unwrap(),
            text("dimension"),
            text("value"),
        );
        out.insert(cell, row);
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stats_equal_duckdb_sql_over_the_parquet_export_window_by_window() {
    require_tools!(common::Tool::Tansu, common::Tool::PythonAnalytics);
    let broker = common::broker::Broker::start();
    let dir = tempfile::tempdir().unwrap();
    let yaml = YAML.replace("${BROKERS}", &broker.brokers());
    let file = dir.path().join("pipeline.yaml");
    std::fs::write(&file, &yaml).unwrap();
    let p = smsflow::topology::load_str(&yaml, &|_| None).unwrap();
    let topics = Topology::new(p.clone()).unwrap().topics();
    let bus = Bus::connect(&p.kafka, &topics).await.unwrap();
    let producer = bus.producer().unwrap();
    let running = Topology::new(p)
        .unwrap()
        .start(Some("analytics"), false)
        .await
        .unwrap();

    let mut want = BTreeMap::new();
    for i in 0..RECORDS {
        producer.send_and_wait(record(i, &mut want)).await.unwrap();
    }
    let mut stats = bus
        .consumer(
            &format!("test.{}", smsflow::message::new_id()),
            &["sms.stats"],
        )
        .unwrap();
    let mut latest = Latest::default();
    let deadline = Instant::now() + Duration::from_secs(60);
    while Instant::now() < deadline {
        latest.read(&mut stats, Duration::from_millis(500)).await;
        if latest.summed() == want {
            break;
        }
    }
    assert_eq!(latest.summed(), want, "the stage counted every record");
    running.shutdown().await.unwrap();

    let out = dir.path().join("export");
    let export = Command::new(env!("CARGO_BIN_EXE_smsflow"))
        .arg("export")
        .arg(&file)
        .args([
            "--topic",
            "sms.inbound",
            "--topic",
            "sms.events",
            "--format",
            "parquet",
        ])
        .arg("--out")
        .arg(&out)
        .output()
        .unwrap();
    assert!(
        export.status.success(),
        "smsflow export: {}",
        String::from_utf8_lossy(&export.stderr)
    );
    let oracle = Command::new(common::Tool::PythonAnalytics.path())
        .arg(common::root().join("tests/helpers/analytics_oracle.py"))
        .arg(&out)
        .output()
        .unwrap();
    assert!(
        oracle.status.success(),
        "the oracle: {}",
        String::from_utf8_lossy(&oracle.stderr)
    );
    let sql = from_oracle(&String::from_utf8_lossy(&oracle.stdout));
    let got = from_stats(&latest);
    let day_total = (
        "day".to_owned(),
        StatsWindow::Day.start_of(super::T0),
        StatsDimension::Total.name().to_owned(),
        String::new(),
    );
    assert!(sql[&day_total]["inbound"] > 0 && sql[&day_total]["a2s_count"] > 0);
    let differ: Vec<String> = sql
        .iter()
        .filter(|(cell, row)| got.get(*cell) != Some(*row))
        .map(|(cell, row)| format!("{cell:?}: SQL {row:?}, sms.stats {:?}", got.get(cell)))
        .chain(
            got.keys()
                .filter(|c| !sql.contains_key(*c))
                .map(|c| format!("{c:?}: only in sms.stats")),
        )
        .take(10)
        .collect();
    assert!(
        differ.is_empty(),
        "sms.stats differs from DuckDB SQL: {differ:#?}"
    );
    assert_eq!(got.len(), sql.len());
}
