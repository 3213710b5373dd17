//! Helpers shared by the integration tests.
#![allow(dead_code)]

use std::path::PathBuf;

use smsflow::config::{self, KafkaMode, Pipeline};

pub mod broker;
pub mod kannel;
pub mod load;
pub mod sink;
pub mod tls;
pub mod tools;

#[allow(unused_imports)]
pub use tools::Tool;

/// Point `p` at a real broker.
pub fn on_broker(mut p: Pipeline, brokers: &str, group: &str) -> Pipeline {
    p.kafka = config::Kafka::with_mode(KafkaMode::Kafka);
    p.kafka.brokers = Some(brokers.to_owned());
    p.kafka.group = group.to_owned();
    p
}

/// The next record of `consumer`, decoded; fails the test after 20 s.
pub async fn next<T>(consumer: &mut smsflow::bus::Consumer, codec: &smsflow::schema::Codec<T>) -> T
where
    T: serde::Serialize + serde::de::DeserializeOwned,
{
    let r = tokio::time::timeout(std::time::Duration::from_secs(20), consumer.recv())
        .await
        .expect("a record within 20 s")
        .unwrap();
    codec.decode(&r.payload).unwrap()
}

/// The next delivery event on `consumer` (reading `sms.events`).
pub async fn next_event(consumer: &mut smsflow::bus::Consumer) -> smsflow::message::DeliveryEvent {
    next(consumer, smsflow::schema::event()).await
}

/// Serve `app` on a free loopback port: its address.
pub async fn serve(app: axum::Router) -> std::net::SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    addr
}

/// Start the pipeline `yaml` on the embedded bus, with its HTTP server.
pub async fn start_embedded(yaml: &str) -> smsflow::topology::Running {
    smsflow::topology::Topology::new(pipeline_from(yaml, KafkaMode::Embedded))
        .unwrap()
        .start(None, true)
        .await
        .unwrap()
}

/// An answer's status and JSON body (null when empty, a string when not JSON).
pub async fn json_answer(res: reqwest::Response) -> (u16, serde_json::Value) {
    let status = res.status().as_u16();
    let text = res.text().await.unwrap();
    let value = if text.is_empty() {
        serde_json::Value::Null
    } else {
        serde_json::from_str(&text).unwrap_or(serde_json::Value::String(text))
    };
    (status, value)
}

/// The CSRF token of a page's POST form (`<input type="hidden" name="csrf" value="...">`).
/// The `Cookie` header a browser sends back after `res`: the CSRF cookie
/// the page set, which a form's token must equal.
pub fn csrf_cookie(res: &reqwest::Response) -> String {
    let set = res
        .headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|v| v.starts_with("smsflow_csrf="))
        .unwrap_or_else(|| panic!("no CSRF cookie set: {:?}", res.headers()));
    set.split(';').next().unwrap().to_owned()
}

pub fn csrf_token(page: &str) -> String {
    let after = page
        .split("name=\"csrf\" value=\"")
        .nth(1)
        .unwrap_or_else(|| panic!("no CSRF field in {page}"));
    after.split('"').next().unwrap().to_owned()
}

pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The demo pipeline on `mode`, its HTTP server on a free loopback port.
pub fn demo(mode: KafkaMode) -> Pipeline {
    let text = std::fs::read_to_string(root().join("pipelines/demo.yaml")).unwrap();
    pipeline_from(&text, mode)
}

pub fn pipeline_from(text: &str, mode: KafkaMode) -> Pipeline {
    let env = |k: &str| match k {
        "SMSFLOW_LISTEN" => Some("127.0.0.1:0".to_string()),
        _ => None,
    };
    let mut p = smsflow::topology::load_str_in(text, &env, &root().join("pipelines"))
        .unwrap_or_else(|e| panic!("{e:?}"));
    p.kafka = config::Kafka::with_mode(mode);
    p
}

pub fn scripts() -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(root().join("tests/scripts"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "txt"))
        .collect();
    v.sort();
    assert!(!v.is_empty());
    v
}

/// A loopback port nobody listens on right now, and the one after it (the
/// admin listener's by default) free too.
pub fn free_port() -> u16 {
    loop {
        let first = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = first.local_addr().unwrap().port();
        if port < u16::MAX && std::net::TcpListener::bind(("127.0.0.1", port + 1)).is_ok() {
            return port;
        }
    }
}

/// `smsflow run` of the demo pipeline on `port` (its admin listener on the
/// port after), stopped (SIGTERM) on drop.
pub struct Smsflow {
    pub child: std::process::Child,
    /// The admin listener: pages, API, tester.
    pub base: String,
}

impl Smsflow {
    pub fn start(port: u16) -> Smsflow {
        let child = std::process::Command::new(env!("CARGO_BIN_EXE_smsflow"))
            .arg("run")
            .arg(root().join("pipelines/demo.yaml"))
            .env("SMSFLOW_LISTEN", format!("127.0.0.1:{port}"))
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let base = format!("http://127.0.0.1:{}", port + 1);
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err()
            || std::net::TcpStream::connect(("127.0.0.1", port + 1)).is_err()
        {
            assert!(
                std::time::Instant::now() < deadline,
                "smsflow did not start listening"
            );
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        Smsflow { child, base }
    }

    /// Send `signal` (TERM, INT) and wait for the exit status.
    pub fn stop(mut self, signal: &str) -> (std::process::ExitStatus, String) {
        let pid = self.child.id().to_string();
        assert!(std::process::Command::new("kill")
            .arg(format!("-{signal}"))
            .arg(&pid)
            .status()
            .unwrap()
            .success());
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                let mut stderr = String::new();
                use std::io::Read;
                if let Some(mut e) = self.child.stderr.take() {
                    let _ = e.read_to_string(&mut stderr);
                }
                return (status, stderr);
            }
            assert!(
                std::time::Instant::now() < deadline,
                "smsflow did not exit after SIG{signal}"
            );
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
    }
}

impl Drop for Smsflow {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The tester's conversation with `identity` (its API at `base`), once
/// `identity` received `want_out` messages or 20 s passed.
pub async fn conversation(
    client: &reqwest::Client,
    base: &str,
    identity: &str,
    want_out: usize,
) -> Vec<serde_json::Value> {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    loop {
        let body: serde_json::Value = client
            .get(format!("{base}/api/tester/conversations/{identity}"))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let messages = body["messages"].as_array().cloned().unwrap_or_default();
        if messages.iter().filter(|m| m["direction"] == "out").count() >= want_out
            || std::time::Instant::now() > deadline
        {
            return messages;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}

/// The texts `identity` received through the tester, once there are `n`;
/// fails the test after 20 s.
pub async fn received(
    client: &reqwest::Client,
    base: &str,
    identity: &str,
    n: usize,
) -> Vec<String> {
    let got: Vec<String> = conversation(client, base, identity, n)
        .await
        .iter()
        .filter(|m| m["direction"] == "out")
        .filter_map(|m| m["text"].as_str().map(str::to_owned))
        .collect();
    assert!(
        got.len() >= n,
        "{identity} got {got:?}, expected {n} messages"
    );
    got
}

/// The pipeline the operator's pages run on: registration, echo, a poll,
/// opt-out and the message log, English and French.
pub const WEB_PIPELINE: &str = r#"
project: smsflow web
kafka: embedded
http:
  listen: ${SMSFLOW_LISTEN:-127.0.0.1:0}
backends:
  - type: tester
optout: {}
messagelog: {}
languages:
  default: en
  available:
    - {code: en, name: English}
    - {code: fr, name: French}
  texts:
    fr:
      lunch.question: Que voulez-vous pour le déjeuner ?
routes:
  - app: registration
  - app: echo
  - app: lunch
apps:
  - type: registration
  - type: echo
  - name: lunch
    type: poll
    question: What do you want for lunch?
    choices: [pizza, salad, soup]
  - type: default
"#;

/// The campaign tests' pipeline (`tests/campaigns/`, `tests/campaign_pages/`,
/// `tests/campaigns_browser/`): a discard backend `bulk` whose sends a hook
/// sees, a tester, STOP, two languages, campaigns reading national numbers
/// as Kenyan, a price per segment.
pub const CAMPAIGN_PIPELINE: &str = r#"
project: campaigns
kafka: embedded
http:
  listen: 127.0.0.1:0
backends:
  - type: tester
  - type: discard
    name: bulk
    receive: {insecure: true}
optout: {}
languages:
  default: en
  available:
    - {code: en, name: English}
    - {code: sw, name: Swahili}
campaigns:
  region: KE
  prices:
    bulk: {segment: 0.01, prefixes: {"+254": 0.005}}
routes:
  - app: echo
apps:
  - type: echo
"#;
