//! The sent-log: what a sink did with each message id, so that no id is
//! handed to a provider twice, also across restarts, and so that delivery
//! reports that name only the provider's id find our message.
//!
//! Before the first request for a message the sink writes `sending` and waits
//! until the bus stored it; after the last it writes the outcome (`sent` with
//! the provider's id, or `failed`). A message read again finds its entry:
//! after an outcome the sink only repeats the outcome's delivery event; after
//! a bare `sending` (the sink stopped mid-request) it does not send again,
//! since the provider may have the message: it reports it failed with
//! "outcome unknown". After `retry` (shutdown interrupted the back-off
//! between tries) it is sent again, as the next try would have been. At
//! most once towards the provider, at least once for the events.
//!
//! On Kafka the log is a compacted topic (`<send topic>.sent`, key = message
//! id, value = a small JSON object, deleted after `topics.sent_retention`)
//! that every replica of the sink follows for as long as it runs, so that
//! each knows what the others sent: a replica given a partition reads the
//! log up to its end before it handles that partition's records
//! ([`SentLog::catch_up`]), and a replica losing partitions settles what it
//! started for them before they go ([`SentLog::revoke`]): a message it had
//! not yet marked `sending` is left to the next owner, one it had is in the
//! log. The durable embedded bus reads the log back at start-up; on the
//! in-memory embedded bus it lives in memory, like everything else there.
//! In memory each process keeps at most `topics.sent_memory` ids, the
//! oldest going first.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::Duration;

use bytes::Bytes;
use serde::{Deserialize, Serialize};

use crate::bus::{Bus, BusError, Produce, Producer, Record, TopicPartition};
use crate::message::now_millis;
use crate::metrics::metrics;
use crate::state::table::{follow, Follower, Phase};

/// How long a revocation waits for `sending` records being written.
const SETTLE: Duration = Duration::from_secs(10);

/// Where a message id stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum State {
    /// Handed to a request whose outcome is not recorded.
    Sending,
    Sent,
    Failed,
    /// Tried, failed transiently, and shutdown came before the next try:
    /// not handed over as far as the sink knows, so it is sent again.
    Retry,
}

/// One message id's entry (the topic's record value, as JSON).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Entry {
    pub state: State,
    /// The phone it went to (delivery reports that name only the provider id
    /// need the connection).
    #[serde(default)]
    pub identity: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub provider_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub provider_status: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    #[serde(default)]
    pub at: i64,
    /// The message's campaign and app (on `sent`: delivery reports that
    /// name only the provider id carry them on).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub campaign_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub app: Option<String>,
    /// The process that wrote it (a token of its own per run): of two
    /// replicas that both claim a message (`sending`), the one whose claim
    /// the log holds first sends it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub by: Option<String>,
}

impl Entry {
    pub fn sending(identity: &str) -> Entry {
        Entry {
            state: State::Sending,
            identity: identity.to_owned(),
            provider_id: None,
            provider_status: None,
            error: None,
            at: now_millis(),
            campaign_id: None,
            app: None,
            by: None,
        }
    }

    /// This entry, a claim whose request may or may not have reached the
    /// provider, made a final failure: "outcome unknown", because `why`.
    /// It is not sent again, in case the provider has it.
    pub fn unknown(self, why: &str) -> Entry {
        Entry {
            state: State::Failed,
            error: Some(format!(
                "outcome unknown: {why}, and it is not sent again in case the provider has it"
            )),
            provider_status: Some("unknown".into()),
            ..self
        }
    }
}

/// What [`SentLog::check`] found for an id.
#[derive(Debug, Clone, PartialEq)]
pub enum Seen {
    /// Never handed to the provider: send it.
    New,
    /// Being sent by this process now: the first copy reports it.
    InFlight,
    /// Recorded before (this run or an earlier one).
    Recorded(Entry),
}

/// Shared by a sink's handler, its delivery tasks and its callbacks.
#[derive(Clone)]
pub struct SentLog {
    topic: Arc<str>,
    inner: Arc<Mutex<Inner>>,
    /// Signalled when claims are released (a revocation waits for none).
    settled: Arc<Condvar>,
    /// Kafka: the follower of the topic (the other replicas' records).
    follower: Option<Arc<Follower>>,
    restore_timeout: Duration,
    /// Stamped on every record this process writes (`Entry::by`).
    token: Arc<str>,
}

/// An id this process knows of.
#[derive(Debug, Clone)]
enum Slot {
    /// Handed to this process's delivery tasks, from `partition` as
    /// assigned at `epoch`; `claimed` once its `sending` is being written.
    InFlight {
        partition: i32,
        epoch: u64,
        claimed: bool,
        /// Who claimed it first, as the log says (followed since).
        first: Option<String>,
        /// That claim's outcome, when it was another replica's and the log
        /// holds one.
        theirs: Option<Entry>,
    },
    Known(Entry),
}

struct Inner {
    ids: HashMap<String, Slot>,
    order: VecDeque<String>,
    /// Provider id → our message id.
    by_provider: HashMap<String, String>,
    /// Bumped when a partition is taken away: what was handed out under
    /// an older epoch is not started.
    epochs: HashMap<i32, u64>,
    /// Delivery tasks writing `sending` now.
    claims: usize,
    /// Ids kept at most.
    memory: usize,
    entries: prometheus::IntGauge,
}

impl Inner {
    fn put(&mut self, id: &str, slot: Slot) {
        if let Slot::Known(Entry {
            provider_id: Some(pid),
            ..
        }) = &slot
        {
            self.by_provider.insert(pid.clone(), id.to_owned());
        }
        if self.ids.insert(id.to_owned(), slot).is_none() {
            self.order.push_back(id.to_owned());
            while self.order.len() > self.memory {
                let Some(old) = self.order.pop_front() else {
                    break;
                };
                if let Some(Slot::Known(e)) = self.ids.remove(&old) {
                    if let Some(pid) = e.provider_id {
                        self.by_provider.remove(&pid);
                    }
                }
            }
        }
        self.entries.set(self.ids.len() as i64);
    }

    fn remove(&mut self, id: &str) {
        self.ids.remove(id);
        self.entries.set(self.ids.len() as i64);
    }

    /// `id` is no longer in flight here. What the log said of it meanwhile
    /// is kept: another replica's claim makes it known as that replica's
    /// `sending`, so that a later copy is not sent here too.
    fn forget(&mut self, id: &str, token: &str) {
        let Some(Slot::InFlight { first, theirs, .. }) = self.ids.get(id) else {
            return;
        };
        match (first.clone(), theirs.clone()) {
            (Some(by), theirs) if by != token => {
                let entry = theirs.unwrap_or(Entry {
                    by: Some(by),
                    ..Entry::sending("")
                });
                self.put(id, Slot::Known(entry));
            }
            _ => self.remove(id),
        }
    }

    fn epoch(&self, partition: i32) -> u64 {
        self.epochs.get(&partition).copied().unwrap_or(0)
    }
}

impl SentLog {
    /// An empty log of `backend` writing to `topic`, keeping at most
    /// `memory` ids.
    pub fn new(backend: &str, topic: Arc<str>, memory: usize) -> Self {
        let entries = metrics().sent_log_entries.with_label_values(&[backend]);
        entries.set(0);
        Self {
            topic,
            inner: Arc::new(Mutex::new(Inner {
                ids: HashMap::new(),
                order: VecDeque::new(),
                by_provider: HashMap::new(),
                epochs: HashMap::new(),
                claims: 0,
                memory: memory.max(1),
                entries,
            })),
            settled: Arc::new(Condvar::new()),
            follower: None,
            restore_timeout: Duration::from_secs(120),
            token: Arc::from(crate::message::new_id().as_str()),
        }
    }

    /// The log as the topic holds it, and on Kafka kept current with what
    /// the other replicas write; empty on the in-memory embedded bus.
    /// `producer` writes the dead letters of records that cannot be read.
    pub async fn restore(
        bus: &Bus,
        producer: &Producer,
        mut log: SentLog,
        group: &str,
        restore_timeout: Duration,
    ) -> Result<Self, BusError> {
        log.restore_timeout = restore_timeout;
        match bus {
            Bus::Kafka(_) => {
                let follower = log.clone();
                let f = follow(
                    bus,
                    producer,
                    group,
                    &log.topic.clone(),
                    restore_timeout,
                    move |r: &Record, _: Phase| {
                        if let Some(key) = r.key.as_deref() {
                            follower.followed(key, &r.payload);
                        }
                        None
                    },
                )
                .await?;
                log.follower = Some(Arc::new(f));
            }
            Bus::Durable(d) => {
                let mut reader = d.reader(&log.topic)?;
                while let Some(r) = reader.restore_next() {
                    let r = r?;
                    if let Some(key) = r.key.as_deref() {
                        log.followed(key, &r.payload);
                    }
                }
            }
            Bus::Embedded(_) => {}
        }
        Ok(log)
    }

    fn inner(&self) -> MutexGuard<'_, Inner> {
        // Nothing panics while holding it; a poisoned lock still holds good data.
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Read what the other replicas wrote up to the log's end now (on
    /// Kafka; at once elsewhere): before handling partitions just assigned.
    pub async fn catch_up(&self) -> Result<(), BusError> {
        match &self.follower {
            Some(f) => f.catch_up(self.restore_timeout).await,
            None => Ok(()),
        }
    }

    /// Where `id` (read from `partition`) stands; a new id (or one left to
    /// `retry`) is marked in flight at once, so that a second copy read
    /// meanwhile is not sent too.
    pub fn check(&self, id: &str, partition: i32) -> Seen {
        let mut inner = self.inner();
        let in_flight = Slot::InFlight {
            partition,
            epoch: inner.epoch(partition),
            claimed: false,
            first: None,
            theirs: None,
        };
        match inner.ids.get(id) {
            Some(Slot::InFlight { .. }) => Seen::InFlight,
            Some(Slot::Known(e)) if e.state != State::Retry => Seen::Recorded(e.clone()),
            Some(Slot::Known(_)) => {
                inner.ids.insert(id.to_owned(), in_flight);
                Seen::New
            }
            None => {
                inner.put(id, in_flight);
                Seen::New
            }
        }
    }

    /// Forget that `id` is in flight (it was not handed to the provider).
    pub fn release(&self, id: &str) {
        self.inner().forget(id, &self.token);
    }

    /// Take `id` for sending, just before its `sending` record is written:
    /// false when its partition was taken away since it was handed out
    /// (the next owner sends it). Each claim is released with
    /// [`SentLog::settle`] once the record is written (or not).
    pub fn claim(&self, id: &str) -> bool {
        let mut inner = self.inner();
        let inner = &mut *inner;
        let Some(Slot::InFlight {
            partition,
            epoch,
            claimed,
            ..
        }) = inner.ids.get_mut(id)
        else {
            return false;
        };
        // What the log said meanwhile (another replica's claim) stays.
        let current = inner.epochs.get(partition).copied().unwrap_or(0);
        if *epoch != current {
            return false;
        }
        *claimed = true;
        inner.claims += 1;
        true
    }

    /// `n` claims' `sending` records are written (or failed).
    pub fn settle(&self, n: usize) {
        let mut inner = self.inner();
        inner.claims = inner.claims.saturating_sub(n);
        if inner.claims == 0 {
            self.settled.notify_all();
        }
    }

    /// `partitions` are being taken away (called before they go): what was
    /// handed out for them and not claimed is forgotten (its delivery task
    /// gives it up; the next owner sends it), and this waits until every
    /// claimed `sending` is written, so that the next owner's catch-up
    /// reads it.
    pub fn revoke(&self, partitions: &[TopicPartition]) {
        let mut inner = self.inner();
        let revoked: Vec<i32> = partitions.iter().map(|(_, p)| *p).collect();
        for p in &revoked {
            *inner.epochs.entry(*p).or_default() += 1;
        }
        let unclaimed: Vec<String> = inner
            .ids
            .iter()
            .filter(|(_, slot)| {
                matches!(slot, Slot::InFlight { partition, claimed: false, .. } if revoked.contains(partition))
            })
            .map(|(id, _)| id.clone())
            .collect();
        for id in &unclaimed {
            inner.forget(id, &self.token);
        }
        let (inner, waited) = self
            .settled
            .wait_timeout_while(inner, SETTLE, |i| i.claims > 0)
            .unwrap_or_else(|p| p.into_inner());
        if waited.timed_out() {
            tracing::warn!(topic = %self.topic, claims = inner.claims, "partitions revoked while sent-log records were still being written");
        }
        tracing::info!(topic = %self.topic, partitions = ?revoked, left = unclaimed.len(), "sent-log: partitions handed over");
    }

    /// Record `entry` for `id`: the record to store (before the message's
    /// offset is marked done; before the request, for `sending`).
    pub fn record(&self, id: &str, mut entry: Entry) -> Produce {
        entry.by = Some(self.token.to_string());
        let record = self.durable_only(id, &entry);
        // `sending` stays "in flight" in memory: only a restart makes it unknown.
        if entry.state != State::Sending {
            self.inner().put(id, Slot::Known(entry));
        }
        record
    }

    /// The record of `entry` for `id`, for a restart to read, leaving this
    /// process's view as it is (the message stays in flight here).
    pub fn durable_only(&self, id: &str, entry: &Entry) -> Produce {
        let entry = Entry {
            by: Some(self.token.to_string()),
            ..entry.clone()
        };
        let value = serde_json::to_vec(&entry).unwrap_or_default();
        Produce::new(
            self.topic.clone(),
            Bytes::from(id.to_owned()),
            Bytes::from(value),
        )
    }

    /// After this process's `sending` for `id` is stored: whether its claim
    /// is the first the log holds (then it sends), rather than another
    /// replica's (a partition owned twice for a while: a member the group
    /// dropped that does not know it yet). On Kafka this waits until the
    /// follower has read the claim back; elsewhere one process owns all.
    pub async fn first_claim(&self, id: &str) -> Result<bool, BusError> {
        let Some(follower) = &self.follower else {
            return Ok(true);
        };
        let mut applied = follower.changes();
        let deadline = tokio::time::Instant::now() + self.restore_timeout;
        loop {
            match self.inner().ids.get(id) {
                Some(Slot::InFlight {
                    first: Some(first), ..
                }) => {
                    tracing::debug!(id, first = %first, mine = %self.token, "sent-log: claim decided");
                    return Ok(**first == *self.token);
                }
                Some(Slot::InFlight { first: None, .. }) => {}
                // Forgotten (a revocation) or known: not this process's to send.
                _ => return Ok(false),
            }
            match tokio::time::timeout_at(deadline, applied.changed()).await {
                Ok(Ok(())) => {}
                Ok(Err(_)) => return Err(BusError::Closed),
                Err(_) => {
                    return Err(BusError::Kafka {
                        message: format!(
                            "{}: this process's claim of {id} was not read back within {:?}",
                            self.topic, self.restore_timeout
                        ),
                        retryable: true,
                    })
                }
            }
        }
    }

    /// Another replica claimed `id` first: known here as its `sending`
    /// (or as its outcome, when the log already holds that).
    pub fn lost_claim(&self, id: &str, identity: &str) {
        let mut inner = self.inner();
        let entry = match inner.ids.get(id) {
            Some(Slot::Known(_)) => return,
            Some(Slot::InFlight {
                theirs: Some(e), ..
            }) => e.clone(),
            _ => Entry {
                by: None,
                ..Entry::sending(identity)
            },
        };
        inner.put(id, Slot::Known(entry));
    }

    /// After [`SentLog::lost_claim`]: the outcome the replica that claimed
    /// `id` first records for it, once the log holds one; none when
    /// `deadline` passes first (that replica may have died between its
    /// claim and its request) or when nothing follows the log.
    pub async fn their_outcome(&self, id: &str, deadline: tokio::time::Instant) -> Option<Entry> {
        let follower = self.follower.as_ref()?;
        let mut applied = follower.changes();
        loop {
            match self.inner().ids.get(id) {
                Some(Slot::Known(e)) if e.state != State::Sending => return Some(e.clone()),
                Some(Slot::Known(_)) => {}
                _ => return None,
            }
            match tokio::time::timeout_at(deadline, applied.changed()).await {
                Ok(Ok(())) => {}
                Ok(Err(_)) | Err(_) => return None,
            }
        }
    }

    /// `id`, whose first claim was another replica's, is to be sent here
    /// after all (that replica left it to `retry`): in flight again, from
    /// `partition` as assigned now.
    pub fn retake(&self, id: &str, partition: i32) {
        let mut inner = self.inner();
        let slot = Slot::InFlight {
            partition,
            epoch: inner.epoch(partition),
            claimed: false,
            first: None,
            theirs: None,
        };
        inner.put(id, slot);
    }

    /// Our message id for the provider's id `provider_id`, and its entry
    /// when this process knows it (the phone, when it was sent, its
    /// campaign and app).
    pub fn by_provider_id(&self, provider_id: &str) -> Option<(String, Option<Entry>)> {
        let inner = self.inner();
        let id = inner.by_provider.get(provider_id)?;
        let entry = match inner.ids.get(id) {
            Some(Slot::Known(e)) => Some(e.clone()),
            _ => None,
        };
        Some((id.clone(), entry))
    }

    /// Apply one record read from the topic (written by any replica, this
    /// one included). An id in flight here is this process's to finish; a
    /// `sending` read back after this process's outcome is stale.
    fn followed(&self, key: &[u8], value: &[u8]) {
        let Ok(id) = std::str::from_utf8(key) else {
            return;
        };
        // Values written before the log kept states were a bare timestamp
        // of a message handed to the provider.
        let entry = serde_json::from_slice::<Entry>(value).unwrap_or(Entry {
            state: State::Sent,
            ..Entry::sending("")
        });
        let mut inner = self.inner();
        match inner.ids.get_mut(id) {
            // In flight here: the first claim the log holds decides who
            // sends, and that replica's outcome finishes it.
            Some(Slot::InFlight { first, theirs, .. }) => {
                let by = entry.by.clone().unwrap_or_default();
                let other = by != *self.token;
                match (first.as_deref(), entry.state) {
                    (None, State::Sending) => {
                        tracing::debug!(id, by, "sent-log: first claim read");
                        *first = Some(by);
                    }
                    // Another replica finished it (its claim not read here).
                    (None, State::Sent | State::Failed) if other => {
                        *first = Some(by);
                        *theirs = Some(entry);
                    }
                    (Some(f), State::Sent | State::Failed | State::Retry) if other && f == by => {
                        tracing::debug!(id, by, state = ?entry.state, "sent-log: the first claim's outcome read");
                        *theirs = Some(entry);
                    }
                    _ => {}
                }
            }
            Some(Slot::Known(known))
                if entry.state == State::Sending
                    && matches!(known.state, State::Sent | State::Failed) => {}
            _ => inner.put(id, Slot::Known(entry)),
        }
    }
}

#[cfg(test)]
mod tests;
