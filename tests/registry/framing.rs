//! What producers write per topic, stages reading both framings, standard
//! tools reading Confluent-framed `sms.events`, an external registry.

use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use smsflow::bus::{Bus, Consumer, Produce};
use smsflow::config::{self, Framing, KafkaMode};
use smsflow::message::{Connection, DeliveryStatus, InboundMessage};
use smsflow::schema;
use smsflow::topology::{Running, Topology};

use crate::{common, pipeline};

/// The next `n` records of `consumer`; fails after 30 s.
async fn records(consumer: &mut Consumer, n: usize) -> Vec<smsflow::bus::Record> {
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut out = Vec::new();
    while out.len() < n {
        let left = deadline.saturating_duration_since(Instant::now());
        match tokio::time::timeout(left, consumer.recv()).await {
            Ok(r) => out.push(r.unwrap()),
            Err(_) => panic!("{} of {n} records within 30 s", out.len()),
        }
    }
    out
}

/// Delivery events on `consumer` until `n` say `delivered` (the tester
/// backend reports each message delivered at once); their records.
async fn delivered(consumer: &mut Consumer, n: usize) -> Vec<smsflow::bus::Record> {
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut sent = Vec::new();
    while sent.len() < n {
        let left = deadline.saturating_duration_since(Instant::now());
        let r = tokio::time::timeout(left, consumer.recv())
            .await
            .unwrap_or_else(|_| panic!("{} of {n} delivered events within 60 s", sent.len()))
            .unwrap();
        if schema::event().decode(&r.payload).unwrap().status == DeliveryStatus::Delivered {
            sent.push(r);
        }
    }
    sent
}

/// The schema file a Confluent-framed record's id names (smsflow's own id,
/// or one learned from an external registry by another test of this binary).
fn id_in(payload: &[u8]) -> &'static str {
    let id = u32::from_be_bytes(payload[1..5].try_into().unwrap());
    schema::by_id(id).unwrap().file
}

async fn say(running: &Running, phone: &str, text: &str) -> InboundMessage {
    running
        .tester(None)
        .unwrap()
        .receive(Some(phone), Some(text))
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_topic_gets_its_framing_and_every_stage_reads_both() {
    let mut p = pipeline(KafkaMode::Mock);
    p.kafka.group = "framing".into();
    p.topics.partitions = 1;
    p.kafka.framing = Framing::Confluent;
    p.kafka
        .topic_framing
        .insert("sms.events".into(), Framing::SingleObject);
    let running = Topology::new(p.clone())
        .unwrap()
        .start(None, false)
        .await
        .unwrap();
    let Bus::Kafka(kafka) = running.bus() else {
        panic!("a mock cluster")
    };
    // Another client of the same cluster, with no framing set: it writes
    // single-object records, as an older smsflow would during a migration.
    let mut old = config::Kafka::with_mode(KafkaMode::Kafka);
    old.brokers = Some(kafka.bootstrap_servers());
    let old = Bus::connect(&old, &[]).await.unwrap();
    let mut app_topic = running
        .bus()
        .consumer("framing.watch-app", &["sms.app.echo"])
        .unwrap();
    let mut events = running
        .bus()
        .consumer("framing.watch-events", &["sms.events"])
        .unwrap();

    for i in 0..3 {
        say(&running, "+15550101", &format!("echo confluent {i}")).await;
    }
    for i in 0..3 {
        let m = InboundMessage::new(
            Connection::new("message_tester", "+15550102"),
            format!("echo single {i}"),
        );
        old.producer()
            .unwrap()
            .send_and_wait(Produce::new(
                Arc::from("sms.inbound"),
                m.connection.key(),
                schema::inbound().encode(&m).unwrap(),
            ))
            .await
            .unwrap();
    }

    // The router read both framings: six messages reached the app, written
    // in the pipeline's framing (Confluent, smsflow's id).
    let routed = records(&mut app_topic, 6).await;
    for r in &routed {
        assert_eq!(r.payload[0], 0, "{:02x?}", &r.payload[..5]);
        assert_eq!(id_in(&r.payload), "routed_message.avsc");
        schema::routed().decode(&r.payload).unwrap();
    }
    let texts: BTreeSet<String> = routed
        .iter()
        .map(|r| schema::routed().decode(&r.payload).unwrap().message.text)
        .collect();
    assert_eq!(texts.len(), 6, "{texts:?}");
    // Every message was answered; sms.events kept single-object framing.
    for r in delivered(&mut events, 6).await {
        assert_eq!(&r.payload[..2], &[0xC3, 0x01]);
    }
    running.shutdown().await.unwrap();
}

/// `tests/helpers/<name>` run by the analytics venv's Python.
fn helper(name: &str) -> Command {
    let mut c = Command::new(common::Tool::PythonAnalytics.path());
    c.arg(common::root().join("tests/helpers").join(name));
    c
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chdb_and_confluent_kafka_read_the_same_events_dump_into_identical_rows() {
    crate::require_tools!(
        common::Tool::Tansu,
        common::Tool::PythonAnalytics,
        common::Tool::PythonKafka
    );
    let broker = common::broker::Broker::start();
    let mut p = common::on_broker(pipeline(KafkaMode::Embedded), &broker.brokers(), "chdb");
    p.topics.partitions = 1;
    p.kafka.framing = Framing::Confluent;
    let running = Topology::new(p).unwrap().start(None, true).await.unwrap();
    let mut events = running
        .bus()
        .consumer("chdb.watch", &["sms.events"])
        .unwrap();
    const N: usize = 20;
    for i in 0..N {
        say(
            &running,
            &format!("+1555020{:02}", i),
            &format!("echo hello {i}"),
        )
        .await;
    }
    let sent = delivered(&mut events, N).await;
    let ours: BTreeMap<String, i64> = sent
        .iter()
        .map(|r| {
            let e = schema::event().decode(&r.payload).unwrap();
            (e.message_id, e.at)
        })
        .collect();
    assert_eq!(ours.len(), N);

    let dir = tempfile::tempdir().unwrap();
    let dump = dir.path().join("events.bin");
    let out = helper("confluent_rows.py")
        .args(["--brokers", &broker.brokers(), "--topic", "sms.events"])
        .args(["--count", &N.to_string()])
        .arg("--registry")
        .arg(format!("http://{}", running.admin_addr().unwrap()))
        .arg("--dump")
        .arg(&dump)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let read: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let confluent = read["confluent_kafka"].as_array().unwrap();
    let chdb = read["chdb"].as_array().unwrap();
    assert_eq!(confluent.len(), N, "{read}");
    assert_eq!(confluent, chdb, "the two readers disagree");
    for id in read["ids"].as_array().unwrap() {
        let id = id.as_u64().expect("Confluent framing") as u32;
        assert_eq!(schema::by_id(id).unwrap().file, "delivery_event.avsc");
    }
    // And both say what smsflow wrote.
    let theirs: BTreeMap<String, i64> = confluent
        .iter()
        .filter(|row| row["status"] == "delivered")
        .map(|row| {
            assert_eq!(row["connection"]["backend"], "message_tester");
            (
                row["message_id"].as_str().unwrap().to_owned(),
                row["at"].as_i64().unwrap(),
            )
        })
        .collect();
    assert_eq!(theirs, ours);
    running.shutdown().await.unwrap();
}

/// tests/helpers/registry_stub.py, running; killed when dropped.
struct Registry {
    child: Child,
    port: u16,
    lines: std::sync::mpsc::Receiver<String>,
}

impl Registry {
    fn start(user: &str, password: &str) -> Registry {
        let mut child = helper("registry_stub.py")
            .args(["--user", user, "--password", password])
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let mut stdout = BufReader::new(child.stdout.take().unwrap());
        let mut first = String::new();
        stdout.read_line(&mut first).unwrap();
        let port = first.trim().parse().expect("the stub prints its port");
        let (tx, lines) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in stdout.lines().map_while(Result::ok) {
                let _ = tx.send(line);
            }
        });
        Registry { child, port, lines }
    }

    fn registered(&self) -> BTreeMap<String, u32> {
        self.lines
            .try_iter()
            .map(|l| {
                let v: serde_json::Value = serde_json::from_str(&l).unwrap();
                (
                    v["subject"].as_str().unwrap().to_owned(),
                    v["id"].as_u64().unwrap() as u32,
                )
            })
            .collect()
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_external_registry_gets_every_subject_and_its_ids_are_written() {
    crate::require_tools!(common::Tool::PythonAnalytics);
    let registry = Registry::start("smsflow", "registry-pass");
    let mut p = pipeline(KafkaMode::Mock);
    p.kafka.group = "external-registry".into();
    p.topics.partitions = 1;
    p.kafka.framing = Framing::Confluent;

    // Wrong credentials: the pipeline does not start, and says why.
    p.kafka.schema_registry = Some(config::SchemaRegistry {
        url: format!("http://127.0.0.1:{}", registry.port),
        username: Some("smsflow".into()),
        password: Some("wrong".into()),
        ca_file: None,
    });
    let err = match Topology::new(p.clone()).unwrap().start(None, false).await {
        Ok(_) => panic!("started with a registry that refused it"),
        Err(e) => format!("{e:#}"),
    };
    assert!(
        err.contains("refused subject") && err.contains("401"),
        "{err}"
    );

    p.kafka.schema_registry.as_mut().unwrap().password = Some("registry-pass".into());
    let running = Topology::new(p.clone())
        .unwrap()
        .start(None, false)
        .await
        .unwrap();
    let registered = registry.registered();
    let subjects: Vec<String> = schema::registry::subjects(&p)
        .iter()
        .map(|s| s.name())
        .collect();
    for s in &subjects {
        assert!(
            registered.contains_key(s),
            "{s} not registered: {registered:?}"
        );
    }
    let events_id = registered["sms.events-value"];
    assert!(events_id >= 1001, "{registered:?}");
    // Same schema, same id (sms.outbound and the send topic share one).
    assert_eq!(
        registered["sms.outbound-value"],
        registered["sms.send.message_tester-value"]
    );

    let mut events = running
        .bus()
        .consumer("external-registry.watch", &["sms.events"])
        .unwrap();
    say(&running, "+15550301", "echo hello").await;
    let r = delivered(&mut events, 1).await.remove(0);
    assert_eq!(r.payload[0], 0);
    assert_eq!(&r.payload[1..5], &events_id.to_be_bytes());
    // The admin registry answers with the same ids.
    assert_eq!(
        schema::id_of(schema::by_file("delivery_event.avsc").unwrap()),
        events_id
    );
    running.shutdown().await.unwrap();
}
