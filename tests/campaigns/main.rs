//! Bulk campaigns on the embedded bus, through the admin API: preview,
//! start, every recipient's one personalised message, progress; pause,
//! resume, cancel; opt-outs; quiet hours on a fake clock; bad input.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use smsflow::campaign::quiet::Clock;
use smsflow::config::KafkaMode;
use smsflow::message::OutboundMessage;
use smsflow::topology::{Running, Topology};

#[path = "../common/mod.rs"]
mod common;
mod input;
mod lifecycle;
mod quiet;

const PIPELINE: &str = common::CAMPAIGN_PIPELINE;

/// What the discard backend `bulk` was handed, with the campaign clock's
/// time at that moment.
type Sends = Arc<Mutex<Vec<(OutboundMessage, chrono::DateTime<chrono::Utc>)>>>;

struct Admin {
    running: Running,
    base: String,
    client: reqwest::Client,
    sends: Sends,
}

impl Admin {
    async fn start(yaml: &str) -> Admin {
        Admin::start_on(yaml, Arc::new(smsflow::campaign::quiet::SystemClock)).await
    }

    async fn start_on(yaml: &str, clock: Arc<dyn Clock>) -> Admin {
        let p = common::pipeline_from(yaml, KafkaMode::Embedded);
        let sends: Sends = Arc::default();
        let seen = sends.clone();
        let at = clock.clone();
        let hook = move |m: &OutboundMessage| seen.lock().unwrap().push((m.clone(), at.now()));
        let running = Topology::new(p)
            .unwrap()
            .with_clock(clock)
            .with_send_hook("bulk", Arc::new(hook))
            .start(None, true)
            .await
            .unwrap();
        let base = format!("http://{}", running.admin_addr().unwrap());
        Admin {
            running,
            base,
            client: reqwest::Client::new(),
            sends,
        }
    }

    async fn post(&self, path: &str, body: Value) -> (u16, Value) {
        let req = self.client.post(format!("{}{path}", self.base)).json(&body);
        common::json_answer(req.send().await.unwrap()).await
    }

    async fn get(&self, path: &str) -> (u16, Value) {
        common::json_answer(
            self.client
                .get(format!("{}{path}", self.base))
                .send()
                .await
                .unwrap(),
        )
        .await
    }

    /// The messages handed to the backend so far.
    fn sent(&self) -> Vec<OutboundMessage> {
        self.sends
            .lock()
            .unwrap()
            .iter()
            .map(|(m, _)| m.clone())
            .collect()
    }

    /// A phone sends `text` through the tester.
    async fn phone_sends(&self, identity: &str, text: &str) {
        let (status, body) = self
            .post(
                "/api/tester/messages",
                json!({"identity": identity, "text": text}),
            )
            .await;
        assert_eq!(status, 202, "{body}");
    }

    /// The campaign's progress once `done` holds (fails after 30 s).
    async fn progress_until(&self, id: &str, done: impl Fn(&Value) -> bool) -> Value {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let (status, v) = self.get(&format!("/api/campaigns/{id}")).await;
            assert_eq!(status, 200, "{v}");
            if done(&v["progress"]) {
                return v;
            }
            assert!(
                Instant::now() < deadline,
                "campaign {id} never got there: {v:#}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

const AUDIENCE: &str = "\u{feff}phone,name,language,city\r\n\
+254712345678,Wanjiru,sw,Nyeri\r\n\
0712345678,Wanjiru again,,Nyeri\r\n\
254700000001,Otieno,,Kisumu\r\n\
not-a-number,Nobody,,Nowhere\r\n\
+254700000002,,,Mombasa\r\n\
+254700000003,Amina,en,\r\n";

fn campaign(id: &str) -> Value {
    json!({
        "id": id,
        "name": "Harvest",
        "backend": "bulk",
        "texts": {
            "en": "Hello {name}, the market in {city} opens at 8.",
            "sw": "Habari {name}, soko la {city} linafunguliwa saa mbili."
        },
        "defaults": {"name": "friend", "city": "town"},
    })
}

#[tokio::test]
async fn a_csv_audience_gets_one_personalised_message_each() {
    let admin = Admin::start(PIPELINE).await;
    let (status, preview) = admin
        .post(
            "/api/campaigns/preview",
            json!({"campaign": campaign("harvest"), "csv": AUDIENCE}),
        )
        .await;
    assert_eq!(status, 200, "{preview}");
    assert_eq!(preview["lines"], 6, "{preview:#}");
    assert_eq!(preview["invalid"], 1, "{preview:#}");
    assert_eq!(preview["invalid_lines"][0]["line"], 5, "{preview:#}");
    assert_eq!(
        preview["duplicates"], 1,
        "+254712345678 and 0712345678 (KE) are one: {preview:#}"
    );
    assert_eq!(preview["to_send"], 4, "{preview:#}");
    assert_eq!(preview["languages"]["sw"], 1, "{preview:#}");

    let (status, started) = admin
        .post(
            "/api/campaigns",
            json!({"campaign": campaign("harvest"), "csv": AUDIENCE, "file": "harvest.csv"}),
        )
        .await;
    assert_eq!(status, 201, "{started}");
    let done = admin
        .progress_until("harvest", |p| p["sent"].as_u64() == Some(4))
        .await;
    assert_eq!(done["campaign"]["state"], "completed", "{done:#}");
    assert_eq!(
        done["progress"]["segments"], preview["segments"],
        "{done:#}"
    );

    let sends = admin.sent();
    let mut texts: Vec<(String, String)> = sends
        .iter()
        .map(|m| (m.connection.identity.clone(), m.text.clone()))
        .collect();
    texts.sort();
    assert_eq!(
        texts,
        vec![
            (
                "+254700000001".to_string(),
                "Hello Otieno, the market in Kisumu opens at 8.".to_string()
            ),
            (
                "+254700000002".to_string(),
                "Hello friend, the market in Mombasa opens at 8.".to_string()
            ),
            (
                "+254700000003".to_string(),
                "Hello Amina, the market in town opens at 8.".to_string()
            ),
            (
                "+254712345678".to_string(),
                "Habari Wanjiru, soko la Nyeri linafunguliwa saa mbili.".to_string()
            ),
        ]
    );
    assert!(sends
        .iter()
        .all(|m| m.campaign_id.as_deref() == Some("harvest")));
    drop(admin.running);
}
