//! The web API (and a few pages) on the embedded bus, with a tester
//! backend standing in for the phones: contacts, CSV import, messaging and
//! message status, polls, the message log, opt-outs.

use std::time::{Duration, Instant};

use serde_json::{json, Value};
use smsflow::topology::Running;

#[path = "../common/mod.rs"]
mod common;
mod contacts;
mod log_and_pages;
mod messaging;

struct Web {
    running: Running,
    base: String,
    client: reqwest::Client,
}

impl Web {
    async fn start(yaml: &str) -> Web {
        let running = common::start_embedded(yaml).await;
        let base = format!("http://{}", running.admin_addr().unwrap());
        let client = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap();
        Web {
            running,
            base,
            client,
        }
    }

    async fn call(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> (u16, Value) {
        let mut req = self.client.request(method, format!("{}{path}", self.base));
        if let Some(b) = body {
            req = req.json(&b);
        }
        common::json_answer(req.send().await.unwrap()).await
    }

    async fn get(&self, path: &str) -> (u16, Value) {
        self.call(reqwest::Method::GET, path, None).await
    }

    async fn post(&self, path: &str, body: Value) -> (u16, Value) {
        self.call(reqwest::Method::POST, path, Some(body)).await
    }

    /// A raw body, as a client that sends no JSON would.
    async fn post_raw(&self, path: &str, content_type: &str, body: &str) -> (u16, Value) {
        let res = self
            .client
            .post(format!("{}{path}", self.base))
            .header("content-type", content_type)
            .body(body.to_owned())
            .send()
            .await
            .unwrap();
        common::json_answer(res).await
    }

    /// A page: status and HTML.
    async fn page(&self, path: &str) -> (u16, String) {
        let res = self
            .client
            .get(format!("{}{path}", self.base))
            .send()
            .await
            .unwrap();
        (res.status().as_u16(), res.text().await.unwrap())
    }

    /// A form as the page posts it, with the CSRF token its page carries.
    async fn post_form(&self, path: &str, form: &[(&str, &str)]) -> (u16, String, String) {
        let res = self
            .client
            .get(format!("{}/contacts/new", self.base))
            .send()
            .await
            .unwrap();
        let cookie = common::csrf_cookie(&res);
        let token = common::csrf_token(&res.text().await.unwrap());
        let mut form = form.to_vec();
        form.push(("csrf", &token));
        let res = self
            .client
            .post(format!("{}{path}", self.base))
            .header("cookie", cookie)
            .form(&form)
            .send()
            .await
            .unwrap();
        let location = res
            .headers()
            .get("location")
            .map(|l| l.to_str().unwrap().to_owned())
            .unwrap_or_default();
        (res.status().as_u16(), location, res.text().await.unwrap())
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

    /// What the phone `identity` received, once it has `n` messages.
    async fn received(&self, identity: &str, n: usize) -> Vec<String> {
        common::received(&self.client, &self.base, identity, n).await
    }

    async fn contact(&self, body: Value) -> Value {
        let (status, answer) = self.post("/api/contacts", body.clone()).await;
        assert_eq!(status, 201, "{body}: {answer}");
        answer["contact"].clone()
    }
}

/// Ask `ask` every 20 ms until its answer is `done`, for at most 20 s; the
/// last answer (the caller asserts on it).
async fn until<T, F, Fut>(mut ask: F, done: impl Fn(&T) -> bool) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = T>,
{
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let answer = ask().await;
        if done(&answer) || Instant::now() > deadline {
            return answer;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The next record on `topic` about contact `id` (an empty payload is a tombstone).
async fn next_about(topic: &mut smsflow::bus::Consumer, id: &str) -> bytes::Bytes {
    loop {
        let r = tokio::time::timeout(Duration::from_secs(20), topic.recv())
            .await
            .expect("a record within 20 s")
            .unwrap();
        if r.key.as_deref() == Some(id.as_bytes()) {
            return r.payload;
        }
    }
}

fn contact_of(payload: &[u8]) -> smsflow::message::Contact {
    smsflow::schema::contact().decode(payload).unwrap()
}

fn assert_refused(answer: &(u16, Value), status: u16, field: &str, words: &str) {
    let (s, body) = answer;
    assert_eq!(*s, status, "{body}");
    assert_eq!(body["field"], field, "{body}");
    let error = body["error"].as_str().unwrap_or_default();
    assert!(error.contains(words), "{error:?} should say {words:?}");
}
