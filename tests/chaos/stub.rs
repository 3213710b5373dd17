//! The world outside the pipeline: the provider stub the sink POSTs replies
//! to, and the load, inbound messages POSTed to the backend replicas'
//! webhooks as a gateway would.
//!
//! Message `seq` is `echo c<seq>` from phone `seq % phones`; echo answers
//! `c<seq>`, so the stub knows which inbound message each reply answers.
//!
//! How a POST counts:
//! - `200 OK`: accepted (the webhook answers once the message is stored);
//! - connection refused: certainly not accepted, tried on the next replica
//!   (all down: again after 200 ms, for at most 30 s, then `refused`);
//! - anything else (no answer, a reset mid-request, a 5xx): ambiguous. The
//!   message may be stored (a produce that timed out can still land), and a
//!   second POST would be a second message with a new id, so it is not
//!   retried; a reply to it is counted, the lack of one is not a loss;
//! - a 4xx: rejected, a bug in this test (the test fails).

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::State;
use axum::http::HeaderMap;
use axum::routing::post;
use axum::{Json, Router};
use serde_json::{json, Value};

use super::replicas::Endpoints;

/// One request the stub got.
pub struct Reply {
    /// Since the test's start.
    pub at: Duration,
    /// The `Idempotency-Key` (the reply's message id).
    pub key: String,
    /// The inbound message it answers.
    pub seq: Option<u64>,
    /// The partition of its phone (of every topic: all are keyed by
    /// the connection and have as many partitions).
    pub partition: i32,
}

/// What the stub's handler shares: the replies, the test's start, the
/// partitions.
type Shared = (Arc<Mutex<Vec<Reply>>>, Instant, i32);

#[derive(Clone)]
pub struct Stub {
    pub url: String,
    replies: Arc<Mutex<Vec<Reply>>>,
}

impl Stub {
    /// The stub; replies are sorted by the partition of their phone among
    /// `partitions`.
    pub async fn start(t0: Instant, partitions: i32) -> Stub {
        let replies = Arc::new(Mutex::new(Vec::new()));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/send", listener.local_addr().unwrap());
        let app =
            Router::new()
                .route("/send", post(send))
                .with_state((replies.clone(), t0, partitions));
        tokio::spawn(async move { axum::serve(listener, app).await });
        Stub { url, replies }
    }

    /// Replies so far.
    pub fn count(&self) -> usize {
        self.replies.lock().unwrap().len()
    }

    /// Run `f` over the replies so far.
    pub fn with<T>(&self, f: impl FnOnce(&[Reply]) -> T) -> T {
        f(&self.replies.lock().unwrap())
    }
}

async fn send(
    State((replies, t0, partitions)): State<Shared>,
    headers: HeaderMap,
    Json(body): Json<Value>,
) -> Json<Value> {
    let key = headers
        .get("idempotency-key")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    let seq = body["text"]
        .as_str()
        .and_then(|t| t.strip_prefix('c'))
        .and_then(|n| n.parse().ok());
    let phone = body["identity"].as_str().unwrap_or_default();
    let partition =
        smsflow::bus::partition_for_key(format!("gateway:{phone}").as_bytes(), partitions);
    replies.lock().unwrap().push(Reply {
        at: t0.elapsed(),
        key: key.clone(),
        seq,
        partition,
    });
    Json(json!({ "id": format!("p-{key}") }))
}

/// What became of one inbound POST.
#[derive(Debug, Clone)]
pub enum Sent {
    /// Answered 200, this long after the test's start.
    Accepted(Duration),
    /// When, and what happened.
    Ambiguous(Duration, String),
    /// Answered 4xx: refused for what it is (a bug in this test).
    Rejected(String),
    /// No replica took the connection for 30 s.
    Refused,
}

impl Sent {
    /// Why it is not simply accepted.
    pub fn reason(&self) -> Option<&str> {
        match self {
            Sent::Ambiguous(_, why) | Sent::Rejected(why) => Some(why),
            Sent::Refused => Some("no replica took the connection for 30 s"),
            Sent::Accepted(_) => None,
        }
    }
}

/// The load running in the background; [`Load::finish`] stops it.
pub struct Load {
    stop: Arc<AtomicBool>,
    task: tokio::task::JoinHandle<HashMap<u64, Sent>>,
}

impl Load {
    /// `per_second` messages from `phones` phones, over `endpoints`.
    pub fn start(endpoints: Endpoints, per_second: u64, phones: u64, t0: Instant) -> Load {
        let stop = Arc::new(AtomicBool::new(false));
        let stopping = stop.clone();
        let task = tokio::spawn(async move {
            let client = reqwest::Client::builder()
                .timeout(Duration::from_secs(30))
                .build()
                .unwrap();
            let outcomes = Arc::new(Mutex::new(HashMap::new()));
            // At most this many POSTs at once (the rate slows if they are slow).
            let slots = Arc::new(tokio::sync::Semaphore::new(256));
            let started = Instant::now();
            let mut seq = 0u64;
            while !stopping.load(Ordering::SeqCst) {
                let permit = slots.clone().acquire_owned().await.unwrap();
                let (client, endpoints, outcomes) =
                    (client.clone(), endpoints.clone(), outcomes.clone());
                tokio::spawn(async move {
                    let sent = post_one(&client, &endpoints, seq, phones, t0).await;
                    outcomes.lock().unwrap().insert(seq, sent);
                    drop(permit);
                });
                seq += 1;
                let due = started + Duration::from_micros(seq * 1_000_000 / per_second);
                tokio::time::sleep_until(due.into()).await;
            }
            // Every POST answered (or given up on).
            let _ = slots.acquire_many(256).await.unwrap();
            let outcomes = outcomes.lock().unwrap();
            outcomes.clone()
        });
        Load { stop, task }
    }

    /// Stop sending; every message's outcome once its POST is done.
    pub async fn finish(self) -> HashMap<u64, Sent> {
        self.stop.store(true, Ordering::SeqCst);
        self.task.await.unwrap()
    }
}

async fn post_one(
    client: &reqwest::Client,
    endpoints: &Endpoints,
    seq: u64,
    phones: u64,
    t0: Instant,
) -> Sent {
    let phone = format!("+1555{:06}", seq % phones);
    let text = format!("echo c{seq}");
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut attempt = seq as usize;
    loop {
        let urls = endpoints.lock().unwrap().clone();
        for _ in 0..urls.len() {
            let url = &urls[attempt % urls.len()];
            attempt += 1;
            let res = client
                .post(format!("{url}/backend/gateway/"))
                .form(&[("identity", phone.as_str()), ("text", text.as_str())])
                .send()
                .await;
            match res {
                Ok(r) if r.status().is_success() => return Sent::Accepted(t0.elapsed()),
                Ok(r) => {
                    let status = r.status();
                    let why = format!("{status}: {}", r.text().await.unwrap_or_default());
                    return match status.is_client_error() {
                        true => Sent::Rejected(why),
                        false => Sent::Ambiguous(t0.elapsed(), why),
                    };
                }
                Err(e) if e.is_connect() => continue,
                Err(e) => return Sent::Ambiguous(t0.elapsed(), chain(&e)),
            }
        }
        if Instant::now() > deadline {
            return Sent::Refused;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// An error and its causes, on one line.
fn chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut cause = e.source();
    while let Some(c) = cause {
        text.push_str(": ");
        text.push_str(&c.to_string());
        cause = c.source();
    }
    text
}
