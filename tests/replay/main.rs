//! `smsflow replay` on tansu: a range of `sms.inbound` run again through a
//! changed pipeline reports exactly which replies are identical, changed,
//! new and missing, and which messages went to the dead-letter topic,
//! while nothing reaches the provider nor the real topics; a time range
//! picks the right messages; bad arguments are refused naming them.

use std::path::{Path, PathBuf};
use std::process::{Output, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::State;
use axum::routing::post;
use axum::{Json, Router};
use bytes::Bytes;
use serde_json::{json, Value};
use smsflow::bus::kafka::KafkaBus;
use smsflow::bus::{Produce, TopicSpec};
use smsflow::message::{Connection, InboundMessage};
use smsflow::schema;
use tokio::process::Command;

#[path = "../common/mod.rs"]
mod common;

mod refusals;
mod what_if;

/// Texts the stub provider was asked to send.
type Sent = Arc<Mutex<Vec<String>>>;

/// A provider that accepts every message and remembers its text.
async fn provider() -> (String, Sent) {
    async fn send(State(sent): State<Sent>, Json(body): Json<Value>) -> Json<Value> {
        let mut sent = sent.lock().unwrap();
        sent.push(body["text"].as_str().unwrap_or_default().to_owned());
        Json(json!({"id": format!("prov-{}", sent.len())}))
    }
    let sent = Sent::default();
    let app = Router::new()
        .route("/send", post(send))
        .with_state(sent.clone());
    (format!("http://{}/send", common::serve(app).await), sent)
}

/// A pipeline file on `brokers`: an HTTP backend `gw` sending to `url`,
/// and `apps` (YAML list items) routed in `routes` order.
fn pipeline(
    dir: &Path,
    name: &str,
    brokers: &str,
    url: &str,
    routes: &[&str],
    apps: &str,
) -> PathBuf {
    let routes: String = routes.iter().map(|r| format!("  - app: {r}\n")).collect();
    let yaml = format!(
        "kafka:\n  mode: kafka\n  brokers: {brokers}\n  group: replaytest\n\
         topics:\n  partitions: 2\n\
         http:\n  listen: 127.0.0.1:0\n\
         backends:\n  - type: http\n    name: gw\n    url: {url}\n    send: {{backoff: 10ms}}\n    receive: {{secret: gateway-secret-0123456789abcdef}}\n\
         routes:\n{routes}apps:\n{apps}"
    );
    let path = dir.join(name);
    std::fs::write(&path, yaml).unwrap();
    path
}

/// Write `texts` to `sms.inbound` as phones `+1555000<i>` on `gw` sent
/// them (a text `GARBAGE` as bytes no codec reads): their ids.
async fn inbound(brokers: &str, texts: &[&str]) -> Vec<String> {
    let mut cfg = smsflow::config::Kafka::with_mode(smsflow::config::KafkaMode::Kafka);
    cfg.brokers = Some(brokers.to_owned());
    let spec = TopicSpec {
        name: "sms.inbound".into(),
        partitions: 2,
        replication: 1,
        compacted: false,
        retention: None,
    };
    let bus = KafkaBus::connect(&cfg, &[spec]).await.unwrap();
    let producer = bus.producer().unwrap();
    let topic: Arc<str> = Arc::from("sms.inbound");
    let mut ids = Vec::new();
    for (i, text) in texts.iter().enumerate() {
        let msg = InboundMessage::new(Connection::new("gw", format!("+1555000{i}")), *text);
        let payload = match *text {
            "GARBAGE" => Bytes::from_static(b"not avro"),
            _ => Bytes::from(schema::inbound().encode(&msg).unwrap()),
        };
        producer
            .send_and_wait(Produce::new(topic.clone(), msg.connection.key(), payload))
            .await
            .unwrap();
        ids.push(msg.id);
    }
    ids
}

/// `smsflow replay ARGS...` (killed, failing the test, after 3 minutes).
async fn replay(args: &[&str]) -> Output {
    let child = Command::new(env!("CARGO_BIN_EXE_smsflow"))
        .arg("replay")
        .args(args)
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    tokio::time::timeout(Duration::from_secs(180), child.wait_with_output())
        .await
        .unwrap_or_else(|_| panic!("smsflow replay {args:?} did not finish within 3 minutes"))
        .unwrap()
}

/// The JSON report of a replay that succeeded.
async fn report(args: &[&str]) -> Value {
    let out = replay(args).await;
    assert!(
        out.status.success(),
        "replay {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

/// The error a refused replay printed (and that it was refused).
async fn refused(args: &[&str]) -> String {
    let out = replay(args).await;
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(!out.status.success(), "replay {args:?} succeeded: {stderr}");
    stderr
}

/// Wait until `sent` holds `n` texts (fails after 60 s).
async fn wait_sent(sent: &Sent, n: usize) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while sent.lock().unwrap().len() < n {
        assert!(
            Instant::now() < deadline,
            "the provider got {:?}",
            sent.lock().unwrap()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
