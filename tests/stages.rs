//! Stage behaviour beyond the scripts: poison records go to the dead-letter
//! topic and the stage goes on; failing apps are counted and dead-lettered; taps,
//! filters and the outgoing phase; Rust apps registered in code.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use smsflow::apps::{respond, App, AppError, Context, Outgoing};
use smsflow::bus::{Produce, Record};
use smsflow::cli::script;
use smsflow::config::{Chain, KafkaMode};
use smsflow::message::{Connection, InboundMessage, OutboundMessage};
use smsflow::metrics::metrics;
use smsflow::schema;
use smsflow::topology::{Running, Topology};

mod common;

const PIPELINE: &str = "
project: Stage test
backends:
  - type: tester
filters:
  blocked: ['+15550666']
routes:
  - app: flaky
    keyword: flaky
  - app: echo
apps:
  - name: audit
    type: external
  - name: flaky
    type: external
  - type: echo
  - name: shout
    type: external
  - type: default
taps: [audit]
";

/// Fails on `boom`, answers `fine` otherwise.
struct Flaky;
impl App for Flaky {
    fn handle(&self, cx: &mut Context<'_>) -> Result<(), AppError> {
        match cx.message().rest.as_deref() {
            Some("boom") => Err(AppError::Failed("boom asked for it".into())),
            _ => {
                cx.respond("fine");
                Ok(())
            }
        }
    }
}

/// A tap: records what it sees, answers nothing.
#[derive(Default)]
struct Audit(Mutex<Vec<String>>);
impl App for Audit {
    fn handle(&self, cx: &mut Context<'_>) -> Result<(), AppError> {
        let msg = cx.message();
        self.0
            .lock()
            .unwrap()
            .push(format!("{}:{}", msg.route, msg.message.text));
        Ok(())
    }
}

/// Outgoing phase only: shouts every reply, cancels secrets.
struct Shout;
impl App for Shout {
    fn handle(&self, _: &mut Context<'_>) -> Result<(), AppError> {
        Ok(())
    }
    fn outgoing(&self, msg: &mut OutboundMessage) -> Outgoing {
        if msg.text.contains("secret") {
            return Outgoing::Cancel;
        }
        msg.text = msg.text.to_uppercase();
        Outgoing::Send
    }
}

async fn start(pipeline: smsflow::config::Pipeline, audit: Arc<Audit>) -> Running {
    Topology::new(pipeline)
        .unwrap()
        .with_app("flaky", Arc::new(Flaky))
        .with_app("audit", audit)
        .with_app("shout", Arc::new(Shout))
        .start(None, false)
        .await
        .unwrap()
}

async fn converse(running: &Running, script_text: &str) {
    let tester = running.tester(None).unwrap();
    let steps = script::parse(script_text).unwrap();
    let m = script::run(
        &tester,
        &steps,
        Duration::from_secs(20),
        Duration::from_millis(300),
    )
    .await;
    assert!(
        m.is_empty(),
        "{}",
        m.iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join("\n")
    );
}

fn header(r: &Record, name: &str) -> String {
    String::from_utf8_lossy(
        r.header(name)
            .unwrap_or_else(|| panic!("header {name} missing")),
    )
    .into_owned()
}

async fn poison_goes_to_the_dlq_and_the_stage_goes_on(pipeline: smsflow::config::Pipeline) {
    let running = start(pipeline, Arc::default()).await;
    let producer = running.bus().producer().unwrap();
    let inbound: Arc<str> = Arc::from("sms.inbound");
    let dead_before = metrics()
        .dead_lettered
        .with_label_values(&["router-in"])
        .get();

    // 1. raw garbage, 2. a record of another schema, 3. valid Avro with an
    // empty identity, 4. valid Avro from a backend the pipeline lacks.
    let other_schema = schema::outbound()
        .encode(&OutboundMessage::new(
            Connection::new("message_tester", "+1"),
            "x",
        ))
        .unwrap();
    let empty_identity = schema::inbound()
        .encode(&InboundMessage::new(
            Connection::new("message_tester", " "),
            "hi",
        ))
        .unwrap();
    let unknown_backend = schema::inbound()
        .encode(&InboundMessage::new(
            Connection::new("twilio", "+1555"),
            "hi",
        ))
        .unwrap();
    let poison: Vec<(&str, Vec<u8>)> = vec![
        ("decode", b"\x00garbage, not avro".to_vec()),
        ("decode", other_schema),
        ("invalid", empty_identity),
        ("invalid", unknown_backend),
    ];
    for (_, bytes) in &poison {
        producer
            .send_and_wait(Produce::new(
                inbound.clone(),
                Bytes::from_static(b"message_tester:+15550001"),
                bytes.clone(),
            ))
            .await
            .unwrap();
    }
    // The router still answers, after the poison, on the same partition.
    converse(
        &running,
        "+15550001 > echo still alive\n+15550001 < STILL ALIVE\n",
    )
    .await;

    let mut dlq = running.bus().consumer("test.dlq", &["sms.dlq"]).unwrap();
    for (kind, bytes) in &poison {
        let r = tokio::time::timeout(Duration::from_secs(20), dlq.recv())
            .await
            .unwrap()
            .unwrap();
        assert_eq!(&r.payload[..], &bytes[..], "the original bytes are kept");
        assert_eq!(header(&r, "smsflow.stage"), "router-in");
        assert_eq!(header(&r, "smsflow.error.kind"), *kind);
        assert_eq!(header(&r, "smsflow.source.topic"), "sms.inbound");
        assert!(header(&r, "smsflow.source.offset").parse::<i64>().is_ok());
        assert!(!header(&r, "smsflow.error.message").is_empty());
        assert_eq!(r.key_str(), "message_tester:+15550001");
    }
    // At least: the other poison tests in this process count on the same metric.
    let dead = metrics()
        .dead_lettered
        .with_label_values(&["router-in"])
        .get();
    assert!(
        dead - dead_before >= 4,
        "{} dead letters counted",
        dead - dead_before
    );
    running.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn poison_on_the_embedded_bus() {
    poison_goes_to_the_dlq_and_the_stage_goes_on(common::pipeline_from(
        PIPELINE,
        KafkaMode::Embedded,
    ))
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn poison_on_the_kafka_mock_cluster() {
    poison_goes_to_the_dlq_and_the_stage_goes_on(common::pipeline_from(PIPELINE, KafkaMode::Mock))
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn poison_on_a_real_broker() {
    require_tools!(common::Tool::Tansu);
    let broker = common::broker::Broker::start();
    let p = common::on_broker(
        common::pipeline_from(PIPELINE, KafkaMode::Embedded),
        &broker.brokers(),
        "poison",
    );
    poison_goes_to_the_dlq_and_the_stage_goes_on(p).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failing_app_taps_filters_and_outgoing_phase_on_the_embedded_bus() {
    failing_app_taps_filters_and_outgoing_phase(common::pipeline_from(
        PIPELINE,
        KafkaMode::Embedded,
    ))
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failing_app_taps_filters_and_outgoing_phase_on_a_real_broker() {
    require_tools!(common::Tool::Tansu);
    let broker = common::broker::Broker::start();
    let p = common::on_broker(
        common::pipeline_from(PIPELINE, KafkaMode::Embedded),
        &broker.brokers(),
        "apps",
    );
    failing_app_taps_filters_and_outgoing_phase(p).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chained_failing_app_taps_filters_and_outgoing_phase_on_the_embedded_bus() {
    let mut p = common::pipeline_from(PIPELINE, KafkaMode::Embedded);
    p.chain = Chain::Every(true);
    failing_app_taps_filters_and_outgoing_phase(p).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chained_failing_app_taps_filters_and_outgoing_phase_on_a_real_broker() {
    require_tools!(common::Tool::Tansu);
    let broker = common::broker::Broker::start();
    let mut p = common::on_broker(
        common::pipeline_from(PIPELINE, KafkaMode::Embedded),
        &broker.brokers(),
        "chained-apps",
    );
    p.chain = Chain::Apps(vec!["flaky".into(), "audit".into(), "echo".into()]);
    failing_app_taps_filters_and_outgoing_phase(p).await;
}

/// Answers over a backend the pipeline does not have.
struct Stray;
impl App for Stray {
    fn handle(&self, cx: &mut Context<'_>) -> Result<(), AppError> {
        let mut reply = respond(cx.message(), "lost?");
        reply.connection = Connection::new("nowhere", "+15550099");
        cx.send(reply);
        cx.respond("but this one arrives");
        Ok(())
    }
}

/// A chained app's reply that the outgoing phase rejects is dead-lettered as
/// router (out) would, with `sms.outbound` as the topic to replay it to; the
/// message's other replies still go out.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chained_reply_rejected_by_the_outgoing_phase_is_dead_lettered() {
    let mut p = common::pipeline_from(
        "
backends:
  - type: tester
routes:
  - app: stray
    keyword: stray
apps:
  - name: stray
    type: external
chain: [stray]
",
        KafkaMode::Embedded,
    );
    p.project = "Chained".into();
    let running = Topology::new(p)
        .unwrap()
        .with_app("stray", Arc::new(Stray))
        .start(None, false)
        .await
        .unwrap();
    let mut dlq = running.bus().consumer("test.dlq", &["sms.dlq"]).unwrap();
    converse(
        &running,
        "+15550020 > stray away\n+15550020 < but this one arrives\n",
    )
    .await;
    let r = tokio::time::timeout(Duration::from_secs(20), dlq.recv())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(header(&r, "smsflow.stage"), "router-out");
    assert_eq!(header(&r, "smsflow.error.kind"), "invalid");
    assert_eq!(header(&r, "smsflow.source.topic"), "sms.outbound");
    assert!(r.header("smsflow.source.offset").is_none());
    assert!(header(&r, "smsflow.error.message").contains("\"nowhere\""));
    let dead = schema::outbound().decode(&r.payload).unwrap();
    assert_eq!(dead.text, "lost?");
    assert_eq!(r.key_str(), "nowhere:+15550099");
    running.shutdown().await.unwrap();
}

async fn failing_app_taps_filters_and_outgoing_phase(pipeline: smsflow::config::Pipeline) {
    let audit = Arc::new(Audit::default());
    let running = start(pipeline, audit.clone()).await;
    let failed_before = metrics()
        .errors
        .with_label_values(&["app:flaky", "app"])
        .get();
    converse(
        &running,
        "\
+15550010 > flaky boom
+15550010 > flaky ok
+15550010 < FINE
+15550010 > echo this is secret
+15550010 > echo hello
+15550010 < HELLO
+15550666 > echo blocked number
+15550010 > what
+15550010 < SORRY, STAGE TEST COULD NOT UNDERSTAND YOUR MESSAGE.
",
    )
    .await;
    // At least: the same test on the other bus counts on the same metric.
    let failed = metrics()
        .errors
        .with_label_values(&["app:flaky", "app"])
        .get();
    assert!(failed - failed_before >= 1, "the failure was not counted");
    // The failed message is dead-lettered, to be replayed once fixed:
    // chained, the inbound record (no stage reads a chained app's topic).
    let mut dlq = running
        .bus()
        .consumer("test.dlq.app", &["sms.dlq"])
        .unwrap();
    let r = tokio::time::timeout(Duration::from_secs(20), dlq.recv())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(header(&r, "smsflow.stage"), "app:flaky");
    assert_eq!(header(&r, "smsflow.error.kind"), "app");
    assert!(header(&r, "smsflow.error.message").contains("boom asked for it"));
    assert!(header(&r, "smsflow.source.offset").parse::<i64>().is_ok());
    let text = match header(&r, "smsflow.source.topic").as_str() {
        "sms.app.flaky" => schema::routed().decode(&r.payload).unwrap().message.text,
        "sms.inbound" => schema::inbound().decode(&r.payload).unwrap().text,
        other => panic!("dead letter from {other}"),
    };
    assert_eq!(text, "flaky boom");
    // Chained, the router (in) runs the outgoing phase.
    let cancelled = |stage| {
        metrics()
            .dropped
            .with_label_values(&[stage, "cancelled"])
            .get()
    };
    assert!(cancelled("router-out") + cancelled("router-in") >= 1);
    assert!(
        metrics()
            .dropped
            .with_label_values(&["router-in", "blocked"])
            .get()
            >= 1
    );
    running.shutdown().await.unwrap();
    // The tap saw everything that passed the filter, in order, matched or not.
    let seen = audit.0.lock().unwrap().clone();
    assert_eq!(
        seen,
        vec![
            "tap:flaky boom",
            "tap:flaky ok",
            "tap:echo this is secret",
            "tap:echo hello",
            "tap:what"
        ]
    );
}
