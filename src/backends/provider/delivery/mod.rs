//! The delivery tasks behind a sink: rate limits, bounded concurrency,
//! batching by text, the tries with backoff, and the sent-log records and
//! events each outcome is finished with.
//!
//! Two lanes share them: conversations (`sms.send.<backend>`) and bulk
//! (campaigns, `sms.send.<backend>.bulk`), each read by its own consumer
//! with its own sent-log. A waiting conversation message always goes
//! first, and both lanes draw on the same rate limits, so a campaign
//! running at the provider's rate delays a reply by at most the bulk
//! messages already being handed over (`concurrency` of them).
//!
//! The limits are the backend's, summed over its replicas: each replica
//! takes the part of them that its share of the conversation lane's
//! partitions is (a replica owning 3 of 8 partitions sends at 3/8 of the
//! rate), recomputed at every rebalance.

use std::sync::Arc;
use std::time::{Duration, Instant};

use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};
use tokio::sync::{mpsc, Semaphore};

use super::request::{Attempt, Provider};
use crate::backends::sent::{Entry, SentLog, State};
use crate::bus::{AckGroup, Produce, Producer};
use crate::config::Sending;
use crate::message::OutboundMessage;
use crate::metrics::{metrics, observe_since};
use crate::stage::{HandleError, Later};

mod claims;

/// A message handed to a delivery task, with the hold on its record.
pub(super) struct Job {
    pub(super) msg: OutboundMessage,
    pub(super) later: Later,
}

/// Which lane a message came in on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Lane {
    Conversation,
    Bulk,
}

/// The queues the sink's handlers hand messages to.
pub(super) struct Queues {
    pub(super) conversation: mpsc::Sender<Job>,
    /// With a bulk lane.
    pub(super) bulk: Option<mpsc::Sender<Job>>,
}

/// The rate limits as this replica's share of them makes them.
struct Limits {
    share: f64,
    messages: Option<DefaultDirectRateLimiter>,
    segments: Option<DefaultDirectRateLimiter>,
}

impl Limits {
    fn new(settings: &Sending, share: f64) -> Limits {
        Limits {
            share,
            messages: limiter(settings.rate.map(|r| r * share)),
            segments: limiter(settings.segment_rate.map(|r| r * share)),
        }
    }
}

/// Makes the delivery event of an outcome (the topic, the message, its
/// entry); a field so that a test can make it fail.
pub(super) type EventFn = fn(&Arc<str>, &OutboundMessage, &Entry) -> Result<Produce, HandleError>;

/// What the delivery tasks share.
struct Delivery {
    name: String,
    stage: String,
    provider: Arc<dyn Provider>,
    settings: Sending,
    log: SentLog,
    /// The bulk lane's sent-log.
    bulk_log: Option<SentLog>,
    producer: Producer,
    events: Arc<str>,
    /// The conversation lane's assignment and partition count: this
    /// replica's share of the limits.
    share: std::sync::OnceLock<(Arc<crate::bus::Rebalances>, Arc<str>, i32)>,
    /// One delivery at a time takes its tokens, so that a message's
    /// segments are not interleaved with another's.
    limits: tokio::sync::Mutex<Limits>,
    reply_latency: prometheus::Histogram,
    event: EventFn,
}

/// A token bucket of `rate` per second that holds one token: requests are
/// spaced evenly, never bunched. A rate of 0 (no partition owned) is one
/// request a minute: nothing should come, and a straggler is not stuck.
fn limiter(rate: Option<f64>) -> Option<DefaultDirectRateLimiter> {
    let rate = rate?.max(1.0 / 60.0);
    let period = Duration::from_secs_f64(1.0 / rate);
    Some(RateLimiter::direct(Quota::with_period(period)?))
}
/// Start a sink's delivery tasks (needs a tokio runtime): the queue its
/// handler hands messages to.
/// What [`start`] needs besides the provider.
pub(super) struct Setup {
    pub(super) settings: Sending,
    pub(super) log: SentLog,
    /// The bulk lane's sent-log; none: no bulk lane.
    pub(super) bulk_log: Option<SentLog>,
    pub(super) producer: Producer,
    pub(super) events: Arc<str>,
    pub(super) event: EventFn,
}

/// Handle to a sink's delivery tasks, to tell them its share of the limits.
#[derive(Clone)]
pub(super) struct Shares(Arc<Delivery>);

impl Shares {
    /// Take the share of the limits that the conversation lane's consumer
    /// owns of `topic`'s `partitions`.
    pub(super) fn follow(
        &self,
        rebalances: Arc<crate::bus::Rebalances>,
        topic: Arc<str>,
        partitions: i32,
    ) {
        let _ = self.0.share.set((rebalances, topic, partitions));
    }
}

pub(super) fn start(name: &str, provider: Arc<dyn Provider>, setup: Setup) -> (Queues, Shares) {
    let settings = &setup.settings;
    let concurrency = settings.concurrency.max(1);
    let batch = provider.batch().max(1);
    let (tx, rx) = mpsc::channel(concurrency * batch);
    let (bulk_tx, bulk_rx) = match setup.bulk_log {
        Some(_) => {
            let (tx, rx) = mpsc::channel(concurrency * batch);
            (Some(tx), Some(rx))
        }
        None => (None, None),
    };
    let delivery = Arc::new(Delivery {
        name: name.to_owned(),
        stage: format!("backend:{name}"),
        provider,
        limits: tokio::sync::Mutex::new(Limits::new(settings, 1.0)),
        settings: setup.settings.clone(),
        log: setup.log,
        bulk_log: setup.bulk_log,
        producer: setup.producer,
        events: setup.events,
        share: std::sync::OnceLock::new(),
        reply_latency: metrics().reply_latency.with_label_values(&[name]),
        event: setup.event,
    });
    tokio::spawn(dispatch(delivery.clone(), rx, bulk_rx, concurrency, batch));
    (
        Queues {
            conversation: tx,
            bulk: bulk_tx,
        },
        Shares(delivery),
    )
}

/// Group queued jobs into requests and run them, `concurrency` at a time;
/// a conversation message waiting always goes before a bulk one.
async fn dispatch(
    delivery: Arc<Delivery>,
    mut rx: mpsc::Receiver<Job>,
    mut bulk: Option<mpsc::Receiver<Job>>,
    concurrency: usize,
    batch: usize,
) {
    let slots = Arc::new(Semaphore::new(concurrency));
    let mut conversation = Vec::with_capacity(batch);
    let mut bulk_jobs = Vec::with_capacity(batch);
    loop {
        let lane = tokio::select! {
            biased;
            n = rx.recv_many(&mut conversation, batch) => match n {
                0 => return,
                _ => Lane::Conversation,
            },
            n = async {
                match bulk.as_mut() {
                    Some(b) => b.recv_many(&mut bulk_jobs, batch).await,
                    None => std::future::pending().await,
                }
            } => match n {
                0 => {
                    bulk = None;
                    continue;
                }
                _ => Lane::Bulk,
            },
        };
        let mut queued = match lane {
            Lane::Conversation => std::mem::take(&mut conversation),
            Lane::Bulk => std::mem::take(&mut bulk_jobs),
        };
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
                delivery.deliver(same, lane).await;
                drop(slot);
            });
        }
    }
}

impl Delivery {
    /// The sent-log of `lane`.
    fn log(&self, lane: Lane) -> &SentLog {
        match (lane, &self.bulk_log) {
            (Lane::Bulk, Some(log)) => log,
            _ => &self.log,
        }
    }

    async fn deliver(self: &Arc<Self>, jobs: Vec<Job>, lane: Lane) {
        let log = self.log(lane);
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
                log.release(&j.msg.id);
                j.later
                    .abandon("shutdown while it waited for the rate limit", Vec::new())
                    .await;
            }
            return;
        }
        // Taken for sending now, unless the partition went to another
        // member meanwhile: then its next owner sends it.
        let (jobs, gone): (Vec<Job>, Vec<Job>) =
            jobs.into_iter().partition(|j| log.claim(&j.msg.id));
        for j in gone {
            j.later.revoked().await;
        }
        if jobs.is_empty() {
            return;
        }
        let written = self.write_ahead(&jobs, log).await;
        log.settle(jobs.len());
        let jobs = match written {
            true => self.first_claims(jobs, lane).await,
            false => jobs,
        };
        let Some(first) = jobs.first() else { return };
        if !written {
            // Dropping the jobs' holds fails the stage: nothing is marked
            // done, a restart tries again.
            for j in &jobs {
                log.release(&j.msg.id);
            }
            return;
        }
        let msgs: Vec<&OutboundMessage> = jobs.iter().map(|j| &j.msg).collect();
        tracing::debug!(backend = %self.name, ids = ?msgs.iter().map(|m| &m.id).collect::<Vec<_>>(), "handing to the provider");
        let entries = self.attempt(&msgs, &first.later, log).await;
        for (job, entry) in jobs.into_iter().zip(entries) {
            let msg = &job.msg;
            let log = log.record(&msg.id, entry.clone());
            if entry.state == State::Retry {
                tracing::warn!(backend = %self.name, id = %msg.id, error = ?entry.error, "shutdown during back-off: sent again after a restart");
                let reason = entry.error.as_deref().unwrap_or("shutdown during back-off");
                job.later.abandon(reason, vec![log]).await;
                continue;
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
            self.finish_with_event(job, &entry, vec![log]).await;
        }
    }

    /// Finish `job` with `records` and the delivery event of `entry`.
    async fn finish_with_event(&self, job: Job, entry: &Entry, mut records: Vec<Produce>) {
        match (self.event)(&self.events, &job.msg, entry) {
            Ok(event) => {
                records.push(event);
                job.later.finish(records).await;
            }
            Err(e) => {
                // Without its event the message would stay `queued` for
                // good: dead-letter it, to be replayed once fixed.
                let message = format!("cannot encode the delivery event: {e}");
                tracing::error!(backend = %self.name, id = %job.msg.id, %message, "dead-lettering the message");
                job.later.dead_letter("encode", &message, records).await;
            }
        }
    }

    /// Wait until the rate limits let these messages (and their segments) go.
    async fn wait_for_rate(&self, jobs: &[Job]) {
        if self.settings.rate.is_none() && self.settings.segment_rate.is_none() {
            return;
        }
        let mut limits = self.limits.lock().await;
        if let Some((rebalances, topic, partitions)) = self.share.get() {
            let share = rebalances.share(topic, *partitions);
            if share != limits.share {
                tracing::info!(backend = %self.name, share, "rate limits follow this replica's share of the partitions");
                *limits = Limits::new(&self.settings, share);
            }
        }
        let started = Instant::now();
        let segments: u32 = jobs.iter().map(|j| j.msg.segments.max(1) as u32).sum();
        for (limiter, n) in [
            (&limits.messages, jobs.len() as u32),
            (&limits.segments, segments),
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
    async fn write_ahead(&self, jobs: &[Job], log: &SentLog) -> bool {
        let records = jobs
            .iter()
            .map(|j| log.record(&j.msg.id, Entry::sending(&j.msg.connection.identity)));
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
        log: &SentLog,
    ) -> bool {
        let records = pending
            .iter()
            .map(|&i| log.durable_only(&msgs[i].id, &entry(i)));
        self.store(records.collect()).await
    }

    /// Try until every message has a final outcome, or the tries run out,
    /// or `hold`'s stage is told to stop during a back-off (then what is
    /// left is `retry`).
    async fn attempt(&self, msgs: &[&OutboundMessage], hold: &Later, log: &SentLog) -> Vec<Entry> {
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
                            campaign_id: msgs[i].campaign_id.clone(),
                            app: msgs[i].app.clone(),
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
                self.store_pending(msgs, &pending, between, log).await;
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
                if !self.store_pending(msgs, &pending, sending, log).await {
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

    #[test]
    fn limiters_space_requests_evenly() {
        assert!(limiter(None).is_none());
        let l = limiter(Some(1000.0)).unwrap();
        assert!(l.check().is_ok());
        assert!(l.check().is_err(), "one token: the second waits");
    }
}
