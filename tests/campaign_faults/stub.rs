//! The provider stub: the generic `http` backend POSTs each message here
//! as JSON (`identity`, `text`, `campaign_id`, the message id in an
//! `Idempotency-Key` header); the stub keeps every request it got, when,
//! and answers `200` with a provider id at once.
//!
//! Shared by `tests/campaign_faults/` and `tests/campaign_lanes/`.

use std::sync::{Arc, Mutex};
use std::time::Instant;

use axum::extract::State;
use axum::http::HeaderMap;
use axum::routing::post;
use axum::{Json, Router};
use serde_json::{json, Value};

/// One request the stub got.
#[derive(Debug, Clone)]
pub struct Request {
    pub at: Instant,
    /// The `Idempotency-Key` header: the message id.
    pub key: String,
    /// The number it goes to.
    pub identity: String,
    pub text: String,
    /// A campaign's message names its campaign; a reply names none.
    pub campaign: Option<String>,
}

type Requests = Arc<Mutex<Vec<Request>>>;

#[derive(Clone)]
pub struct Stub {
    /// Where the backend sends (`url:` of the pipeline's backend).
    pub url: String,
    requests: Requests,
}

impl Stub {
    pub async fn start() -> Stub {
        let requests = Requests::default();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/send", listener.local_addr().unwrap());
        let app = Router::new()
            .route("/send", post(send))
            .with_state(requests.clone());
        tokio::spawn(async move { axum::serve(listener, app).await });
        Stub { url, requests }
    }

    /// Run `f` over the requests so far.
    pub fn with<T>(&self, f: impl FnOnce(&[Request]) -> T) -> T {
        f(&self.requests.lock().unwrap())
    }

    /// Requests of campaign `id` so far.
    pub fn of_campaign(&self, id: &str) -> usize {
        self.with(|r| {
            r.iter()
                .filter(|r| r.campaign.as_deref() == Some(id))
                .count()
        })
    }
}

async fn send(
    State(requests): State<Requests>,
    headers: HeaderMap,
    Json(body): Json<Value>,
) -> Json<Value> {
    let at = Instant::now();
    let key = headers
        .get("idempotency-key")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    let text = |field: &str| body[field].as_str().unwrap_or_default().to_owned();
    requests.lock().unwrap().push(Request {
        at,
        key: key.clone(),
        identity: text("identity"),
        text: text("text"),
        campaign: body["campaign_id"].as_str().map(str::to_owned),
    });
    Json(json!({ "id": format!("p-{key}") }))
}
