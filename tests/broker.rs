//! Guarantees on a real Kafka-compatible broker (tansu): graceful shutdown
//! under load loses and duplicates nothing; dead letters can be listed and
//! replayed after a fix.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use smsflow::bus::Produce;
use smsflow::cli::dlq;
use smsflow::config::KafkaMode;
use smsflow::message::{Connection, InboundMessage, OutboundMessage};
use smsflow::schema;
use smsflow::topology::Topology;
use tokio::sync::broadcast;

mod common;

/// Replies seen, by the inbound id they answer.
fn collect(into: &mut HashMap<String, usize>, rx: &mut broadcast::Receiver<OutboundMessage>) {
    while let Ok(m) = rx.try_recv() {
        *into
            .entry(m.in_response_to.unwrap_or_default())
            .or_default() += 1;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn graceful_shutdown_under_load_loses_and_duplicates_nothing() {
    require_tools!(common::Tool::Tansu);
    let broker = common::broker::Broker::start();
    let p = common::on_broker(
        common::demo(KafkaMode::Embedded),
        &broker.brokers(),
        "graceful",
    );
    let n = 3000;

    let first = Topology::new(p.clone())
        .unwrap()
        .start(None, false)
        .await
        .unwrap();
    let mut replies_first = first.tester(None).unwrap().subscribe();
    let load_task = tokio::spawn({
        let p = p.clone();
        async move { common::load::produce(&p, "message_tester", 50, n, 1000).await }
    });
    // Stop the pipeline in the middle of the load.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let stopped = Instant::now();
    first.shutdown().await.expect("a clean shutdown");
    assert!(stopped.elapsed() < p.shutdown_timeout);
    let mut seen = HashMap::new();
    collect(&mut seen, &mut replies_first);
    assert!(
        !seen.is_empty(),
        "the first run answered nothing before the shutdown"
    );

    // A restart resumes where the first run committed.
    let second = Topology::new(p.clone())
        .unwrap()
        .start(None, false)
        .await
        .unwrap();
    let mut replies_second = second.tester(None).unwrap().subscribe();
    let ids = load_task.await.unwrap();
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        collect(&mut seen, &mut replies_second);
        if ids.iter().all(|id| seen.contains_key(id)) || Instant::now() > deadline {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    collect(&mut seen, &mut replies_second);
    second.shutdown().await.unwrap();

    let lost = ids.iter().filter(|id| !seen.contains_key(*id)).count();
    let duplicated: usize = seen.values().map(|c| c - 1).sum();
    println!("graceful shutdown under load: {n} sent, {lost} lost, {duplicated} duplicated");
    assert_eq!((lost, duplicated), (0, 0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dead_letters_are_listed_and_replayed_after_a_fix() {
    require_tools!(common::Tool::Tansu);
    let broker = common::broker::Broker::start();
    let p = common::on_broker(common::demo(KafkaMode::Embedded), &broker.brokers(), "dlq");

    // A message from a backend the pipeline lacks, and garbage.
    let running = Topology::new(p.clone())
        .unwrap()
        .start(None, false)
        .await
        .unwrap();
    let producer = running.bus().producer().unwrap();
    let inbound: Arc<str> = Arc::from("sms.inbound");
    let stray = InboundMessage::new(
        Connection::new("sms_gateway", "+15550123"),
        "echo found you",
    );
    let key = Bytes::from(stray.connection.key());
    producer
        .send_and_wait(Produce::new(
            inbound.clone(),
            key.clone(),
            schema::inbound().encode(&stray).unwrap(),
        ))
        .await
        .unwrap();
    producer
        .send_and_wait(Produce::new(
            inbound.clone(),
            key.clone(),
            Bytes::from_static(b"garbage"),
        ))
        .await
        .unwrap();

    let deadline = Instant::now() + Duration::from_secs(30);
    let letters = loop {
        let letters = dlq::list(&p, &dlq::Filter::default()).await.unwrap();
        if letters.len() >= 2 || Instant::now() > deadline {
            break letters;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert_eq!(letters.len(), 2, "{letters:?}");
    let kinds: Vec<&str> = letters.iter().map(|d| d.kind.as_str()).collect();
    assert!(
        kinds.contains(&"invalid") && kinds.contains(&"decode"),
        "{kinds:?}"
    );
    let invalid = letters.iter().find(|d| d.kind == "invalid").unwrap();
    assert_eq!(invalid.stage, "router-in");
    assert_eq!(invalid.source_topic, "sms.inbound");
    assert!(
        invalid.message.contains("sms_gateway"),
        "{}",
        invalid.message
    );
    drop(producer);
    running.shutdown().await.unwrap();

    // The fix: the pipeline gets the missing backend. Replay only the invalid one.
    let mut fixed = p.clone();
    fixed.backends.push(smsflow::config::Backend::Tester {
        name: "sms_gateway".into(),
        history: 10,
    });
    let running = Topology::new(fixed.clone())
        .unwrap()
        .start(None, false)
        .await
        .unwrap();
    let filter = dlq::Filter {
        kind: Some("invalid".into()),
        ..Default::default()
    };
    assert_eq!(dlq::replay(&fixed, &filter).await.unwrap(), 1);
    let gateway = running.tester(Some("sms_gateway")).unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    while !gateway
        .conversation("+15550123")
        .iter()
        .any(|l| l.text == "found you")
    {
        assert!(
            Instant::now() < deadline,
            "the replayed message was not answered"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // Replay remembers what it did.
    assert_eq!(dlq::replay(&fixed, &filter).await.unwrap(), 0);
    drop(gateway);
    running.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn broker_outage_sources_answer_503_and_nothing_accepted_is_lost() {
    require_tools!(common::Tool::Tansu);
    let broker = common::broker::Broker::start();
    let mut p = common::on_broker(
        common::demo(KafkaMode::Embedded),
        &broker.brokers(),
        "outage",
    );
    p.http.accept_timeout = Duration::from_secs(2);
    // The 20 s freeze must not outlast the session timeout here: with
    // smsflow's 6 s, every member's session ends during it and tansu 0.6.0
    // never lets them back (each JoinGroup is followed by a SyncGroup
    // answered "rebalance in progress", for minutes: librdkafka's cgrp debug
    // log). That is tansu's group coordinator, not what this test checks.
    p.kafka
        .consumer
        .insert("session.timeout.ms".into(), "45000".into());
    let running = Topology::new(p).unwrap().start(None, true).await.unwrap();
    let base = format!("http://{}", running.admin_addr().unwrap());
    let tester = running.tester(None).unwrap();

    // A steady load through the HTTP source: before, during and after a 20 s
    // outage (the broker frozen with SIGSTOP: it keeps its data, answers nothing).
    let client = reqwest::Client::new();
    let started = Instant::now();
    let (mut accepted, mut refused) = (Vec::new(), 0);
    let mut paused = false;
    let mut resumed = false;
    let public = format!("http://{}", running.http_addr().unwrap());
    let mut readyz_down = None;
    let mut i = 0;
    while started.elapsed() < Duration::from_secs(32) {
        if !paused && started.elapsed() > Duration::from_secs(5) {
            broker.pause();
            paused = true;
        }
        if paused && readyz_down.is_none() && started.elapsed() > Duration::from_secs(20) {
            let res = client.get(format!("{public}/readyz")).send().await.unwrap();
            readyz_down = Some((res.status().as_u16(), res.text().await.unwrap()));
        }
        if paused && !resumed && started.elapsed() > Duration::from_secs(25) {
            broker.resume();
            resumed = true;
        }
        let identity = format!("+1555010{:04}", i % 20);
        let text = format!("echo n{i}");
        let res = client
            .post(format!("{base}/api/tester/messages"))
            .json(&serde_json::json!({"identity": identity, "text": text}))
            .send()
            .await
            .unwrap();
        match res.status().as_u16() {
            202 => accepted.push((identity, format!("n{i}"))),
            503 => refused += 1,
            other => panic!(
                "unexpected status {other}: {}",
                res.text().await.unwrap_or_default()
            ),
        }
        i += 1;
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(
        refused > 0,
        "the source must refuse (503) what it cannot store"
    );

    let deadline = Instant::now() + Duration::from_secs(120);
    let lost = loop {
        let lost: Vec<&(String, String)> = accepted
            .iter()
            .filter(|(id, reply)| {
                !tester
                    .conversation(id)
                    .iter()
                    .any(|l| l.direction == "out" && &l.text == reply)
            })
            .collect();
        if lost.is_empty() || Instant::now() > deadline {
            break lost.len();
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    };
    println!(
        "broker outage: {} accepted, {refused} refused with 503, {lost} accepted but lost",
        accepted.len()
    );
    assert_eq!(lost, 0);
    // Not ready while the broker was frozen (without saying more to
    // strangers), ready again once it answers.
    assert_eq!(
        readyz_down,
        Some((503, "the broker does not answer (the log says why)".into()))
    );
    let res = client.get(format!("{public}/readyz")).send().await.unwrap();
    assert_eq!(res.status().as_u16(), 200, "{}", res.text().await.unwrap());
    drop(tester);
    running.shutdown().await.unwrap();
}

/// What a stage relies on when it stops mid-stream: closing commits the
/// offsets it *stored* (records done), not how far it had fetched, and the
/// group's next member reads on from there. Checked on librdkafka's mock
/// cluster and on tansu (which passes the first part only).
async fn close_commits_stored_offsets_not_fetched_ones(cfg: smsflow::config::Kafka) {
    use smsflow::bus::kafka::KafkaBus;
    use smsflow::bus::{AckGroup, TopicSpec};
    let topic = TopicSpec {
        name: "stored".into(),
        partitions: 1,
        replication: 1,
        compacted: false,
        retention: None,
    };
    let bus = KafkaBus::connect(&cfg, &[topic]).await.unwrap();
    let producer = bus.producer().unwrap();
    let acks = AckGroup::new();
    for i in 0..2000 {
        let p = Produce::new(Arc::from("stored"), Bytes::from("k"), format!("record {i}"));
        producer.send(p, &acks).await.unwrap();
    }
    acks.wait().await.unwrap();

    let mut consumer = bus.consumer("stored-group", &["stored"]).unwrap();
    let mut last = None;
    for _ in 0..10 {
        let r = tokio::time::timeout(Duration::from_secs(30), consumer.recv())
            .await
            .unwrap()
            .unwrap();
        last = Some(r.offset);
    }
    let last = last.unwrap();
    consumer.committer().done(&[("stored", 0, last)]).unwrap();
    // Let the consumer fetch well past what it processed.
    tokio::time::sleep(Duration::from_secs(2)).await;
    consumer.close().await.unwrap();

    let (_reader, progress) = bus.reader("stored-group", "stored").await.unwrap();
    assert_eq!(
        progress[0].1,
        last + 1,
        "the group resumes at {} after processing up to offset {last}",
        progress[0].1
    );
    // The next member of the group reads on from there. (One more record,
    // in a batch of its own: something to read even past a skipped batch.)
    producer
        .send_and_wait(Produce::new(Arc::from("stored"), Bytes::from("k"), "after"))
        .await
        .unwrap();
    let mut next = bus.consumer("stored-group", &["stored"]).unwrap();
    let first = tokio::time::timeout(Duration::from_secs(30), next.recv())
        .await
        .unwrap()
        .unwrap();
    println!(
        "{:?}: committed {}, next member's first record {}",
        cfg.mode,
        last + 1,
        first.offset
    );
    if cfg.mode == KafkaMode::Mock {
        assert_eq!(first.offset, last + 1);
    } else {
        // tansu 0.6.0 answers a fetch at an offset inside a produce batch
        // with the batches after it: the rest of that batch is skipped (the
        // docs/guarantees.md says so). Never an earlier record.
        assert!(first.offset > last);
    }
    next.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn close_commits_stored_offsets_on_the_mock_cluster() {
    close_commits_stored_offsets_not_fetched_ones(smsflow::config::Kafka::with_mode(
        KafkaMode::Mock,
    ))
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn close_commits_stored_offsets_on_a_real_broker() {
    require_tools!(common::Tool::Tansu);
    let broker = common::broker::Broker::start();
    let p = common::on_broker(
        common::demo(KafkaMode::Embedded),
        &broker.brokers(),
        "stored",
    );
    close_commits_stored_offsets_not_fetched_ones(p.kafka).await;
}
