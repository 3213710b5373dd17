//! The sink every provider backend shares: it reads `sms.send.<backend>`,
//! hands each message to the provider at the configured rate with bounded
//! concurrency, retries transient failures with backoff, never sends a
//! message id twice (the [`SentLog`]), and writes a delivery event for every
//! outcome. A provider only says how to make one request ([`Provider`]).
//!
//! Each record is finished in a delivery task ([`Output::later`]): the stage
//! goes on reading while up to `concurrency` requests are in flight, and a
//! record's offset is marked done, in order, once its sent-log entry and
//! its event are stored.

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use futures::future::BoxFuture;
use futures::FutureExt;
use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};
use reqwest::header::{HeaderMap, RETRY_AFTER};
use reqwest::StatusCode;
use tokio::sync::{mpsc, Semaphore};

use super::sent::{Entry, Seen, SentLog, State};
use crate::bus::{AckGroup, Produce, Producer, Record};
use crate::config::Sending;
use crate::message::{DeliveryEvent, DeliveryStatus, OutboundMessage};
use crate::metrics::{metrics, observe_since};
use crate::schema;
use crate::stage::{decode, encode, HandleError, Handler, Later, Output};

/// What one try to hand a message to the provider came to.
#[derive(Debug, Clone, PartialEq)]
pub enum Attempt {
    /// The provider took it: its id for the message, and its status as it said it.
    Accepted {
        provider_id: Option<String>,
        status: String,
    },
    /// The provider refused it for good (a 4xx): not tried again.
    Rejected { error: String, status: String },
    /// A transient failure (timeout, no connection, 5xx, 429): try again,
    /// after `after` when the provider said so (`Retry-After`).
    Retry {
        error: String,
        after: Option<Duration>,
    },
}

/// How to hand messages to one provider.
pub trait Provider: Send + Sync + 'static {
    /// Messages with the same text one request may carry. Default 1.
    fn batch(&self) -> usize {
        1
    }

    /// Try once to hand `msg` to the provider.
    fn send_one<'a>(&'a self, msg: &'a OutboundMessage) -> BoxFuture<'a, Attempt>;

    /// Try once to hand `msgs` (one, or up to [`Provider::batch`] with the
    /// same text) to the provider: one [`Attempt`] per message, in order.
    /// Default: one request each, in turn.
    fn send<'a>(&'a self, msgs: &'a [&'a OutboundMessage]) -> BoxFuture<'a, Vec<Attempt>> {
        async move {
            let mut out = Vec::with_capacity(msgs.len());
            for m in msgs {
                out.push(self.send_one(m).await);
            }
            out
        }
        .boxed()
    }
}

/// A provider's answer to one request.
pub struct Answer {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: String,
}

impl Answer {
    /// The failure a non-2xx answer is, transient or permanent (see [`http_failure`]).
    pub fn failure(&self) -> Attempt {
        http_failure(self.status, &self.headers, &self.body)
    }
}

/// Make `request`: the provider's answer (whatever its status), or the
/// attempt it came to without one: a request that cannot be built (a bad
/// URL or key) is permanent; a timeout or connection failure is transient.
pub async fn call(request: reqwest::RequestBuilder) -> Result<Answer, Attempt> {
    // Errors without the URL: Kannel's carries the sendsms password, and
    // the error goes to the logs and into the `failed` event.
    match request.send().await.map_err(reqwest::Error::without_url) {
        Err(e) if e.is_builder() => Err(Attempt::Rejected {
            error: format!(
                "cannot build the request (check the backend's URL and credentials): {e}"
            ),
            status: "invalid request".into(),
        }),
        Err(e) => Err(transport_failure(&e)),
        Ok(res) => Ok(Answer {
            status: res.status(),
            headers: res.headers().clone(),
            // A body cut off mid-way reads as what arrived of it.
            body: res.text().await.unwrap_or_default(),
        }),
    }
}

/// A failed HTTP answer as an attempt: 408, 429 and 5xx are transient
/// (429 and 503 honour `Retry-After`), any other status is permanent.
pub fn http_failure(status: StatusCode, headers: &HeaderMap, body: &str) -> Attempt {
    let body: String = body.trim().chars().take(300).collect();
    let error = if body.is_empty() {
        format!("HTTP {status}")
    } else {
        format!("HTTP {status}: {body}")
    };
    if status.is_server_error()
        || status == StatusCode::REQUEST_TIMEOUT
        || status == StatusCode::TOO_MANY_REQUESTS
    {
        Attempt::Retry {
            error,
            after: retry_after(headers),
        }
    } else {
        Attempt::Rejected {
            error,
            status: status.as_u16().to_string(),
        }
    }
}

/// A request that got no answer (timeout, refused or broken connection): transient.
fn transport_failure(e: &reqwest::Error) -> Attempt {
    let kind = if e.is_timeout() {
        "timed out"
    } else if e.is_connect() {
        "cannot connect"
    } else {
        "request failed"
    };
    let mut error = format!("{kind}: {e}");
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        error.push_str(&format!(": {s}"));
        source = s.source();
    }
    Attempt::Retry { error, after: None }
}

/// `Retry-After` as seconds or as an HTTP date.
fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    let value = headers.get(RETRY_AFTER)?.to_str().ok()?.trim();
    if let Ok(secs) = value.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let at = httpdate::parse_http_date(value).ok()?;
    Some(at.duration_since(SystemTime::now()).unwrap_or_default())
}

/// The HTTP client a provider uses: TLS with the system's roots plus
/// `send.ca_file`'s, and the sink's per-request timeout.
pub fn client(settings: &Sending) -> anyhow::Result<reqwest::Client> {
    let mut builder = reqwest::Client::builder()
        .timeout(settings.timeout)
        .pool_max_idle_per_host(settings.concurrency.max(1));
    if let Some(path) = &settings.ca_file {
        builder = builder.tls_certs_merge(ca_certificates(path)?);
    }
    builder
        .build()
        .map_err(|e| anyhow::anyhow!("cannot set up the HTTPS client: {e}"))
}

/// The certificates of a PEM file, or an error naming the file (never its
/// contents).
pub fn ca_certificates(path: &str) -> anyhow::Result<Vec<reqwest::Certificate>> {
    let pem = std::fs::read(path)
        .map_err(|e| anyhow::anyhow!("send.ca_file {path:?} cannot be read: {e}"))?;
    let certs = reqwest::Certificate::from_pem_bundle(&pem)
        .map_err(|e| anyhow::anyhow!("send.ca_file {path:?} is not PEM certificates: {e}"))?;
    if certs.is_empty() {
        anyhow::bail!("send.ca_file {path:?} holds no certificate (expected PEM \"BEGIN CERTIFICATE\" blocks)");
    }
    Ok(certs)
}

/// A message handed to a delivery task, with the hold on its record.
struct Job {
    msg: OutboundMessage,
    later: Later,
}

/// The sink stage's handler.
pub struct ProviderSink {
    name: String,
    log: SentLog,
    producer: Producer,
    events: Arc<str>,
    jobs: mpsc::Sender<Job>,
    duplicates: prometheus::IntCounter,
}

/// What the delivery tasks share.
struct Delivery {
    name: String,
    stage: String,
    provider: Arc<dyn Provider>,
    settings: Sending,
    log: SentLog,
    producer: Producer,
    events: Arc<str>,
    messages: Option<DefaultDirectRateLimiter>,
    segments: Option<DefaultDirectRateLimiter>,
    /// One delivery at a time takes its tokens, so that a message's
    /// segments are not interleaved with another's.
    rate_turn: tokio::sync::Mutex<()>,
    reply_latency: prometheus::Histogram,
}

/// A token bucket of `rate` per second that holds one token: requests are
/// spaced evenly, never bunched.
fn limiter(rate: Option<f64>) -> Option<DefaultDirectRateLimiter> {
    let period = Duration::from_secs_f64(1.0 / rate?);
    Some(RateLimiter::direct(Quota::with_period(period)?))
}

impl ProviderSink {
    /// Start the sink's dispatcher (needs a tokio runtime).
    pub fn new(
        name: &str,
        provider: Arc<dyn Provider>,
        settings: &Sending,
        log: SentLog,
        producer: Producer,
        events: Arc<str>,
    ) -> Self {
        let concurrency = settings.concurrency.max(1);
        let batch = provider.batch().max(1);
        let (tx, rx) = mpsc::channel(concurrency * batch);
        let delivery = Arc::new(Delivery {
            name: name.to_owned(),
            stage: format!("backend:{name}"),
            provider,
            settings: settings.clone(),
            log: log.clone(),
            producer: producer.clone(),
            events: events.clone(),
            messages: limiter(settings.rate),
            segments: limiter(settings.segment_rate),
            rate_turn: tokio::sync::Mutex::new(()),
            reply_latency: metrics().reply_latency.with_label_values(&[name]),
        });
        tokio::spawn(dispatch(delivery, rx, concurrency, batch));
        Self {
            name: name.to_owned(),
            log,
            producer,
            events,
            jobs: tx,
            duplicates: metrics()
                .dropped
                .with_label_values(&[&format!("backend:{name}"), "duplicate"]),
        }
    }
}

impl Handler for ProviderSink {
    async fn handle(&mut self, record: &Record, out: &mut Output) -> Result<(), HandleError> {
        let msg = decode(schema::outbound(), record)?;
        if msg.connection.backend != self.name {
            return Err(HandleError::input(
                "invalid",
                format!(
                    "message for backend {:?} on {}'s topic",
                    msg.connection.backend, self.name
                ),
            ));
        }
        match self.log.check(&msg.id) {
            Seen::New => {
                let later = out.later(&self.producer);
                let id = msg.id.clone();
                if self.jobs.send(Job { msg, later }).await.is_err() {
                    self.log.release(&id);
                    return Err(HandleError::Failed {
                        kind: "closed",
                        message: "the sink's delivery tasks stopped".into(),
                    });
                }
            }
            Seen::InFlight => self.duplicates.inc(),
            Seen::Recorded(entry) if entry.state == State::Sending => {
                // Handed to the provider before a restart, outcome unknown.
                let entry = Entry {
                    state: State::Failed,
                    error: Some("outcome unknown: the sink stopped while sending it, and it is not sent again in case the provider has it".into()),
                    provider_status: Some("unknown".into()),
                    ..entry
                };
                tracing::warn!(backend = %self.name, id = %msg.id, "not resent: outcome of an earlier send unknown");
                out.push(self.log.record(&msg.id, entry.clone()));
                out.push(event(&self.events, &msg, &entry)?);
            }
            Seen::Recorded(entry) => {
                // Sent before: only say so again (the event may not have been stored).
                self.duplicates.inc();
                out.push(event(&self.events, &msg, &entry)?);
            }
        }
        Ok(())
    }
}

/// The delivery event that tells `entry`'s outcome for `msg`.
fn event(events: &Arc<str>, msg: &OutboundMessage, entry: &Entry) -> Result<Produce, HandleError> {
    let status = match entry.state {
        State::Sent => DeliveryStatus::Sent,
        State::Failed | State::Sending => DeliveryStatus::Failed,
    };
    let event = DeliveryEvent {
        at: entry.at,
        provider_id: entry.provider_id.clone(),
        provider_status: entry.provider_status.clone(),
        error: entry.error.clone(),
        ..DeliveryEvent::now(msg, status)
    };
    encode(schema::event(), events, &msg.connection, &event)
}

/// Group queued jobs into requests and run them, `concurrency` at a time.
async fn dispatch(
    delivery: Arc<Delivery>,
    mut rx: mpsc::Receiver<Job>,
    concurrency: usize,
    batch: usize,
) {
    let slots = Arc::new(Semaphore::new(concurrency));
    let mut queued = Vec::with_capacity(batch);
    while rx.recv_many(&mut queued, batch).await > 0 {
        // One request carries one text: group what is waiting by text, in order.
        while !queued.is_empty() {
            let text = queued[0].msg.text.clone();
            let (same, rest): (Vec<Job>, Vec<Job>) =
                queued.drain(..).partition(|j| j.msg.text == text);
            queued = rest;
            let Ok(slot) = slots.clone().acquire_owned().await else {
                return;
            };
            let delivery = delivery.clone();
            tokio::spawn(async move {
                delivery.deliver(same).await;
                drop(slot);
            });
        }
    }
}

impl Delivery {
    async fn deliver(&self, jobs: Vec<Job>) {
        self.wait_for_rate(&jobs).await;
        if !self.write_ahead(&jobs).await {
            // Dropping the jobs' holds fails the stage: nothing is marked
            // done, a restart tries again.
            for j in &jobs {
                self.log.release(&j.msg.id);
            }
            return;
        }
        let msgs: Vec<&OutboundMessage> = jobs.iter().map(|j| &j.msg).collect();
        let entries = self.attempt(&msgs).await;
        for (job, entry) in jobs.into_iter().zip(entries) {
            let msg = &job.msg;
            let mut records = vec![self.log.record(&msg.id, entry.clone())];
            match event(&self.events, msg, &entry) {
                Ok(e) => records.push(e),
                Err(e) => {
                    tracing::error!(backend = %self.name, id = %msg.id, error = %e, "cannot encode the delivery event")
                }
            }
            if entry.state == State::Sent {
                observe_since(&self.reply_latency, msg.created_at);
            } else {
                metrics()
                    .errors
                    .with_label_values(&[&self.stage, "provider"])
                    .inc();
                tracing::error!(backend = %self.name, id = %msg.id, error = ?entry.error, "not delivered");
            }
            job.later.finish(records).await;
        }
    }

    /// Wait until the rate limits let these messages (and their segments) go.
    async fn wait_for_rate(&self, jobs: &[Job]) {
        if self.messages.is_none() && self.segments.is_none() {
            return;
        }
        let _turn = self.rate_turn.lock().await;
        let started = Instant::now();
        let segments: u32 = jobs.iter().map(|j| j.msg.segments.max(1) as u32).sum();
        for (limiter, n) in [
            (&self.messages, jobs.len() as u32),
            (&self.segments, segments),
        ] {
            if let Some(l) = limiter {
                for _ in 0..n {
                    l.until_ready().await;
                }
            }
        }
        let waited = started.elapsed().as_secs_f64();
        if waited > 0.0 {
            metrics()
                .rate_limited
                .with_label_values(&[&self.name])
                .inc_by(waited);
        }
    }

    /// Store `sending` for every message before any request; false when the
    /// bus could not.
    async fn write_ahead(&self, jobs: &[Job]) -> bool {
        let acks = AckGroup::new();
        for j in jobs {
            let record = self
                .log
                .record(&j.msg.id, Entry::sending(&j.msg.connection.identity));
            if let Err(e) = self.producer.send_in(record, Some(&acks)).await {
                tracing::error!(backend = %self.name, error = %e, "cannot write the sent-log");
                return false;
            }
        }
        if let Err(e) = acks.wait().await {
            tracing::error!(backend = %self.name, error = %e, "cannot write the sent-log");
            return false;
        }
        true
    }

    /// Try until every message has a final outcome, or the tries run out.
    async fn attempt(&self, msgs: &[&OutboundMessage]) -> Vec<Entry> {
        let s = &self.settings;
        let mut entries: Vec<Option<Entry>> = vec![None; msgs.len()];
        let mut last_error = vec![String::new(); msgs.len()];
        let mut pending: Vec<usize> = (0..msgs.len()).collect();
        let mut wait = s.backoff;
        for attempt in 1..=s.attempts {
            let batch: Vec<&OutboundMessage> = pending.iter().map(|&i| msgs[i]).collect();
            let mut outcomes = self.provider.send(&batch).await.into_iter();
            let mut again = Vec::new();
            let mut after: Option<Duration> = None;
            for &i in &pending {
                let outcome = outcomes.next().unwrap_or_else(|| Attempt::Retry {
                    error: "the provider's answer did not mention this recipient".into(),
                    after: None,
                });
                let identity = &msgs[i].connection.identity;
                let label = match outcome {
                    Attempt::Accepted {
                        provider_id,
                        status,
                    } => {
                        entries[i] = Some(Entry {
                            state: State::Sent,
                            provider_id,
                            provider_status: Some(status),
                            ..Entry::sending(identity)
                        });
                        "accepted"
                    }
                    Attempt::Rejected { error, status } => {
                        entries[i] = Some(Entry {
                            state: State::Failed,
                            provider_status: Some(status),
                            error: Some(error),
                            ..Entry::sending(identity)
                        });
                        "rejected"
                    }
                    Attempt::Retry { error, after: a } => {
                        tracing::warn!(backend = %self.name, id = %msgs[i].id, attempt, %error, "provider failed, will retry");
                        last_error[i] = error;
                        after = after.max(a);
                        again.push(i);
                        "retry"
                    }
                };
                metrics()
                    .provider_requests
                    .with_label_values(&[&self.name, label])
                    .inc();
            }
            pending = again;
            if pending.is_empty() {
                break;
            }
            if attempt < s.attempts {
                // Equal jitter: half the backoff, plus up to as much again at random.
                let jittered = wait / 2 + wait.mul_f64(fastrand::f64() / 2.0);
                let pause = after.map_or(jittered, |a| a.min(s.max_backoff));
                tokio::time::sleep(pause).await;
                wait = (wait * 2).min(s.max_backoff);
            }
        }
        for i in pending {
            entries[i] = Some(Entry {
                state: State::Failed,
                error: Some(format!(
                    "gave up after {} tries: {}",
                    s.attempts, last_error[i]
                )),
                ..Entry::sending(&msgs[i].connection.identity)
            });
        }
        entries
            .into_iter()
            .zip(msgs)
            .map(|(e, m)| e.unwrap_or_else(|| Entry::sending(&m.connection.identity)))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use reqwest::header::HeaderValue;

    #[test]
    fn http_statuses_are_transient_or_permanent() {
        let mut h = HeaderMap::new();
        h.insert(RETRY_AFTER, HeaderValue::from_static("7"));
        assert_eq!(
            http_failure(StatusCode::TOO_MANY_REQUESTS, &h, "slow down"),
            Attempt::Retry {
                error: "HTTP 429 Too Many Requests: slow down".into(),
                after: Some(Duration::from_secs(7))
            }
        );
        assert!(matches!(
            http_failure(StatusCode::SERVICE_UNAVAILABLE, &HeaderMap::new(), ""),
            Attempt::Retry { after: None, .. }
        ));
        assert_eq!(
            http_failure(StatusCode::FORBIDDEN, &HeaderMap::new(), "Not routable."),
            Attempt::Rejected {
                error: "HTTP 403 Forbidden: Not routable.".into(),
                status: "403".into()
            }
        );
        let mut h = HeaderMap::new();
        let soon = httpdate::fmt_http_date(SystemTime::now() + Duration::from_secs(30));
        h.insert(RETRY_AFTER, HeaderValue::from_str(&soon).unwrap());
        let after = retry_after(&h).unwrap();
        assert!(after > Duration::from_secs(25) && after <= Duration::from_secs(30));
    }

    #[test]
    fn limiters_space_requests_evenly() {
        assert!(limiter(None).is_none());
        let l = limiter(Some(1000.0)).unwrap();
        assert!(l.check().is_ok());
        assert!(l.check().is_err(), "one token: the second waits");
    }
}
