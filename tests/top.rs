//! Consumer lag: the `smsflow_consumer_lag` gauge a stage's consumer
//! reports (on librdkafka's mock cluster), and `smsflow top` reading the
//! stages' groups on a real broker (tansu).

use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use smsflow::bus::{partition_for_key, Bus, Consumer, Produce};
use smsflow::cli::top::Top;
use smsflow::config::{KafkaMode, Pipeline};
use smsflow::topology::Topology;

mod common;

/// A pipeline with a router and an echo app, topics of 2 partitions.
const PIPELINE: &str =
    "backends:\n  - type: tester\nroutes:\n  - app: echo\napps:\n  - type: echo\n";

fn pipeline(mode: KafkaMode, group: &str) -> Pipeline {
    let mut p = common::pipeline_from(PIPELINE, mode);
    p.kafka.group = group.to_owned();
    p.topics.partitions = 2;
    p
}

/// The gauge's value for `stage`, `topic`, `partition`, as `/metrics` shows it.
fn lag_shown(stage: &str, topic: &str, partition: i32) -> Option<i64> {
    let series = format!(
        "smsflow_consumer_lag{{partition=\"{partition}\",stage=\"{stage}\",topic=\"{topic}\"}} "
    );
    smsflow::metrics::render()
        .lines()
        .find_map(|l| l.strip_prefix(&series).map(|v| v.parse().unwrap()))
}

/// Keep `consumer` polled (statistics arrive through its queue) until the
/// gauge of `partition` of sms.inbound shows `want`; fails after 30 s.
async fn until_lag(consumer: &mut Consumer, partition: i32, want: Option<i64>) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let shown = lag_shown("router-in", "sms.inbound", partition);
        if shown == want {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "partition {partition}: the lag shown is {shown:?}, not {want:?}"
        );
        if let Ok(r) = tokio::time::timeout(Duration::from_millis(100), consumer.recv()).await {
            panic!("no record was left to read: {:?}", r.map(|r| r.offset));
        }
    }
}

/// `n` records of key `key` on sms.inbound, each acknowledged before the
/// next (tansu 0.6.0 reports a batch's end short); their partition.
async fn produce(bus: &Bus, key: &str, n: usize) -> i32 {
    let producer = bus.producer().unwrap();
    for i in 0..n {
        producer
            .send_and_wait(Produce::new(
                Arc::from("sms.inbound"),
                key.to_owned(),
                format!("record {i}"),
            ))
            .await
            .unwrap();
    }
    partition_for_key(key.as_bytes(), 2)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_lag_metric_shows_what_a_stage_has_left_then_zero_once_done() {
    let mut p = pipeline(KafkaMode::Mock, "lagmetric");
    // Statistics every 100 ms rather than every 5 s.
    p.kafka
        .consumer
        .insert("statistics.interval.ms".into(), "100".into());
    let topology = Topology::new(p.clone()).unwrap();
    let bus = Bus::connect(&p.kafka, &topology.topics()).await.unwrap();
    let busy = produce(&bus, "lag-key", 5).await;
    let idle = 1 - busy;

    // The router's consumer reads the five records but finishes none.
    let mut consumer = bus
        .consumer("lagmetric.router-in", &["sms.inbound"])
        .unwrap();
    let mut read = Vec::new();
    while read.len() < 5 {
        let r = tokio::time::timeout(Duration::from_secs(30), consumer.recv())
            .await
            .expect("the records within 30 s")
            .unwrap();
        read.push((r.partition, r.offset));
    }
    assert!(read.iter().all(|(p, _)| *p == busy), "{read:?}");
    until_lag(&mut consumer, busy, Some(5)).await;
    until_lag(&mut consumer, idle, Some(0)).await;
    // librdkafka's internal partition is never shown.
    assert_eq!(lag_shown("router-in", "sms.inbound", -1), None);

    // Three done: two left; then all done: none left.
    consumer.committer().done("sms.inbound", busy, 2).unwrap();
    until_lag(&mut consumer, busy, Some(2)).await;
    consumer.committer().done("sms.inbound", busy, 4).unwrap();
    until_lag(&mut consumer, busy, Some(0)).await;

    // A consumer gone reports nothing any more.
    consumer.close().await.unwrap();
    assert_eq!(lag_shown("router-in", "sms.inbound", busy), None);
    assert_eq!(lag_shown("router-in", "sms.inbound", idle), None);
}

/// The partitions of sms.inbound `stage` shows a lag for.
fn partitions_shown(stage: &str) -> Vec<i32> {
    let prefix = "smsflow_consumer_lag{partition=\"";
    let tail = format!("\",stage=\"{stage}\",topic=\"sms.inbound\"}}");
    let mut shown: Vec<i32> = smsflow::metrics::render()
        .lines()
        .filter_map(|l| {
            let rest = l.strip_prefix(prefix)?;
            let (partition, rest) = rest.split_once('"')?;
            rest.starts_with(&tail[1..])
                .then(|| partition.parse().unwrap())
        })
        .collect();
    shown.sort_unstable();
    shown
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_partition_taken_by_another_member_is_no_longer_reported_by_the_first() {
    let mut p = pipeline(KafkaMode::Mock, "lagmove");
    let fast = ("statistics.interval.ms".to_owned(), "100".to_owned());
    p.kafka.consumer.insert(fast.0.clone(), fast.1.clone());
    let topology = Topology::new(p.clone()).unwrap();
    let bus = Bus::connect(&p.kafka, &topology.topics()).await.unwrap();
    let Bus::Kafka(kafka) = &bus else {
        panic!("the mock cluster is a Kafka bus")
    };
    // The second member joins the same group through a bus with another
    // group prefix: it reports under the group's whole name, the first
    // under `router-out` (not `router-in`, which the test above
    // reports under at the same time), so the two can be told apart.
    let mut other = common::on_broker(p.clone(), &kafka.bootstrap_servers(), "another");
    other.kafka.consumer.insert(fast.0, fast.1);
    let other_bus = Bus::connect(&other.kafka, &[]).await.unwrap();

    let mut first = bus
        .consumer("lagmove.router-out", &["sms.inbound"])
        .unwrap();
    let mut second = None;
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let (mine, theirs) = (
            partitions_shown("router-out"),
            partitions_shown("lagmove.router-out"),
        );
        match &second {
            // Alone, it has both partitions: then the second joins.
            None if mine == [0, 1] => {
                second = Some(
                    other_bus
                        .consumer("lagmove.router-out", &["sms.inbound"])
                        .unwrap(),
                )
            }
            Some(_) if mine.len() == 1 && theirs.len() == 1 && mine != theirs => break,
            _ => {}
        }
        assert!(
            Instant::now() < deadline,
            "first member shows {mine:?}, second {theirs:?}"
        );
        let _ = tokio::time::timeout(Duration::from_millis(50), first.recv()).await;
        if let Some(c) = &mut second {
            let _ = tokio::time::timeout(Duration::from_millis(50), c.recv()).await;
        }
    }
}

fn smsflow() -> Command {
    Command::new(env!("CARGO_BIN_EXE_smsflow"))
}

/// Run `smsflow top` on the pipeline file `text`: success, stdout, stderr.
async fn top(text: String, args: &[&str]) -> (bool, String, String) {
    let args: Vec<String> = args.iter().map(|a| a.to_string()).collect();
    tokio::task::spawn_blocking(move || {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("pipeline.yaml");
        std::fs::write(&file, text).unwrap();
        let out = smsflow()
            .arg("top")
            .arg(&file)
            .args(&args)
            .output()
            .unwrap();
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    })
    .await
    .unwrap()
}

/// The words of `stage`'s line in `top`'s table, then of each of its
/// partitions' lines (without the topic).
fn section(table: &str, stage: &str) -> (Vec<String>, Vec<Vec<String>>) {
    let words = |l: &str| l.split_whitespace().map(str::to_owned).collect::<Vec<_>>();
    let mut lines = table
        .lines()
        .skip_while(|l| !l.starts_with(&format!("{stage} ")));
    let head = words(
        lines
            .next()
            .unwrap_or_else(|| panic!("no {stage} in:\n{table}")),
    );
    let rows = lines
        .take_while(|l| l.starts_with("  "))
        .map(|l| words(l)[1..].to_vec())
        .collect();
    (head, rows)
}

/// The router's group reads sms.inbound and commits up to `offset` of
/// `partition` (that record included), then leaves.
async fn finish_up_to(bus: &Bus, partition: i32, offset: i64) {
    let mut consumer = bus.consumer("topt.router-in", &["sms.inbound"]).unwrap();
    loop {
        let r = tokio::time::timeout(Duration::from_secs(30), consumer.recv())
            .await
            .expect("the records within 30 s")
            .unwrap();
        if (r.partition, r.offset) == (partition, offset) {
            consumer
                .committer()
                .done("sms.inbound", partition, offset)
                .unwrap();
            break;
        }
    }
    consumer.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn top_shows_each_stage_committed_end_lag_and_rates() {
    require_tools!(common::Tool::Tansu);
    let broker = common::broker::Broker::start();
    let p = common::on_broker(
        pipeline(KafkaMode::Embedded, "x"),
        &broker.brokers(),
        "topt",
    );
    let topology = Topology::new(p.clone()).unwrap();
    let bus = Bus::connect(&p.kafka, &topology.topics()).await.unwrap();
    let busy = produce(&bus, "top-key", 10).await;
    let idle = 1 - busy;

    // The router's group finishes the first 4 of the 10.
    finish_up_to(&bus, busy, 3).await;

    let file = format!(
        "{PIPELINE}kafka:\n  mode: kafka\n  brokers: {}\n  group: topt\ntopics:\n  partitions: 2\n",
        broker.brokers()
    );
    let (ok, out, err) = top(file, &["--once"]).await;
    assert!(ok, "{err}");
    let (head, rows) = section(&out, "router-in");
    // Lag 6, no rates from one snapshot, and the group (left by its member).
    assert_eq!(head[1..4], ["6", "-", "-"], "{out}");
    assert!(out.contains("(group topt.router-in)"), "{out}");
    let mut expected = vec![
        vec![busy.to_string(), "4".into(), "10".into(), "6".into()],
        vec![idle.to_string(), "-".into(), "0".into(), "0".into()],
    ];
    expected.sort();
    let mut shown: Vec<Vec<String>> = rows.iter().map(|r| r[..4].to_vec()).collect();
    shown.sort();
    assert_eq!(shown, expected, "{out}");
    let (head, rows) = section(&out, "app:echo");
    assert_eq!(head[1], "0", "{out}");
    assert_eq!(rows.len(), 2, "{out}");

    // Between two refreshes: 5 written, 3 more done.
    let mut watch = Top::connect(&topology, "test").await.unwrap();
    let first = watch.refresh().await.unwrap();
    assert_eq!(first.stages[0].name, "router-in");
    assert_eq!(first.stages[0].lag(), 6);
    assert!(first.stages[0]
        .partitions
        .iter()
        .all(|p| p.done_rate.is_none()));
    produce(&bus, "top-key", 5).await;
    finish_up_to(&bus, busy, 6).await;
    let second = watch.refresh().await.unwrap();
    let router = &second.stages[0];
    assert_eq!(router.lag(), 15 - 7);
    let row = router
        .partitions
        .iter()
        .find(|r| r.partition == busy)
        .unwrap();
    assert_eq!((row.committed, row.end), (Some(7), 15));
    assert!(row.done_rate.is_some_and(|r| r > 0.0), "{row:?}");
    assert!(row.written_rate.is_some_and(|r| r > 0.0), "{row:?}");
    let row = router
        .partitions
        .iter()
        .find(|r| r.partition == idle)
        .unwrap();
    assert_eq!((row.done_rate, row.written_rate), (Some(0.0), Some(0.0)));
}

#[tokio::test]
async fn top_needs_a_kafka_cluster() {
    for bus in ["embedded", "mock"] {
        let (ok, out, err) = top(format!("{PIPELINE}kafka: {bus}\n"), &["--once"]).await;
        assert!(!ok, "{out}");
        assert!(
            err.contains("smsflow top reads the stages' consumer groups from a Kafka cluster")
                && err.contains(&format!("`kafka: {bus}`"))
                && err.contains("lives inside the `smsflow run` process"),
            "{err}"
        );
    }
    let (ok, _, err) = top(
        format!("{PIPELINE}kafka:\n  mode: kafka\n  brokers: 127.0.0.1:9\n"),
        &["--interval", "0s"],
    )
    .await;
    assert!(!ok);
    assert!(err.contains("--interval must be above zero"), "{err}");
}
