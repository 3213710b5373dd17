//! Three `smsflow run --stage analytics` processes on tansu share
//! `sms.inbound` and `sms.events` (4 partitions each). The test writes
//! 4,000 records with explicit times (inbound messages, sinks' `sent`
//! events, delivery reports) in four rounds; after the first and the third
//! round a replica is SIGKILLed (its unflushed counts and uncommitted
//! offsets lost) and started again. Summed over source partitions, the
//! `sms.stats` records still equal the counts of what was written: nothing
//! counted twice, nothing lost.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use smsflow::bus::{Bus, Produce};
use smsflow::message::{
    Connection, DeliveryEvent, DeliveryStatus, InboundMessage, OutboundMessage, StatsDimension,
};
use smsflow::topology::Topology;

use super::fleet::Fleet;
use super::{common, differences, expect, expect_event, Counts, Latest, T0};
use crate::require_tools;

const YAML: &str = r#"
kafka:
  mode: kafka
  brokers: ${BROKERS}
  group: analytics-replicas
  producer:
    # tansu 0.6.0 skips the rest of a produce batch when a consumer resumes
    # in its middle (tests/broker.rs shows it): one record per batch.
    batch.num.messages: '1'
  consumer:
    # A killed member's partitions go to the others after this.
    session.timeout.ms: '6000'
    heartbeat.interval.ms: '1000'
topics:
  partitions: 4
http:
  listen: ${LISTEN}
backends:
  - type: tester
    name: gw
routes:
  - app: echo
apps:
  - type: echo
analytics:
  flush: 200ms
shutdown_timeout: 10s
"#;

const ROUNDS: i64 = 4;
const PER_ROUND: i64 = 1_000;

/// Record `i`: an inbound message, a sink's `sent`, or a delivery report
/// (delivered or failed), 150 ms of event time after record `i - 1`.
pub(super) fn record(i: i64, want: &mut BTreeMap<super::Cell, Counts>) -> Produce {
    let at = T0 + i * 150;
    let phone = format!("+1444{:04}", i % 53);
    if i % 3 == 0 {
        let mut m = InboundMessage::new(Connection::new("gw", phone), format!("join {i}"));
        m.received_at = at;
        let dims = [
            (StatsDimension::Total, ""),
            (StatsDimension::Backend, "gw"),
            (StatsDimension::Keyword, "JOIN"),
        ];
        expect(want, at, &dims, |c| c.inbound += 1);
        let payload = smsflow::schema::inbound().encode(&m).unwrap();
        return Produce::new(
            Arc::from("sms.inbound"),
            Bytes::from(m.connection.key()),
            payload,
        );
    }
    let mut msg = OutboundMessage::new(Connection::new("gw", phone), "hi");
    msg.app = Some("echo".into());
    msg.campaign_id = (i % 2 == 0).then(|| "spring".to_owned());
    msg.segments = 1 + (i % 2) as i32;
    msg.created_at = at - 40;
    let report = i % 3 == 2;
    let status = match (report, i % 5) {
        (false, _) => DeliveryStatus::Sent,
        (true, 0) => DeliveryStatus::Failed,
        (true, _) => DeliveryStatus::Delivered,
    };
    let mut e = DeliveryEvent::now(&msg, status);
    e.at = at;
    e.report = report;
    if report {
        e.accepted_at = 0;
        e.segments = 0;
        e.sent_at = at - 1_000;
    } else {
        e.sent_at = at;
    }
    expect_event(want, &e);
    let payload = smsflow::schema::event().encode(&e).unwrap();
    Produce::new(
        Arc::from("sms.events"),
        Bytes::from(e.connection.key()),
        payload,
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replicas_killed_and_restarted_count_every_record_once() {
    require_tools!(common::Tool::Tansu);
    let broker = common::broker::Broker::start();
    let dir = tempfile::tempdir().unwrap();
    let env = vec![("BROKERS".to_owned(), broker.brokers())];
    let file = dir.path().join("pipeline.yaml");
    std::fs::write(&file, YAML).unwrap();
    let lookup = |k: &str| match k {
        "LISTEN" => Some("127.0.0.1:0".to_owned()),
        "BROKERS" => Some(broker.brokers()),
        _ => None,
    };
    let p = smsflow::topology::load_str_in(YAML, &lookup, dir.path())
        .unwrap_or_else(|e| panic!("the test's pipeline: {e:?}"));
    let topics = Topology::new(p.clone()).unwrap().topics();
    let bus = Bus::connect(&p.kafka, &topics).await.unwrap();
    let producer = bus.producer().unwrap();

    let mut fleet = Fleet::new(&file, dir.path(), env);
    let up = tokio::task::block_in_place(|| {
        (0..3)
            .map(|_| fleet.scale_up(&["analytics"]))
            .sum::<usize>()
    });
    assert_eq!(up, 3, "replicas up; failures: {:?}", fleet.failures);

    let mut want = BTreeMap::new();
    for round in 0..ROUNDS {
        for i in round * PER_ROUND..(round + 1) * PER_ROUND {
            producer.send_and_wait(record(i, &mut want)).await.unwrap();
        }
        if round == 0 || round == 2 {
            // Mid-run: the replica is counting what was just written.
            let i = (round as usize / 2) % fleet.replicas.len();
            let restarted = tokio::task::block_in_place(|| {
                fleet.kill_and_restart(i, Duration::from_millis(500))
            });
            assert!(
                restarted,
                "replica restarted; failures: {:?}",
                fleet.failures
            );
        }
    }

    let mut stats = bus
        .consumer(
            &format!("test.{}", smsflow::message::new_id()),
            &["sms.stats"],
        )
        .unwrap();
    let mut latest = Latest::default();
    let deadline = Instant::now() + Duration::from_secs(120);
    let mut got = BTreeMap::new();
    while Instant::now() < deadline {
        latest.read(&mut stats, Duration::from_millis(500)).await;
        got = latest.summed();
        if got == want {
            break;
        }
    }
    if got != want {
        for (name, log) in &fleet.logs {
            let text = std::fs::read_to_string(log).unwrap_or_default();
            let tail: Vec<&str> = text.lines().rev().take(30).collect();
            eprintln!("--- {name} ({}):", log.display());
            for line in tail.iter().rev() {
                eprintln!("{line}");
            }
        }
    }
    assert_eq!(
        got,
        want,
        "sms.stats summed differs from what was written: {:#?}",
        differences(&got, &want)
    );
    let sources: std::collections::HashSet<(String, i32)> = latest
        .records
        .values()
        .map(|s| (s.topic.clone(), s.partition))
        .collect();
    assert_eq!(
        sources.len(),
        8,
        "records of 4 partitions of 2 topics: {sources:?}"
    );
}
