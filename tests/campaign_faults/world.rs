//! What the campaign tests on a real broker share: the pipeline file, the
//! admin API of one of the processes, a generated audience with the text
//! each recipient must get, and reading `sms.events` whole.
//!
//! Shared by `tests/campaign_faults/` and `tests/campaign_lanes/`.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use smsflow::bus::kafka::{read_to_end, KafkaBus};
use smsflow::config::Pipeline;
use smsflow::message::DeliveryEvent;
use smsflow::schema;

/// Write `yaml` to `dir` and read it as the processes will (with `env`,
/// and `LISTEN` on a free port): the file and the pipeline.
pub fn pipeline(dir: &Path, yaml: &str, env: &[(String, String)]) -> (PathBuf, Pipeline) {
    let file = dir.join("pipeline.yaml");
    std::fs::write(&file, yaml).unwrap();
    let lookup = |k: &str| match k {
        "LISTEN" => Some("127.0.0.1:0".to_owned()),
        _ => env.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone()),
    };
    let p = smsflow::topology::load_str_in(yaml, &lookup, dir)
        .unwrap_or_else(|e| panic!("the test's pipeline: {e:?}"));
    (file, p)
}

/// The admin API of one process (its admin listener is on the port after
/// its public one).
pub struct Admin {
    base: String,
    client: reqwest::Client,
}

impl Admin {
    pub fn of_port(public_port: u16) -> Admin {
        Admin {
            base: format!("http://127.0.0.1:{}", public_port + 1),
            client: reqwest::Client::builder()
                .timeout(Duration::from_secs(60))
                .build()
                .unwrap(),
        }
    }

    pub async fn post(&self, path: &str, body: Value) -> (u16, Value) {
        let req = self.client.post(format!("{}{path}", self.base)).json(&body);
        match req.send().await {
            Ok(res) => super::common::json_answer(res).await,
            Err(e) => panic!("POST {path}: {e}"),
        }
    }

    pub async fn get(&self, path: &str) -> (u16, Value) {
        match self.client.get(format!("{}{path}", self.base)).send().await {
            Ok(res) => super::common::json_answer(res).await,
            Err(e) => panic!("GET {path}: {e}"),
        }
    }

    /// Campaign `id` as the API shows it once `done` holds of it; the last
    /// view seen and false after `within`.
    pub async fn campaign_until(
        &self,
        id: &str,
        within: Duration,
        done: impl Fn(&Value) -> bool,
    ) -> (Value, bool) {
        let deadline = Instant::now() + within;
        loop {
            let (status, v) = self.get(&format!("/api/campaigns/{id}")).await;
            assert_eq!(status, 200, "GET /api/campaigns/{id}: {v}");
            if done(&v) {
                return (v, true);
            }
            if Instant::now() > deadline {
                return (v, false);
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }
}

/// The texts of the tests' campaigns, in two languages.
pub fn texts() -> Value {
    json!({
        "en": "Hello {name}, your code is {code}.",
        "sw": "Habari {name}, nambari yako ni {code}.",
    })
}

/// One recipient: the number as the provider gets it (E.164) and the text
/// it must get.
pub struct Recipient {
    pub phone: String,
    pub text: String,
}

/// A generated CSV audience (`phone,name,language,code`; KE numbers, one
/// in ten written nationally; a third in Swahili, a third with no language
/// (the default, English), a seventh with no name (the default), some
/// names not ASCII) and what each recipient must get.
pub struct Audience {
    pub csv: String,
    pub recipients: Vec<Recipient>,
}

impl Audience {
    pub fn new(n: usize) -> Audience {
        let mut csv = String::from("phone,name,language,code\r\n");
        let mut recipients = Vec::with_capacity(n);
        for i in 0..n {
            let subscriber = format!("7{i:08}");
            let written = match i % 10 {
                3 => format!("0{subscriber}"),
                _ => format!("+254{subscriber}"),
            };
            let name = match (i % 7, i % 11) {
                (0, _) => String::new(),
                (_, 0) => format!("Zoë Wanjirũ {i}"),
                _ => format!("Name{i}"),
            };
            let language = ["en", "sw", ""][i % 3];
            let code = format!("K{:05}", i * 7919 % 100_000);
            csv.push_str(&format!("{written},{name},{language},{code}\r\n"));
            let shown = if name.is_empty() { "friend" } else { &name };
            let text = match language {
                "sw" => format!("Habari {shown}, nambari yako ni {code}."),
                _ => format!("Hello {shown}, your code is {code}."),
            };
            recipients.push(Recipient {
                phone: format!("+254{subscriber}"),
                text,
            });
        }
        Audience { csv, recipients }
    }
}

/// Every delivery event on the pipeline's `sms.events`, from its start to
/// its end now.
pub async fn events(p: &Pipeline) -> Vec<DeliveryEvent> {
    let bus = KafkaBus::connect(&p.kafka, &[]).await.unwrap();
    let topic = &p.topics.events;
    let group = format!("campaign-test-{}", smsflow::message::new_id());
    let (mut reader, progress) = bus.reader(&group, topic).await.unwrap();
    let mut all = Vec::new();
    read_to_end(&mut reader, topic, &progress, async |r| {
        if let Ok(e) = schema::event().decode(&r.payload) {
            all.push(e);
        }
        Ok::<_, smsflow::bus::BusError>(())
    })
    .await
    .unwrap();
    all
}

/// The `q` quantile of `sorted` by nearest rank (the 99th of 100 for 0.99).
pub fn quantile(sorted: &[Duration], q: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let rank = (q * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}
