//! The sink every provider backend shares: it reads `sms.send.<backend>`,
//! hands each message to the provider at the configured rate with bounded
//! concurrency, retries transient failures with backoff, never sends a
//! message id twice (the [`SentLog`]), and writes a delivery event for every
//! outcome. A provider only says how to make one request ([`Provider`]).
//!
//! Each record is finished in a delivery task ([`Output::later`]): the stage
//! goes on reading while up to `concurrency` requests are in flight, and a
//! record's offset is marked done, in order, once its sent-log entry and
//! its event are stored. An event that cannot be encoded dead-letters the
//! record instead (`smsflow dlq replay` repeats the event once fixed).
//!
//! Shutdown ends every wait: a message still waiting for the rate limit is
//! left unfinished (not marked done, so it is read again after a restart and
//! sent then); one waiting between tries is recorded `retry` in the sent-log
//! and left unfinished too, so that the restart sends it again. Nothing is
//! marked `failed` because the process stopped: at least once, as the tries
//! themselves are.

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
        builder = builder.tls_certs_merge(crate::config::files::ca_certificates(path)?);
    }
    builder
        .build()
        .map_err(|e| anyhow::anyhow!("cannot set up the HTTPS client: {e}"))
}

/// A message handed to a delivery task, with the hold on its record.
struct Job {
    msg: OutboundMessage,
    later: Later,
}

/// Makes the delivery event of an outcome (the topic, the message, its
/// entry); a field so that a test can make it fail.
type EventFn = fn(&Arc<str>, &OutboundMessage, &Entry) -> Result<Produce, HandleError>;

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
    event: EventFn,
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
        Self::with_events(name, provider, settings, log, producer, events, event)
    }

    /// [`ProviderSink::new`] with `event` making the delivery events.
    fn with_events(
        name: &str,
        provider: Arc<dyn Provider>,
        settings: &Sending,
        log: SentLog,
        producer: Producer,
        events: Arc<str>,
        event: EventFn,
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
            event,
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
                let later = out.later(record, &self.producer);
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
        // `Retry` never gets here: the message is sent again instead.
        State::Failed | State::Sending | State::Retry => DeliveryStatus::Failed,
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
        // Every job of a delivery belongs to the same stage: one signal.
        let Some(first) = jobs.first() else { return };
        let waited = tokio::select! {
            // No wait (no limit) is no wait, also once shutdown began.
            biased;
            _ = self.wait_for_rate(&jobs) => true,
            _ = first.later.stopping() => false,
        };
        if !waited {
            // Not handed over: a restart reads these again and sends them.
            for j in jobs {
                self.log.release(&j.msg.id);
                j.later
                    .abandon("shutdown while it waited for the rate limit", Vec::new())
                    .await;
            }
            return;
        }
        if !self.write_ahead(&jobs).await {
            // Dropping the jobs' holds fails the stage: nothing is marked
            // done, a restart tries again.
            for j in &jobs {
                self.log.release(&j.msg.id);
            }
            return;
        }
        let msgs: Vec<&OutboundMessage> = jobs.iter().map(|j| &j.msg).collect();
        let entries = self.attempt(&msgs, &first.later).await;
        for (job, entry) in jobs.into_iter().zip(entries) {
            let msg = &job.msg;
            let log = self.log.record(&msg.id, entry.clone());
            if entry.state == State::Retry {
                tracing::warn!(backend = %self.name, id = %msg.id, error = ?entry.error, "shutdown during back-off: sent again after a restart");
                let reason = entry.error.as_deref().unwrap_or("shutdown during back-off");
                job.later.abandon(reason, vec![log]).await;
                continue;
            }
            let event = match (self.event)(&self.events, msg, &entry) {
                Ok(e) => e,
                Err(e) => {
                    // Without its event the message would stay `queued`
                    // for good: dead-letter it, to be replayed once fixed.
                    let message = format!("cannot encode the delivery event: {e}");
                    tracing::error!(backend = %self.name, id = %msg.id, %message, "dead-lettering the message");
                    job.later.dead_letter("encode", &message, vec![log]).await;
                    continue;
                }
            };
            let records = vec![log, event];
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
        let records = jobs.iter().map(|j| {
            self.log
                .record(&j.msg.id, Entry::sending(&j.msg.connection.identity))
        });
        self.store(records.collect()).await
    }

    /// Store sent-log records and wait until the bus has them; false when
    /// it could not.
    async fn store(&self, records: Vec<Produce>) -> bool {
        let acks = AckGroup::new();
        for record in records {
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

    /// `state` for each pending message, in the sent-log for a restart to
    /// read (this process keeps them in flight).
    async fn store_pending(
        &self,
        msgs: &[&OutboundMessage],
        pending: &[usize],
        entry: impl Fn(usize) -> Entry,
    ) -> bool {
        let records = pending
            .iter()
            .map(|&i| self.log.durable_only(&msgs[i].id, &entry(i)));
        self.store(records.collect()).await
    }

    /// Try until every message has a final outcome, or the tries run out,
    /// or `hold`'s stage is told to stop during a back-off (then what is
    /// left is `retry`).
    async fn attempt(&self, msgs: &[&OutboundMessage], hold: &Later) -> Vec<Entry> {
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
                // The provider does not have these now (it said so, or the
                // request failed): if smsflow dies during the back-off, a
                // restart sends them, as the next try would, instead of
                // reporting them "outcome unknown". Without this record the
                // sent-log still says `sending`, which is only more careful.
                let between = |i: usize| Entry {
                    state: State::Retry,
                    error: Some(format!(
                        "between tries ({attempt} so far): {}",
                        last_error[i]
                    )),
                    ..Entry::sending(&msgs[i].connection.identity)
                };
                self.store_pending(msgs, &pending, between).await;
                // Equal jitter: half the backoff, plus up to as much again at random.
                let jittered = wait / 2 + wait.mul_f64(fastrand::f64() / 2.0);
                let pause = after.map_or(jittered, |a| a.min(s.max_backoff));
                tokio::select! {
                    _ = tokio::time::sleep(pause) => {}
                    _ = hold.stopping() => {
                        for &i in &pending {
                            entries[i] = Some(Entry {
                                state: State::Retry,
                                error: Some(format!("shutdown during back-off after {attempt} tries: {}", last_error[i])),
                                ..Entry::sending(&msgs[i].connection.identity)
                            });
                        }
                        return finished(entries, msgs);
                    }
                }
                // `sending` again before the next request: after a crash
                // past this point the outcome is unknown once more.
                let sending = |i: usize| Entry::sending(&msgs[i].connection.identity);
                if !self.store_pending(msgs, &pending, sending).await {
                    for &i in &pending {
                        entries[i] = Some(Entry {
                            state: State::Retry,
                            error: Some(format!("cannot write the sent-log before try {}: not sent again until a restart", attempt + 1)),
                            ..sending(i)
                        });
                    }
                    return finished(entries, msgs);
                }
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
        finished(entries, msgs)
    }
}

/// Every message's entry (none is missing once the tries are over).
fn finished(entries: Vec<Option<Entry>>, msgs: &[&OutboundMessage]) -> Vec<Entry> {
    entries
        .into_iter()
        .zip(msgs)
        .map(|(e, m)| e.unwrap_or_else(|| Entry::sending(&m.connection.identity)))
        .collect()
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

    /// Accepts everything.
    struct Accepting;
    impl Provider for Accepting {
        fn send_one<'a>(&'a self, _: &'a OutboundMessage) -> BoxFuture<'a, Attempt> {
            async {
                Attempt::Accepted {
                    provider_id: Some("p-1".into()),
                    status: "accepted".into(),
                }
            }
            .boxed()
        }
    }

    /// Before: a delivery event that did not encode was logged and dropped,
    /// and the message stayed `queued` for good. After: the message is
    /// dead-lettered (kind `encode`) after its sent-log entry, so a replay
    /// repeats the event once the cause is fixed.
    #[tokio::test]
    async fn an_event_that_does_not_encode_dead_letters_the_message() {
        use crate::bus::{Bus, TopicSpec};
        use crate::stage::{run, StageContext, StageControl};
        let topics: Vec<TopicSpec> = ["sms.send.gw", "sms.send.gw.sent", "sms.events", "sms.dlq"]
            .into_iter()
            .map(|name| TopicSpec {
                name: name.into(),
                partitions: 1,
                replication: 1,
                compacted: false,
            })
            .collect();
        let bus = Bus::connect(
            &crate::config::Kafka::with_mode(crate::config::KafkaMode::Embedded),
            &topics,
        )
        .await
        .unwrap();
        let producer = bus.producer().unwrap();
        let mut dlq = bus.consumer("test.dlq", &["sms.dlq"]).unwrap();
        let mut sent = bus.consumer("test.sent", &["sms.send.gw.sent"]).unwrap();
        let mut events = bus.consumer("test.events", &["sms.events"]).unwrap();
        let unencodable: EventFn = |_, _, _| {
            Err(HandleError::Failed {
                kind: "encode",
                message: "no schema for this event".into(),
            })
        };
        let log = SentLog::new(Arc::from("sms.send.gw.sent"));
        let sink = ProviderSink::with_events(
            "gw",
            Arc::new(Accepting),
            &Sending::default(),
            log,
            producer.clone(),
            Arc::from("sms.events"),
            unencodable,
        );
        let ctx = StageContext {
            name: Arc::from("backend:gw"),
            dlq: Arc::from("sms.dlq"),
        };
        let consumer = bus.consumer("g", &["sms.send.gw"]).unwrap();
        let control = StageControl::default();
        let task = tokio::spawn(run(ctx, consumer, producer.clone(), sink, control.clone()));
        let msg = OutboundMessage::new(crate::message::Connection::new("gw", "+1555"), "hi");
        let payload = schema::outbound().encode(&msg).unwrap();
        producer
            .send_and_wait(Produce::new(
                Arc::from("sms.send.gw"),
                bytes::Bytes::from(msg.connection.key()),
                payload.clone(),
            ))
            .await
            .unwrap();
        let wait = Duration::from_secs(20);
        let dead = tokio::time::timeout(wait, dlq.recv())
            .await
            .unwrap()
            .unwrap();
        assert_eq!(&dead.payload[..], &payload[..]);
        assert_eq!(dead.header("smsflow.error.kind"), Some(&b"encode"[..]));
        assert_eq!(
            dead.header("smsflow.source.topic"),
            Some(&b"sms.send.gw"[..])
        );
        let message = String::from_utf8_lossy(dead.header("smsflow.error.message").unwrap());
        assert!(message.contains("no schema for this event"), "{message}");
        let entry = tokio::time::timeout(wait, sent.recv())
            .await
            .unwrap()
            .unwrap();
        let entry: Entry = serde_json::from_slice(&entry.payload).unwrap();
        assert_eq!(entry.state, State::Sending);
        let entry = tokio::time::timeout(wait, sent.recv())
            .await
            .unwrap()
            .unwrap();
        let entry: Entry = serde_json::from_slice(&entry.payload).unwrap();
        assert_eq!(entry.state, State::Sent);
        assert!(events.recv().now_or_never().is_none(), "no event was made");
        // Dead-lettered is finished: the stage drains cleanly.
        control.drain.cancel();
        tokio::time::timeout(wait, task)
            .await
            .unwrap()
            .unwrap()
            .unwrap();
    }

    #[test]
    fn limiters_space_requests_evenly() {
        assert!(limiter(None).is_none());
        let l = limiter(Some(1000.0)).unwrap();
        assert!(l.check().is_ok());
        assert!(l.check().is_err(), "one token: the second waits");
    }
}
