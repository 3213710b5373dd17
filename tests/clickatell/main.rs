//! The Clickatell backend on the embedded bus, against a local stand-in for
//! Clickatell's Platform REST API that checks the API key and answers as the
//! real one does (202 with one entry per recipient, a per-recipient error
//! for an invalid number, 401 for a bad key, 503 once for "flaky").

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::routing::post;
use axum::{Json, Router};
use serde_json::{json, Value};
use smsflow::bus::Produce;
use smsflow::message::{Connection, DeliveryStatus, OutboundMessage};
use smsflow::schema;
use tokio::sync::Semaphore;

mod callbacks;
#[path = "../common/mod.rs"]
mod common;
mod sending;

const KEY: &str = "test-key";
/// The secret of the callback URLs (`receive.secret`).
const SECRET: &str = "clickatell-secret-0123456789";

/// A client that calls back as Clickatell does with `?secret=` in the
/// callback URLs: here in the header, the other place smsflow reads it.
fn callback_client() -> reqwest::Client {
    let mut headers = reqwest::header::HeaderMap::new();
    headers.insert("X-Smsflow-Secret", SECRET.parse().unwrap());
    reqwest::Client::builder()
        .default_headers(headers)
        .build()
        .unwrap()
}
/// The number the fake refuses, as Clickatell refuses an invalid destination.
const INVALID: &str = "15550000666";

#[derive(Debug, Clone)]
struct Request {
    method: Method,
    path: String,
    authorization: Option<String>,
    content_type: Option<String>,
    accept: Option<String>,
    body: Value,
}

struct Fake {
    requests: Mutex<Vec<Request>>,
    /// Requests with the content "gate" wait for a permit.
    gate: Semaphore,
}

impl Fake {
    fn requests(&self) -> Vec<Request> {
        self.requests.lock().unwrap().clone()
    }
}

fn header(h: &HeaderMap, name: &str) -> Option<String> {
    h.get(name).and_then(|v| v.to_str().ok()).map(str::to_owned)
}

async fn messages(
    State(fake): State<Arc<Fake>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> (StatusCode, Json<Value>) {
    let Ok(body) = serde_json::from_slice::<Value>(&body) else {
        return (
            StatusCode::BAD_REQUEST,
            Json(
                json!({"messages": [], "errorCode": 100, "error": "Data malformed", "errorDescription": "The JSON/XML data submitted is invalid."}),
            ),
        );
    };
    let request = Request {
        method,
        path: uri.path().to_owned(),
        authorization: header(&headers, "authorization"),
        content_type: header(&headers, "content-type"),
        accept: header(&headers, "accept"),
        body: body.clone(),
    };
    let tries = {
        let mut r = fake.requests.lock().unwrap();
        r.push(request.clone());
        r.iter()
            .filter(|q| q.body["content"] == body["content"])
            .count()
    };
    if request.authorization.as_deref() != Some(KEY) {
        return (
            StatusCode::UNAUTHORIZED,
            Json(
                json!({"messages": [], "errorCode": 1, "error": "Authentication failed", "errorDescription": "Authentication details are incorrect."}),
            ),
        );
    }
    match body["content"].as_str() {
        Some("gate") => fake.gate.acquire().await.unwrap().forget(),
        Some("flaky") if tries == 1 => {
            return (
                StatusCode::SERVICE_UNAVAILABLE,
                Json(
                    json!({"messages": [], "errorCode": 19, "error": "Internal error, please retry", "errorDescription": null}),
                ),
            )
        }
        _ => {}
    }
    let entries: Vec<Value> = body["to"]
        .as_array()
        .cloned()
        .unwrap_or_default()
        .into_iter()
        .map(|to| {
            let to = to.as_str().unwrap_or_default().to_owned();
            if to == INVALID {
                json!({"apiMessageId": null, "accepted": false, "to": to, "errorCode": 105,
                       "error": "Invalid destination address",
                       "errorDescription": "The destination address you are attempting to send to is invalid."})
            } else {
                json!({"apiMessageId": format!("api-{to}-{tries}"), "accepted": true, "to": to,
                       "errorCode": null, "error": null, "errorDescription": null})
            }
        })
        .collect();
    (
        StatusCode::ACCEPTED,
        Json(
            json!({"messages": entries, "errorCode": null, "error": null, "errorDescription": null}),
        ),
    )
}

/// The fake on a free port: its state and its base URL.
async fn fake() -> (Arc<Fake>, String) {
    let fake = Arc::new(Fake {
        requests: Mutex::default(),
        gate: Semaphore::new(0),
    });
    let app = Router::new()
        .route("/messages", post(messages))
        .with_state(fake.clone());
    (fake, format!("http://{}", common::serve(app).await))
}

/// POST `body` (JSON text) to `url`: the status and the parsed answer (null when empty).
async fn post_json(client: &reqwest::Client, url: &str, body: &str) -> (u16, Value) {
    let res = client
        .post(url)
        .header("content-type", "application/json")
        .body(body.to_owned())
        .send()
        .await
        .unwrap();
    common::json_answer(res).await
}

/// Wait (behaviour, not time: the deadline only bounds a failure) until `f` holds.
async fn until(what: &str, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while !f() {
        assert!(Instant::now() < deadline, "timed out waiting until {what}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}
