//! An app in another language, through the topics only: the Python example
//! (`examples/external_app.py`) answers for the `external` app `shout` of
//! `pipelines/external.yaml`, on a real broker (tansu), and skips records it
//! cannot decode.
//!
//! The Python comes from `$SMSFLOW_PYTHON`, or the venv scripts/tools.sh
//! makes with confluent-kafka and fastavro (tests/common/tools.rs); without
//! it, or without tansu, the test is skipped.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use smsflow::backends::tester::Tester;
use smsflow::bus::Produce;
use smsflow::config::KafkaMode;
use smsflow::message::{derived_id, Connection, InboundMessage, OutboundMessage, RoutedMessage};
use smsflow::schema;
use smsflow::topology::Topology;
use tokio::sync::broadcast;

mod common;

const PHONE: &str = "+15550100";

/// The Python that runs the example, with confluent-kafka and fastavro
/// (`$SMSFLOW_PYTHON`, or the venv scripts/tools.sh makes).
fn python() -> PathBuf {
    common::Tool::PythonKafka.path()
}

/// `examples/external_app.py`, running; killed when dropped.
struct ExternalApp {
    child: Child,
    log: PathBuf,
}

impl ExternalApp {
    fn start(python: &Path, brokers: &str, group: &str, dir: &Path) -> ExternalApp {
        let log = dir.join("external_app.log");
        let out = std::fs::File::create(&log).unwrap();
        let child = Command::new(python)
            .arg(common::root().join("examples/external_app.py"))
            .args(["--brokers", brokers, "--app", "shout", "--group", group])
            .arg("--schemas")
            .arg(common::root().join("schemas"))
            .env("PYTHONUNBUFFERED", "1")
            .stdin(Stdio::null())
            .stdout(out.try_clone().unwrap())
            .stderr(out)
            .spawn()
            .unwrap();
        ExternalApp { child, log }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Fails the test, with the app's log, if the app has exited.
    fn assert_running(&mut self) {
        if let Some(status) = self.child.try_wait().unwrap() {
            panic!("the Python app exited ({status}); its log:\n{}", self.log());
        }
    }

    /// SIGTERM, and its exit status (the test fails if it takes over 60 s).
    fn stop(&mut self) -> ExitStatus {
        let pid = self.child.id().to_string();
        assert!(Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .unwrap()
            .success());
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "the Python app did not stop on SIGTERM; its log:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

impl Drop for ExternalApp {
    fn drop(&mut self) {
        // Harmless when it has already exited.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Send `text` from the phone; the inbound message as stored.
async fn send(tester: &Tester, text: &str) -> InboundMessage {
    tester.receive(Some(PHONE), Some(text)).await.unwrap()
}

/// The reply to `inbound` that reaches the phone; fails the test after 120 s
/// (the Python app starting and joining its group is part of it) or as soon
/// as the app exits.
async fn reply_to(
    inbound: &InboundMessage,
    replies: &mut broadcast::Receiver<OutboundMessage>,
    app: &mut ExternalApp,
) -> OutboundMessage {
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        app.assert_running();
        assert!(
            Instant::now() < deadline,
            "no reply to {:?} within 120 s; the Python app's log:\n{}",
            inbound.text,
            app.log()
        );
        match tokio::time::timeout(Duration::from_secs(1), replies.recv()).await {
            Ok(Ok(m)) if m.in_response_to.as_deref() == Some(inbound.id.as_str()) => return m,
            Ok(Ok(_)) | Err(_) => {}
            Ok(Err(e)) => panic!("the tester's replies: {e}"),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_python_app_answers_through_the_topics_and_skips_what_it_cannot_decode() {
    require_tools!(common::Tool::PythonKafka, common::Tool::Tansu);
    let python = python();
    let broker = common::broker::Broker::start();
    // The pipeline docs/writing-an-app.md runs, on this test's broker.
    let yaml = std::fs::read_to_string(common::root().join("pipelines/external.yaml")).unwrap();
    let p = common::on_broker(
        common::pipeline_from(&yaml, KafkaMode::Embedded),
        &broker.brokers(),
        "external",
    );
    let running = Topology::new(p).unwrap().start(None, false).await.unwrap();
    let tester = running.tester(None).unwrap();
    let mut replies = tester.subscribe();
    let dir = tempfile::tempdir().unwrap();
    // The group smsflow's own stage for the app would use: <kafka.group>.app:<name>.
    let mut app = ExternalApp::start(&python, &broker.brokers(), "external.app:shout", dir.path());

    let hello = send(&tester, "shout hello").await;
    let r = reply_to(&hello, &mut replies, &mut app).await;
    assert_eq!(r.text, "HELLO");
    assert_eq!(r.in_response_to.as_deref(), Some(hello.id.as_str()));
    assert_eq!(r.app.as_deref(), Some("shout"));
    assert_eq!(r.connection, hello.connection);
    // The id a built-in app's first reply would get: a redelivered message
    // gives the same id, whatever language the app is written in.
    assert_eq!(r.id, derived_id(&hello.id, "shout", 0));
    assert!(!r.is_error);

    let bare = send(&tester, "shout").await;
    let r = reply_to(&bare, &mut replies, &mut app).await;
    assert_eq!(r.text, "To shout some text, send: SHOUT <ANYTHING>");

    // The default app still answers what is not for `shout`.
    let other = send(&tester, "hello").await;
    let r = reply_to(&other, &mut replies, &mut app).await;
    assert_eq!(
        r.text,
        "Sorry, smsflow external app demo could not understand your message."
    );

    // Three records the app cannot use, on the phone's partition (same key),
    // so they come before the next message: not Avro at all, a record of
    // another schema (an OutboundMessage), and a RoutedMessage cut short.
    let connection = Connection::new("message_tester", PHONE);
    let key = Bytes::from(connection.key());
    let topic: Arc<str> = Arc::from("sms.app.shout");
    let routed = RoutedMessage {
        message: InboundMessage::new(connection.clone(), "shout lost"),
        app: "shout".into(),
        route: "shout".into(),
        rest: Some("lost".into()),
        captures: Default::default(),
        contact: None,
    };
    let mut cut_short = schema::routed().encode(&routed).unwrap();
    cut_short.truncate(30);
    let other_schema = schema::outbound()
        .encode(&OutboundMessage::new(connection.clone(), "not for an app"))
        .unwrap();
    let producer = running.bus().producer().unwrap();
    for payload in [
        Bytes::from_static(b"garbage, not Avro"),
        Bytes::from(other_schema),
        Bytes::from(cut_short),
    ] {
        producer
            .send_and_wait(Produce::new(topic.clone(), key.clone(), payload))
            .await
            .unwrap();
    }

    let again = send(&tester, "shout again").await;
    let r = reply_to(&again, &mut replies, &mut app).await;
    assert_eq!(r.text, "AGAIN");
    assert_eq!(r.in_response_to.as_deref(), Some(again.id.as_str()));
    let log = app.log();
    assert_eq!(
        log.matches("skipped sms.app.shout").count(),
        3,
        "each bad record is logged once; the log:\n{log}"
    );
    assert!(
        log.contains("written with another schema"),
        "the OutboundMessage is told apart by its fingerprint; the log:\n{log}"
    );

    let status = app.stop();
    assert!(
        status.success(),
        "SIGTERM stops the app cleanly ({status}); its log:\n{}",
        app.log()
    );
    drop(producer);
    drop(tester);
    running.shutdown().await.unwrap();
}
