//! Several replicas of a stage on a real broker (tansu): a member that
//! restarts with its instance id gets its partitions back without waiting
//! for the session timeout; a sink replica reads what another replica sent
//! before it handles a partition it was given; the settings a producer or a
//! consumer alone knows go to that client only.

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use smsflow::bus::kafka::KafkaBus;
use smsflow::bus::{AckGroup, Produce, TopicSpec};
use smsflow::config::{Kafka, KafkaMode};

mod common;

fn topic(name: &str, partitions: i32) -> TopicSpec {
    TopicSpec {
        name: name.into(),
        partitions,
        replication: 1,
        compacted: false,
        retention: None,
    }
}

fn on_tansu(brokers: &str) -> Kafka {
    let mut cfg = Kafka::with_mode(KafkaMode::Kafka);
    cfg.brokers = Some(brokers.to_owned());
    cfg.producer.insert("batch.num.messages".into(), "1".into());
    cfg
}

async fn produce(bus: &KafkaBus, topic: &str, n: usize) {
    let producer = bus.producer().unwrap();
    let acks = AckGroup::new();
    for i in 0..n {
        let p = Produce::new(
            Arc::from(topic),
            Bytes::from(format!("k{i}")),
            format!("{i}"),
        );
        producer.send(p, &acks).await.unwrap();
    }
    acks.wait().await.unwrap();
}

/// With a session timeout of 45 s (librdkafka's default), a member that
/// vanished without leaving keeps its partitions that long, unless the one
/// that replaces it has the same `group.instance.id`: then the broker hands
/// the partitions over at once. The test's bound (30 s) sits between the two.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_member_restarted_with_its_instance_id_resumes_before_the_session_timeout() {
    require_tools!(common::Tool::Tansu);
    let broker = common::broker::Broker::start();
    let mut cfg = on_tansu(&broker.brokers());
    cfg.consumer
        .insert("session.timeout.ms".into(), "45000".into());
    cfg.instance_id = Some("replica-0".into());
    let bus = KafkaBus::connect(&cfg, &[topic("static", 4)])
        .await
        .unwrap();
    produce(&bus, "static", 40).await;

    let mut first = bus.consumer("static-group", &["static"]).unwrap();
    let r = tokio::time::timeout(Duration::from_secs(30), first.recv())
        .await
        .expect("the first member reads")
        .unwrap();
    first
        .committer()
        .done(&[("static", r.partition, r.offset)])
        .unwrap();
    // Gone without a word, as a killed process is (a static member does not
    // leave the group when it closes either).
    drop(first);

    let started = Instant::now();
    let mut second = bus.consumer("static-group", &["static"]).unwrap();
    let got = tokio::time::timeout(Duration::from_secs(30), second.recv()).await;
    assert!(
        got.is_ok(),
        "the restarted member read nothing within 30 s: the broker kept its partitions for the old one"
    );
    println!(
        "static member resumed after {:.1} s",
        started.elapsed().as_secs_f64()
    );
    assert!(second.rebalances().joined());
}

/// `kafka.consumer` settings reach consumers only, `kafka.producer` ones
/// producers only: a value a client would refuse shows where it went.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn producer_and_consumer_settings_go_to_their_own_clients() {
    require_tools!(common::Tool::Tansu);
    let broker = common::broker::Broker::start();
    let mut cfg = on_tansu(&broker.brokers());
    cfg.consumer
        .insert("session.timeout.ms".into(), "not a number".into());
    let bus = KafkaBus::connect(&cfg, &[topic("split", 1)]).await.unwrap();
    assert!(
        bus.producer().is_ok(),
        "the producer never sees consumer settings"
    );
    let err = bus
        .consumer("g", &["split"])
        .err()
        .expect("the consumer refuses it");
    assert!(err.to_string().contains("session.timeout.ms"), "{err}");

    let mut cfg = on_tansu(&broker.brokers());
    cfg.producer
        .insert("linger.ms".into(), "not a number".into());
    let bus = KafkaBus::connect(&cfg, &[]).await.unwrap();
    assert!(
        bus.consumer("g", &["split"]).is_ok(),
        "consumers never see producer settings"
    );
    let err = bus.producer().err().expect("the producer refuses it");
    assert!(err.to_string().contains("linger.ms"), "{err}");
}
