//! Crash tests on a real broker (tansu): every stage runs as its own
//! `smsflow run --stage` process, a steady load flows through the whole
//! pipeline to a test provider, and the router, the app stage, the outgoing
//! router and the backend sink are SIGKILLed in turn and restarted. Every
//! inbound message must end with exactly one reply delivered to the provider.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::State;
use axum::http::HeaderMap;
use axum::routing::post;
use axum::{Json, Router};
use bytes::Bytes;
use serde_json::{json, Value};
use smsflow::bus::kafka::KafkaBus;
use smsflow::bus::Produce;
use smsflow::config::{self, KafkaMode};
use smsflow::message::{Connection, InboundMessage};
use smsflow::schema;

mod common;

/// The test provider: an idempotent send API, as a careful SMS gateway offers.
#[derive(Default)]
struct Provider {
    /// Idempotency key → the inbound message it answers.
    delivered: HashMap<String, String>,
    /// Requests that repeated a key already delivered (absorbed, not re-sent).
    repeats: usize,
}

async fn provider_send(
    State(p): State<Arc<Mutex<Provider>>>,
    headers: HeaderMap,
    Json(body): Json<Value>,
) -> Json<Value> {
    let key = headers
        .get("idempotency-key")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    let mut p = p.lock().unwrap();
    if p.delivered.contains_key(&key) {
        p.repeats += 1;
    } else {
        p.delivered.insert(
            key.clone(),
            body["in_response_to"]
                .as_str()
                .unwrap_or_default()
                .to_owned(),
        );
    }
    Json(json!({ "id": format!("p-{key}") }))
}

struct Stage {
    name: &'static str,
    child: Child,
    file: PathBuf,
    log: PathBuf,
}

impl Stage {
    fn start(name: &'static str, file: &Path, dir: &Path) -> Stage {
        let log = dir.join(format!("{}.log", name.replace(':', "-")));
        let mut s = Stage {
            name,
            child: spawn(name, file, &log),
            file: file.to_owned(),
            log,
        };
        s.wait_ready();
        s
    }

    fn wait_ready(&mut self) {
        // The process is up once it logs that its stage started.
        let deadline = Instant::now() + Duration::from_secs(60);
        while !std::fs::read_to_string(&self.log)
            .unwrap_or_default()
            .contains("stage started")
        {
            assert!(
                self.child.try_wait().unwrap().is_none(),
                "{} exited: {}",
                self.name,
                std::fs::read_to_string(&self.log).unwrap_or_default()
            );
            assert!(Instant::now() < deadline, "{} did not start", self.name);
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// SIGKILL, then start it again.
    fn crash_and_restart(&mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
        let _ = std::fs::remove_file(&self.log);
        self.child = spawn(self.name, &self.file, &self.log);
        self.wait_ready();
    }
}

impl Drop for Stage {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn spawn(name: &str, file: &Path, log: &Path) -> Child {
    let out = std::fs::File::create(log).unwrap();
    Command::new(env!("CARGO_BIN_EXE_smsflow"))
        .args(["run"])
        .arg(file)
        .args(["--stage", name])
        .env("LISTEN", format!("127.0.0.1:{}", common::free_port()))
        .env("RUST_LOG", "info")
        .stdout(Stdio::null())
        .stderr(out)
        .spawn()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killing_each_stage_loses_and_duplicates_no_reply() {
    let broker = common::broker::Broker::start();
    let provider = Arc::new(Mutex::new(Provider::default()));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let provider_url = format!("http://{}/send", listener.local_addr().unwrap());
    let app = Router::new()
        .route("/send", post(provider_send))
        .with_state(provider.clone());
    tokio::spawn(async move { axum::serve(listener, app).await });

    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("crash.yaml");
    std::fs::write(
        &file,
        format!(
            "project: crash test
kafka:
  mode: kafka
  brokers: {brokers}
  group: crash
  config:
    consumer.session.timeout.ms: '6000'
    consumer.heartbeat.interval.ms: '1000'
http:
  listen: ${{LISTEN:-127.0.0.1:0}}
backends:
  - type: http
    name: gateway
    url: {provider_url}
routes:
  - app: echo
apps:
  - type: echo
shutdown_timeout: 10s
",
            brokers = broker.brokers()
        ),
    )
    .unwrap();

    let mut stages: Vec<Stage> = ["router-in", "app:echo", "router-out", "backend:gateway"]
        .into_iter()
        .map(|name| Stage::start(name, &file, dir.path()))
        .collect();

    // A steady load straight onto sms.inbound (what a source writes).
    let n = 4000;
    let per_second = 400;
    let pipeline = config::load_file(&file).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(pipeline.kafka.mode, KafkaMode::Kafka);
    let load = tokio::spawn(async move {
        let bus = KafkaBus::connect(&pipeline.kafka, &[]).await.unwrap();
        let producer = bus.producer().unwrap();
        let topic: Arc<str> = Arc::from(pipeline.topics.inbound.as_str());
        let mut ids = Vec::with_capacity(n);
        let mut acks = Vec::new();
        let started = Instant::now();
        for i in 0..n {
            let msg = InboundMessage::new(
                Connection::new("gateway", format!("+1555020{:04}", i % 100)),
                format!("echo {i}"),
            );
            ids.push(msg.id.clone());
            let rec = Produce::new(
                topic.clone(),
                Bytes::from(msg.connection.key()),
                schema::inbound().encode(&msg).unwrap(),
            );
            acks.push(producer.send(rec).await.unwrap());
            tokio::time::sleep_until(
                (started + Duration::from_millis(i as u64 * 1000 / per_second)).into(),
            )
            .await;
        }
        for a in acks {
            a.wait().await.unwrap();
        }
        ids
    });

    // Kill each stage in turn while the load runs, and start it again.
    for stage in stages.iter_mut() {
        tokio::time::sleep(Duration::from_millis(1500)).await;
        tokio::task::block_in_place(|| stage.crash_and_restart());
    }
    let ids = load.await.unwrap();

    let deadline = Instant::now() + Duration::from_secs(240);
    let (lost, duplicated, repeats) = loop {
        let (answered, repeats) = {
            let p = provider.lock().unwrap();
            let mut answered: HashMap<String, usize> = HashMap::new();
            for inbound in p.delivered.values() {
                *answered.entry(inbound.clone()).or_default() += 1;
            }
            (answered, p.repeats)
        };
        let lost = ids.iter().filter(|id| !answered.contains_key(*id)).count();
        let duplicated: usize = answered.values().map(|c| c - 1).sum();
        if lost == 0 || Instant::now() > deadline {
            break (lost, duplicated, repeats);
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    println!(
        "crash test: {n} inbound, {lost} lost, {duplicated} duplicated deliveries, {repeats} repeated requests absorbed by the idempotency key"
    );
    let sink_log = std::fs::read_to_string(&stages[3].log).unwrap_or_default();
    let restored = sink_log
        .lines()
        .find(|l| l.contains("sent-log restored"))
        .unwrap_or("(no sent-log line)");
    println!("restarted sink: {restored}");
    if lost > 0 {
        for s in &stages {
            println!(
                "--- {} ---\n{}",
                s.name,
                std::fs::read_to_string(&s.log)
                    .unwrap_or_default()
                    .lines()
                    .rev()
                    .take(20)
                    .collect::<Vec<_>>()
                    .join("\n")
            );
        }
    }
    assert_eq!((lost, duplicated), (0, 0));
    for s in stages.iter_mut() {
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(s.child.id().to_string())
            .status();
    }
}
