//! The continuous `export` stage: files close by records and by time, and a
//! record of no known schema goes to the dead-letter topic while the rest is
//! exported.

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use smsflow::bus::Produce;
use smsflow::config::KafkaMode;
use smsflow::schema;
use smsflow::topology::Topology;

use super::{common, event};

/// Every manifest line under `dir`: (first, last, records) by partition file.
fn manifest(dir: &std::path::Path) -> Vec<(i64, i64, u64)> {
    let mut out = Vec::new();
    let Ok(files) = std::fs::read_dir(dir.join("_manifest")) else {
        return out;
    };
    for f in files {
        let path = f.unwrap().path();
        if path.extension().is_some_and(|e| e == "jsonl") {
            for line in std::fs::read_to_string(&path).unwrap().lines() {
                let e: serde_json::Value = serde_json::from_str(line).unwrap();
                out.push((
                    e["first_offset"].as_i64().unwrap(),
                    e["last_offset"].as_i64().unwrap(),
                    e["records"].as_u64().unwrap(),
                ));
            }
        }
    }
    out.sort();
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn files_close_by_records_and_by_time_and_poison_is_dead_lettered() {
    let dir = tempfile::tempdir().unwrap();
    let yaml = format!(
        "backends:\n  - type: tester\nroutes:\n  - app: echo\napps:\n  - type: echo\nexport:\n  dir: {}\n  format: avro\n  flush_size: 4\n  rotate_interval: 1s\n  topics: [sms.events]\n",
        dir.path().display()
    );
    let p = common::pipeline_from(&yaml, KafkaMode::Embedded);
    // The counters are the process's: other tests of this binary add to them.
    let m = smsflow::export::metrics::export_metrics();
    let count = |c: &prometheus::IntCounterVec| c.with_label_values(&["sms.events"]).get();
    let (poison, records, files) = (count(&m.poison), count(&m.records), count(&m.files));
    let running = Topology::new(p).unwrap().start(None, false).await.unwrap();
    let mut dlq = running.bus().consumer("test.dlq", &["sms.dlq"]).unwrap();
    let producer = running.bus().producer().unwrap();
    let topic: Arc<str> = Arc::from("sms.events");
    // One key: one partition, offsets 0..=10, the poison at offset 5.
    let key = Bytes::from_static(b"tester:+254700000001");
    for i in 0..11 {
        let payload = match i {
            5 => Bytes::from_static(b"{\"not\": \"avro\"}"),
            i if i < 5 => schema::event().encode(&event(i)).unwrap().into(),
            i => schema::event().encode(&event(i - 1)).unwrap().into(),
        };
        producer
            .send(Produce::new(topic.clone(), key.clone(), payload))
            .await
            .unwrap();
    }
    // Two files by records (the poison left out of the second), the last
    // two records closed by time.
    let deadline = Instant::now() + Duration::from_secs(30);
    while manifest(dir.path()).len() < 3 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(manifest(dir.path()), [(0, 3, 4), (4, 8, 4), (9, 10, 2)]);
    // The status table, which follows sms.events too, dead-letters it as well.
    let letter = loop {
        let letter = tokio::time::timeout(Duration::from_secs(10), dlq.recv())
            .await
            .expect("the export stage's dead letter")
            .unwrap();
        if letter.header("smsflow.stage") == Some(&b"export"[..]) {
            break letter;
        }
    };
    assert_eq!(&letter.payload[..], b"{\"not\": \"avro\"}");
    assert_eq!(letter.header("smsflow.stage"), Some(&b"export"[..]));
    assert_eq!(
        letter.header("smsflow.source.topic"),
        Some(&b"sms.events"[..])
    );
    assert_eq!(letter.header("smsflow.source.offset"), Some(&b"5"[..]));
    let m = smsflow::export::metrics::export_metrics();
    let count = |c: &prometheus::IntCounterVec| c.with_label_values(&["sms.events"]).get();
    assert_eq!(count(&m.poison) - poison, 1);
    assert_eq!(count(&m.records) - records, 10);
    assert_eq!(count(&m.files) - files, 3);
    running.shutdown().await.unwrap();
}
