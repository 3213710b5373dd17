//! The durable bus's behaviour: order and partitions, restarts, backpressure,
//! retention and compaction, fsync, and one process per data_dir.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use super::DurableBus;
use crate::bus::murmur2::partition_for_key;
use crate::bus::record::{AckGroup, Produce, Record, TopicSpec};
use crate::config::{self, Fsync};

fn spec(name: &str, partitions: i32, compacted: bool) -> TopicSpec {
    TopicSpec {
        name: name.into(),
        partitions,
        replication: 1,
        compacted,
        retention: None,
    }
}

fn cfg(dir: &Path) -> config::Kafka {
    config::Kafka {
        data_dir: Some(dir.to_owned()),
        ..config::Kafka::with_mode(config::KafkaMode::Embedded)
    }
}

fn open(cfg: &config::Kafka) -> Arc<DurableBus> {
    Arc::new(DurableBus::open(cfg, &[spec("t", 4, false), spec("c", 2, true)]).unwrap())
}

fn rec(topic: &str, key: &str, n: usize) -> Produce {
    Produce::new(Arc::from(topic), key.to_owned(), n.to_string())
}

async fn put(bus: &DurableBus, r: Produce) {
    let ack = AckGroup::new();
    bus.produce(r, Some(&ack)).await.unwrap();
    ack.wait().await.unwrap();
}

async fn reopen(bus: Arc<DurableBus>, cfg: &config::Kafka) -> Arc<DurableBus> {
    let closed = bus.closed();
    drop(bus);
    closed.await;
    open(cfg)
}

fn n(r: &Record) -> usize {
    std::str::from_utf8(&r.payload).unwrap().parse().unwrap()
}

#[tokio::test]
async fn keeps_order_per_key_and_the_partition_kafka_would_use() {
    let dir = tempfile::tempdir().unwrap();
    let bus = open(&cfg(dir.path()));
    let mut c = bus.consumer("g", &["t"]).unwrap();
    for i in 0..50 {
        put(&bus, rec("t", &format!("k{}", i % 5), i)).await;
    }
    let mut last: HashMap<String, usize> = HashMap::new();
    for _ in 0..50 {
        let r = c.recv().await.unwrap();
        let key = r.key_str().to_owned();
        assert_eq!(r.partition, partition_for_key(key.as_bytes(), 4));
        assert!(last.insert(key, n(&r)).is_none_or(|prev| prev < n(&r)));
    }
    assert!(c.try_recv().is_none());
}

#[tokio::test]
async fn a_restart_resumes_each_group_at_its_committed_offset() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = cfg(dir.path());
    let bus = open(&cfg);
    let mut a = bus.consumer("a", &["t"]).unwrap();
    let _b = bus.consumer("b", &["t"]).unwrap();
    for i in 0..10 {
        put(&bus, rec("t", "k", i)).await;
    }
    let committer = a.committer();
    for _ in 0..4 {
        let r = a.recv().await.unwrap();
        committer.done(&r.topic, r.partition, r.offset);
    }
    // Read but not marked done: read again after the restart.
    a.recv().await.unwrap();
    drop((a, committer, _b));
    let bus = reopen(bus, &cfg).await;
    let mut a = bus.consumer("a", &["t"]).unwrap();
    let mut b = bus.consumer("b", &["t"]).unwrap();
    let got: Vec<usize> = (0..6).map(|_| n(&a.try_recv().unwrap().unwrap())).collect();
    assert_eq!(got, vec![4, 5, 6, 7, 8, 9]);
    assert!(a.try_recv().is_none());
    assert_eq!(
        n(&b.try_recv().unwrap().unwrap()),
        0,
        "b never marked anything done"
    );
    assert_eq!(bus.lag("a", "t"), 6);
    // New records after a restart get new offsets, never reused ones.
    put(&bus, rec("t", "k", 10)).await;
    let r = a.recv().await.unwrap();
    assert_eq!((n(&r), r.offset), (10, 10));
}

#[tokio::test]
async fn a_full_partition_makes_producers_wait_and_loses_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config::Kafka {
        partition_capacity: 3,
        ..cfg(dir.path())
    };
    let bus = open(&cfg);
    let mut c = bus.consumer("g", &["t"]).unwrap();
    let committer = c.committer();
    let producer = {
        let bus = bus.clone();
        tokio::spawn(async move {
            for i in 0..20 {
                bus.produce(rec("t", "same", i), None).await.unwrap();
            }
        })
    };
    for i in 0..20 {
        let r = c.recv().await.unwrap();
        assert_eq!(n(&r), i);
        // Never more than the capacity waiting for this group.
        assert!(bus.lag("g", "t") <= 3);
        committer.done("t", r.partition, r.offset);
    }
    producer.await.unwrap();
    assert_eq!(bus.lag("g", "t"), 0);
}

#[tokio::test]
async fn retention_deletes_only_what_every_group_is_done_with() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config::Kafka {
        retention: Duration::from_secs(3600),
        ..cfg(dir.path())
    };
    let bus = open(&cfg);
    let mut a = bus.consumer("a", &["t"]).unwrap();
    let mut b = bus.consumer("b", &["t"]).unwrap();
    for i in 0..10 {
        put(&bus, rec("t", "k", i)).await;
    }
    for _ in 0..6 {
        let r = a.recv().await.unwrap();
        a.committer().done(&r.topic, r.partition, r.offset);
    }
    for _ in 0..3 {
        let r = b.recv().await.unwrap();
        b.committer().done(&r.topic, r.partition, r.offset);
    }
    // Done by both, but not old yet.
    assert_eq!(bus.sweep().await.unwrap(), 0);
    let later = SystemTime::now() + Duration::from_secs(7200);
    assert_eq!(bus.sweep_at(later).await.unwrap(), 3, "b is done with 3");
    assert_eq!(bus.depth("t").unwrap(), 7);
    // b goes on reading where it was, and a reader starts at the oldest held.
    assert_eq!(n(&b.recv().await.unwrap()), 3);
    let mut reader = bus.reader("t").unwrap();
    assert_eq!(n(&reader.restore_next().unwrap().unwrap()), 3);
}

#[tokio::test]
async fn retention_records_caps_what_is_kept_once_read() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config::Kafka {
        retention_records: Some(2),
        ..cfg(dir.path())
    };
    let bus = open(&cfg);
    let mut a = bus.consumer("a", &["t"]).unwrap();
    for i in 0..10 {
        put(&bus, rec("t", "k", i)).await;
    }
    for _ in 0..5 {
        let r = a.recv().await.unwrap();
        a.committer().done(&r.topic, r.partition, r.offset);
    }
    // Only the 5 done records can go; the newest 2 are kept anyway.
    assert_eq!(bus.sweep().await.unwrap(), 5);
    for _ in 0..5 {
        let r = a.recv().await.unwrap();
        a.committer().done(&r.topic, r.partition, r.offset);
    }
    assert_eq!(bus.sweep().await.unwrap(), 3);
    assert_eq!(bus.depth("t").unwrap(), 2);
}

#[tokio::test]
async fn a_compacted_topic_keeps_each_keys_latest_record_across_restarts() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config::Kafka {
        retention: Duration::ZERO,
        ..cfg(dir.path())
    };
    let bus = open(&cfg);
    for i in 0..6 {
        put(&bus, rec("c", &format!("k{}", i % 2), i)).await;
    }
    assert_eq!(bus.sweep().await.unwrap(), 0, "nothing left to compact");
    let bus = reopen(bus, &cfg).await;
    let mut reader = bus.reader("c").unwrap();
    let mut got = Vec::new();
    while let Some(r) = reader.restore_next() {
        got.push(n(&r.unwrap()));
    }
    got.sort();
    assert_eq!(got, vec![4, 5]);
    // The restore stops at what was held; later records arrive live.
    put(&bus, rec("c", "k0", 6)).await;
    assert!(reader.restore_next().is_none());
    assert_eq!(n(&reader.recv().await.unwrap()), 6);
}

#[tokio::test]
async fn a_group_reading_a_compacted_topic_still_gets_every_record() {
    let dir = tempfile::tempdir().unwrap();
    let bus = open(&cfg(dir.path()));
    let mut g = bus.consumer("g", &["c"]).unwrap();
    for i in 0..4 {
        put(&bus, rec("c", "k", i)).await;
    }
    let got: Vec<usize> = (0..4).map(|_| n(&g.try_recv().unwrap().unwrap())).collect();
    assert_eq!(got, vec![0, 1, 2, 3]);
    g.committer().done("c", partition_for_key(b"k", 2), 3);
    assert_eq!(bus.sweep().await.unwrap(), 3, "superseded and read");
    assert_eq!(bus.depth("c").unwrap(), 1);
}

#[tokio::test]
async fn fsync_interval_acknowledges_at_once_and_syncs_when_closed() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config::Kafka {
        fsync: Fsync::Interval,
        fsync_interval: Duration::from_secs(3600),
        ..cfg(dir.path())
    };
    let bus = open(&cfg);
    for i in 0..10 {
        put(&bus, rec("t", "k", i)).await;
    }
    let bus = reopen(bus, &cfg).await;
    let mut reader = bus.reader("t").unwrap();
    let got: Vec<usize> = std::iter::from_fn(|| reader.restore_next())
        .map(|r| n(&r.unwrap()))
        .collect();
    assert_eq!(got, (0..10).collect::<Vec<_>>());
}

#[tokio::test]
async fn a_group_no_stage_joins_any_more_is_forgotten_after_the_retention_time() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config::Kafka {
        retention: Duration::ZERO,
        ..cfg(dir.path())
    };
    let bus = open(&cfg);
    let gone = bus.consumer("gone", &["t"]).unwrap();
    for i in 0..5 {
        put(&bus, rec("t", "k", i)).await;
    }
    drop(gone);
    let bus = reopen(bus, &cfg).await;
    // Only `live` joins this run; `gone` read nothing and is remembered.
    let mut live = bus.consumer("live", &["t"]).unwrap();
    for _ in 0..5 {
        let r = live.recv().await.unwrap();
        live.committer().done(&r.topic, r.partition, r.offset);
    }
    assert_eq!(bus.lag("gone", "t"), 5);
    assert_eq!(bus.sweep().await.unwrap(), 5, "`gone` no longer pins them");
    assert_eq!(bus.depth("t").unwrap(), 0);
    // Joining again, it starts afresh at what is held: nothing.
    let mut again = bus.consumer("gone", &["t"]).unwrap();
    assert!(again.try_recv().is_none());
}

#[tokio::test]
async fn a_second_process_on_the_same_data_dir_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = cfg(dir.path());
    let _bus = open(&cfg);
    let Err(e) = DurableBus::open(&cfg, &[spec("t", 1, false)]) else {
        panic!("opened twice");
    };
    assert!(e.to_string().contains("in use by another process"), "{e}");
}

#[tokio::test]
async fn a_topic_keeps_the_partitions_it_was_created_with() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = cfg(dir.path());
    let bus = open(&cfg);
    put(&bus, rec("t", "k", 1)).await;
    let closed = bus.closed();
    drop(bus);
    closed.await;
    let bus = Arc::new(DurableBus::open(&cfg, &[spec("t", 8, false)]).unwrap());
    let mut c = bus.consumer("g", &["t"]).unwrap();
    let r = c.recv().await.unwrap();
    assert_eq!(r.partition, partition_for_key(b"k", 4));
}
