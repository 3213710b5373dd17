//! The Twilio backend on the embedded bus, against a fake Messages API that
//! records every request: signed webhooks in (checked over the configured
//! public URL), replies out exactly as Twilio's API takes them, errors
//! retried or not, status callbacks as delivery events, and signatures
//! checked against Twilio's own helper library.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::{Json, Router};
use base64::prelude::{Engine as _, BASE64_STANDARD};
use serde_json::{json, Value};
use smsflow::backends::twilio::{signature, EMPTY_TWIML};
use smsflow::bus::Consumer;
use smsflow::config::KafkaMode;
use smsflow::message::{DeliveryEvent, DeliveryStatus, InboundMessage};
use smsflow::schema;
use smsflow::topology::{Running, Topology};

#[path = "../common/mod.rs"]
mod common;
mod messages;
mod refusals;
mod signatures;

const SID: &str = "AC0123456789abcdef0123456789abcdef";
const TOKEN: &str = "5f0c2a9e7b1d4e3f8a6b9c0d1e2f3a4b";
/// Our Twilio number.
const NUMBER: &str = "+15005550006";
/// What Twilio calls; the server listens on 127.0.0.1 behind it.
const PUBLIC: &str = "https://sms.example.org/hooks";
const INBOUND: &str = "/backend/twilio/";

/// Phones the fake API answers differently.
const REJECTED: &str = "+255700000400";
const FLAKY: &str = "+255700000503";
const BUSY: &str = "+255700000429";

/// Form parameters, in order.
type Params = Vec<(String, String)>;

/// One request the fake API got.
#[derive(Debug, Clone)]
struct Request {
    method: String,
    path: String,
    authorization: Option<String>,
    content_type: Option<String>,
    form: Params,
}

impl Request {
    fn get(&self, name: &str) -> Option<&str> {
        self.form
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

#[derive(Default)]
struct Fake {
    requests: Vec<Request>,
}

impl Fake {
    fn to(&self, phone: &str) -> usize {
        self.requests
            .iter()
            .filter(|r| r.get("To") == Some(phone))
            .count()
    }
}

/// Twilio's Messages API as far as the tests need it: every request is
/// recorded as it came (any method and path), and answered like Twilio.
async fn fake_api(
    State(f): State<Arc<Mutex<Fake>>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    // The url crate's form parser: independent of smsflow's.
    let form: Params =
        reqwest::Url::parse(&format!("http://form/?{}", String::from_utf8_lossy(&body)))
            .map(|u| u.query_pairs().into_owned().collect())
            .unwrap_or_default();
    let header = |name: &str| {
        headers
            .get(name)
            .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
    };
    let request = Request {
        method: method.to_string(),
        path: uri.to_string(),
        authorization: header("authorization"),
        content_type: header("content-type"),
        form,
    };
    let to = request.get("To").unwrap_or_default().to_owned();
    let from = request.get("From").map(str::to_owned);
    let text = request.get("Body").unwrap_or_default().to_owned();
    let (tries, n) = {
        let mut f = f.lock().unwrap();
        let tries = f.to(&to);
        f.requests.push(request);
        (tries, f.requests.len())
    };
    let error = |status: StatusCode, code: u32, message: &str| {
        Json(json!({
            "code": code,
            "message": message,
            "more_info": format!("https://www.twilio.com/docs/errors/{code}"),
            "status": status.as_u16(),
        }))
    };
    match (to.as_str(), tries) {
        (REJECTED, _) => (
            StatusCode::BAD_REQUEST,
            error(
                StatusCode::BAD_REQUEST,
                21211,
                &format!("The 'To' number {to} is not a valid phone number."),
            ),
        )
            .into_response(),
        (FLAKY, 0) => (
            StatusCode::SERVICE_UNAVAILABLE,
            error(
                StatusCode::SERVICE_UNAVAILABLE,
                20500,
                "Internal Server Error",
            ),
        )
            .into_response(),
        (BUSY, 0) => (
            StatusCode::TOO_MANY_REQUESTS,
            [("Retry-After", "1")],
            error(StatusCode::TOO_MANY_REQUESTS, 20429, "Too Many Requests"),
        )
            .into_response(),
        _ => {
            let sid = message_sid(n);
            (
                StatusCode::CREATED,
                Json(json!({
                    "account_sid": SID,
                    "api_version": "2010-04-01",
                    "body": text,
                    "date_created": "Thu, 01 Jan 2026 12:00:00 +0000",
                    "date_sent": null,
                    "date_updated": "Thu, 01 Jan 2026 12:00:00 +0000",
                    "direction": "outbound-api",
                    "error_code": null,
                    "error_message": null,
                    "from": from,
                    "messaging_service_sid": null,
                    "num_media": "0",
                    "num_segments": "1",
                    "price": null,
                    "price_unit": "USD",
                    "sid": sid,
                    "status": "queued",
                    "subresource_uris": {"media": format!("/2010-04-01/Accounts/{SID}/Messages/{sid}/Media.json")},
                    "to": to,
                    "uri": format!("/2010-04-01/Accounts/{SID}/Messages/{sid}.json"),
                })),
            )
                .into_response()
        }
    }
}

/// The fake API's sid for its `n`-th request.
fn message_sid(n: usize) -> String {
    format!("SM{n:032x}")
}

/// Pairs as owned strings.
fn p(pairs: &[(&str, &str)]) -> Params {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// An inbound message's webhook, every parameter Twilio sends.
fn sms(from: &str, body: &str, sid: &str) -> Params {
    p(&[
        ("ToCountry", "US"),
        ("ToState", "CA"),
        ("SmsMessageSid", sid),
        ("NumMedia", "0"),
        ("ToCity", ""),
        ("FromZip", ""),
        ("SmsSid", sid),
        ("FromState", ""),
        ("SmsStatus", "received"),
        ("FromCity", ""),
        ("Body", body),
        ("FromCountry", "TZ"),
        ("To", NUMBER),
        ("MessagingServiceSid", "MG0123456789abcdef0123456789abcdef"),
        ("ToZip", ""),
        ("NumSegments", "1"),
        ("MessageSid", sid),
        ("AccountSid", SID),
        ("From", from),
        ("ApiVersion", "2010-04-01"),
    ])
}

/// A status callback's parameters.
fn callback(sid: &str, to: &str, status: &str, error: Option<&str>) -> Params {
    let mut params = p(&[
        ("ApiVersion", "2010-04-01"),
        ("MessageStatus", status),
        ("SmsSid", sid),
        ("SmsStatus", status),
        ("To", to),
        ("From", NUMBER),
        ("MessageSid", sid),
        ("AccountSid", SID),
    ]);
    if let Some(code) = error {
        params.push(("ErrorCode".into(), code.into()));
    }
    params
}

fn sign(url: &str, params: &[(String, String)]) -> String {
    signature(TOKEN, url, params)
}

/// A running pipeline with a Twilio backend pointed at the fake API.
struct Harness {
    running: Running,
    base: String,
    fake: Arc<Mutex<Fake>>,
    events: Consumer,
    inbound: Consumer,
    client: reqwest::Client,
}

async fn start() -> Harness {
    let fake = Arc::new(Mutex::new(Fake::default()));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let api = format!("http://{}", listener.local_addr().unwrap());
    let app = Router::new().fallback(fake_api).with_state(fake.clone());
    tokio::spawn(async move { axum::serve(listener, app).await });
    let yaml = format!(
        r#"
http:
  listen: ${{SMSFLOW_LISTEN}}
  public_url: {PUBLIC}
backends:
  - type: twilio
    account_sid: {SID}
    auth_token: {TOKEN}
    from: "{NUMBER}"
    api_url: {api}/
    send: {{backoff: 10ms}}
routes:
  - app: echo
apps:
  - type: echo
"#
    );
    let running = Topology::new(common::pipeline_from(&yaml, KafkaMode::Embedded))
        .unwrap()
        .start(None, true)
        .await
        .unwrap();
    let base = format!("http://{}", running.http_addr().unwrap());
    let events = running
        .bus()
        .consumer("test.events", &["sms.events"])
        .unwrap();
    let inbound = running
        .bus()
        .consumer("test.inbound", &["sms.inbound"])
        .unwrap();
    Harness {
        running,
        base,
        fake,
        events,
        inbound,
        client: reqwest::Client::new(),
    }
}

impl Harness {
    /// POST `params` to `path` (with its query), with `signature` if any.
    async fn post_with(
        &self,
        path: &str,
        params: &[(String, String)],
        signature: Option<&str>,
    ) -> reqwest::Response {
        let mut req = self
            .client
            .post(format!("{}{path}", self.base))
            .form(params);
        if let Some(s) = signature {
            req = req.header("X-Twilio-Signature", s);
        }
        req.send().await.unwrap()
    }

    /// POST `params` to `path`, signed as Twilio signs it: over the public URL.
    async fn post(&self, path: &str, params: &[(String, String)]) -> reqwest::Response {
        let sig = sign(&format!("{PUBLIC}{path}"), params);
        self.post_with(path, params, Some(&sig)).await
    }

    async fn next_event(&mut self) -> DeliveryEvent {
        common::next_event(&mut self.events).await
    }

    async fn next_inbound(&mut self) -> InboundMessage {
        common::next(&mut self.inbound, schema::inbound()).await
    }

    fn requests(&self) -> Vec<Request> {
        self.fake.lock().unwrap().requests.clone()
    }

    async fn stop(self) {
        self.running.shutdown().await.unwrap();
    }
}

/// The JSON error of a refused request: (status, field, message).
async fn refusal(res: reqwest::Response) -> (u16, Value, String) {
    let status = res.status().as_u16();
    let body: Value = res.json().await.unwrap_or(Value::Null);
    (
        status,
        body["field"].clone(),
        body["error"].as_str().unwrap_or_default().to_owned(),
    )
}
