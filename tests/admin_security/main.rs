//! The two listeners under attack: DNS rebinding, CSRF on the API and the
//! forms, missing or wrong operator credentials, an admin listener open to
//! the network without authentication, over-large bodies, idle
//! connections, and lists that would grow without bound.

use std::time::Duration;

use serde_json::{json, Value};
use smsflow::config::{self, KafkaMode};
use smsflow::topology::{Running, Topology};

mod auth;
#[path = "../common/mod.rs"]
mod common;
mod csrf;
mod hosts;
mod limits;

/// Admin on loopback, a message log, a tester, a webhook backend.
const PIPELINE: &str = r#"
kafka: embedded
http:
  listen: 127.0.0.1:0
  public_url: http://sms.example.org
  EXTRA
backends:
  - type: tester
  - type: http
    name: gw
    url: http://127.0.0.1:9/send
    receive: {insecure: true}
messagelog: {}
routes:
  - app: echo
apps:
  - type: echo
"#;

fn pipeline(extra: &str, env: &[(&str, &str)]) -> Result<config::Pipeline, String> {
    let text = PIPELINE.replace("  EXTRA\n", extra);
    let env = |k: &str| {
        env.iter()
            .find(|(name, _)| *name == k)
            .map(|(_, v)| v.to_string())
    };
    smsflow::topology::load_str(&text, &env).map_err(|errors| {
        errors
            .iter()
            .map(|e| e.to_string())
            .collect::<Vec<_>>()
            .join("\n")
    })
}

async fn start(extra: &str, env: &[(&str, &str)]) -> Running {
    let mut p = pipeline(extra, env).unwrap();
    p.kafka = config::Kafka::with_mode(KafkaMode::Embedded);
    Topology::new(p).unwrap().start(None, true).await.unwrap()
}

/// The status of a GET of `url`.
async fn get_status(c: &reqwest::Client, url: String) -> reqwest::StatusCode {
    c.get(url).send().await.unwrap().status()
}

fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

fn admin(r: &Running) -> String {
    format!("http://{}", r.admin_addr().unwrap())
}

fn public(r: &Running) -> String {
    format!("http://{}", r.http_addr().unwrap())
}
