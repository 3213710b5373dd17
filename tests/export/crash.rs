//! kill -9 the exporter 5 times while it exports 1,000,000 delivery events
//! (about 95 s to produce them to tansu one record per batch, 85 s to
//! export them in a debug build; `SMSFLOW_EXPORT_CRASH_RECORDS` sets another
//! count)
//! from tansu, the `export` stage (`smsflow run --stage export`) first,
//! then the one-off command; then run the command to the end:
//! DuckDB counts every record once, and the manifests add up.
//!
//! tansu 0.6.0 answers a fetch that starts inside a produce batch with the
//! batches after it (tests/broker.rs), so a consumer resuming from a
//! committed offset in mid-batch would skip records: the events are
//! produced one record per batch (`batch.num.messages: 1`), as every test
//! that restarts consumers on tansu does.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use smsflow::bus::{AckGroup, Bus, Produce, TopicSpec};
use smsflow::schema;

use super::{common, event, read};
use crate::require_tools;

fn records() -> i64 {
    std::env::var("SMSFLOW_EXPORT_CRASH_RECORDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1_000_000)
}

/// Files of `flush_size` records: about ten per partition.
fn pipeline(brokers: &str, out: &Path, flush_size: i64) -> String {
    format!(
        "kafka:
  mode: kafka
  brokers: {brokers}
  group: crash
  producer:
    batch.num.messages: '1'
topics:
  partitions: 4
http:
  listen: 127.0.0.1:0
  admin:
    listen: 127.0.0.1:0
backends:
  - type: tester
routes:
  - app: echo
apps:
  - type: echo
export:
  dir: {}
  flush_size: {flush_size}
  rotate_interval: 1h
  topics: [sms.events]
shutdown_timeout: 5s
",
        out.display()
    )
}

/// Lines in the manifests so far, and the records they list.
fn manifest(out: &Path) -> (usize, u64) {
    let Ok(files) = std::fs::read_dir(out.join("_manifest")) else {
        return (0, 0);
    };
    let mut lines = 0;
    let mut records = 0;
    for f in files {
        let path = f.unwrap().path();
        if path.extension().is_some_and(|e| e == "jsonl") {
            for line in std::fs::read_to_string(&path).unwrap().lines() {
                let e: serde_json::Value = serde_json::from_str(line).unwrap();
                lines += 1;
                records += e["records"].as_u64().unwrap();
            }
        }
    }
    (lines, records)
}

/// A child process, killed if the test ends first (a failed assertion).
struct Process(Child);

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn smsflow(args: &[&str], log: &Path) -> Process {
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)
        .unwrap();
    Command::new(env!("CARGO_BIN_EXE_smsflow"))
        .args(args)
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .map(Process)
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_five_times_during_the_export_exports_each_record_once() {
    require_tools!(common::Tool::Tansu, common::Tool::PythonAnalytics);
    let n = records();
    let broker = common::broker::Broker::start();
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    let file = dir.path().join("pipeline.yaml");
    std::fs::write(&file, pipeline(&broker.brokers(), &out, n / 40)).unwrap();
    let p = smsflow::topology::load_file(&file).unwrap();

    let started = Instant::now();
    let topic = TopicSpec {
        name: "sms.events".into(),
        partitions: 4,
        replication: 1,
        compacted: false,
        retention: None,
    };
    let bus = Bus::connect(&p.kafka, &[topic]).await.unwrap();
    // Several producers at once: one record per batch leaves each little
    // to do per request.
    let producers: i64 = 4;
    let mut tasks = Vec::new();
    for k in 0..producers {
        let producer = bus.producer().unwrap();
        tasks.push(tokio::spawn(async move {
            let acks = AckGroup::new();
            let events: Arc<str> = Arc::from("sms.events");
            for i in (k..n).step_by(producers as usize) {
                let mut e = event(i);
                // A million events in one day: 50 ms apart.
                e.at = super::T0 + i * 50;
                let payload = schema::event().encode(&e).unwrap();
                let p = Produce::new(events.clone(), Bytes::from(e.connection.key()), payload);
                producer.send_in(p, Some(&acks)).await.unwrap();
            }
            acks.wait().await.unwrap();
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let produced = started.elapsed();
    println!("produced {n} events to tansu in {produced:.1?}");

    let log = dir.path().join("smsflow.log");
    let pipeline = file.to_str().unwrap();
    let out_dir = out.to_str().unwrap();
    let mut kills = Vec::new();
    for k in 0..5 {
        let before = manifest(&out).0;
        // The stage first, then the command. (A stage member started
        // after one was killed waits on tansu 0.6.0 for the group to
        // hand it partitions again, longer than this test should.)
        let mut child = match k {
            0 => smsflow(&["run", pipeline, "--stage", "export"], &log),
            _ => smsflow(&["export", pipeline, "--out", out_dir], &log),
        };
        // Kill once the run has closed a file, at a random point after.
        let deadline = Instant::now() + Duration::from_secs(120);
        while manifest(&out).0 == before {
            assert!(
                child.0.try_wait().unwrap().is_none(),
                "the exporter stopped before it was killed:\n{}",
                std::fs::read_to_string(&log).unwrap_or_default()
            );
            assert!(
                Instant::now() < deadline,
                "no file closed in 120 s:\n{}",
                std::fs::read_to_string(&log).unwrap_or_default()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        tokio::time::sleep(Duration::from_millis(fastrand::u64(0..400))).await;
        child.0.kill().unwrap(); // SIGKILL
        child.0.wait().unwrap();
        kills.push(manifest(&out));
    }
    println!("after each kill -9, (files, records) in the manifests: {kills:?}");
    assert!(
        kills.last().unwrap().1 < n as u64,
        "the last kill came after the end: choose more records"
    );
    let last = Instant::now();
    let mut last_run = smsflow(&["export", pipeline, "--out", out_dir], &log);
    let status = last_run.0.wait().unwrap();
    assert!(
        status.success(),
        "{}",
        std::fs::read_to_string(&log).unwrap_or_default()
    );
    println!(
        "the last run took {:.1?}; all runs {:.1?}",
        last.elapsed(),
        started.elapsed() - produced
    );
    let counts = read("count", &out);
    assert_eq!(
        counts,
        serde_json::json!([n, n]),
        "count(*), count(distinct message_id)"
    );
    assert_eq!(
        manifest(&out).1,
        n as u64,
        "the manifests list every record once"
    );
    // No temporary file is left.
    let leftovers: Vec<_> = walk(&out)
        .into_iter()
        .filter(|p| p.to_string_lossy().ends_with(".tmp"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
}

fn walk(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            out.extend(walk(&p));
        } else {
            out.push(p);
        }
    }
    out
}
