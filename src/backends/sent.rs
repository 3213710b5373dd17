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
//! id, value = a small JSON object) read back at start-up, also on the
//! durable embedded bus; on the in-memory embedded bus it lives in memory,
//! like everything else there.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};

use bytes::Bytes;
use serde::{Deserialize, Serialize};

use crate::bus::kafka::{read_to_end, KafkaBus};
use crate::bus::{Bus, BusError, Produce};
use crate::message::now_millis;

/// Ids remembered in memory; the oldest is forgotten first.
const REMEMBERED: usize = 1_000_000;

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
}

#[derive(Default)]
struct Inner {
    ids: HashMap<String, Option<Entry>>,
    order: VecDeque<String>,
    /// Provider id → our message id.
    by_provider: HashMap<String, String>,
}

impl Inner {
    fn put(&mut self, id: &str, entry: Option<Entry>) {
        if let Some(pid) = entry.as_ref().and_then(|e| e.provider_id.clone()) {
            self.by_provider.insert(pid, id.to_owned());
        }
        if self.ids.insert(id.to_owned(), entry).is_none() {
            self.order.push_back(id.to_owned());
            if self.order.len() > REMEMBERED {
                if let Some(old) = self.order.pop_front() {
                    if let Some(Some(e)) = self.ids.remove(&old) {
                        if let Some(pid) = e.provider_id {
                            self.by_provider.remove(&pid);
                        }
                    }
                }
            }
        }
    }
}

impl SentLog {
    /// An empty log writing to `topic`.
    pub fn new(topic: Arc<str>) -> Self {
        Self {
            topic,
            inner: Arc::default(),
        }
    }

    /// The log as the topic holds it (Kafka, durable embedded bus), or
    /// empty (in-memory embedded bus).
    pub async fn restore(bus: &Bus, topic: Arc<str>, group: &str) -> Result<Self, BusError> {
        let log = SentLog::new(topic.clone());
        match bus {
            Bus::Kafka(k) => read_all(k, &topic, group, &log).await?,
            Bus::Durable(d) => {
                let mut reader = d.reader(&topic)?;
                while let Some(r) = reader.restore_next() {
                    let r = r?;
                    if let Some(key) = r.key.as_deref() {
                        log.restore_one(key, &r.payload);
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

    /// Where `id` stands; a new id (or one left to `retry`) is marked in
    /// flight at once, so that a second copy read meanwhile is not sent too.
    pub fn check(&self, id: &str) -> Seen {
        let mut inner = self.inner();
        match inner.ids.get(id) {
            Some(None) => Seen::InFlight,
            Some(Some(e)) if e.state != State::Retry => Seen::Recorded(e.clone()),
            Some(Some(_)) => {
                inner.ids.insert(id.to_owned(), None);
                Seen::New
            }
            None => {
                inner.put(id, None);
                Seen::New
            }
        }
    }

    /// Forget that `id` is in flight (it was not handed to the provider).
    pub fn release(&self, id: &str) {
        let mut inner = self.inner();
        if let Some(None) = inner.ids.get(id) {
            inner.ids.remove(id);
        }
    }

    /// Record `entry` for `id`: the record to store (before the message's
    /// offset is marked done; before the request, for `sending`).
    pub fn record(&self, id: &str, entry: Entry) -> Produce {
        let record = self.durable_only(id, &entry);
        // `sending` stays "in flight" in memory: only a restart makes it unknown.
        let keep = (entry.state != State::Sending).then_some(entry);
        self.inner().put(id, keep);
        record
    }

    /// The record of `entry` for `id`, for a restart to read, leaving this
    /// process's view as it is (the message stays in flight here).
    pub fn durable_only(&self, id: &str, entry: &Entry) -> Produce {
        let value = serde_json::to_vec(entry).unwrap_or_default();
        Produce::new(
            self.topic.clone(),
            Bytes::from(id.to_owned()),
            Bytes::from(value),
        )
    }

    /// Our message id and its phone for the provider's id `provider_id`.
    pub fn by_provider_id(&self, provider_id: &str) -> Option<(String, String)> {
        let inner = self.inner();
        let id = inner.by_provider.get(provider_id)?;
        let identity = match inner.ids.get(id) {
            Some(Some(e)) => e.identity.clone(),
            _ => String::new(),
        };
        Some((id.clone(), identity))
    }

    /// Read one stored record (the restore, and tests).
    fn restore_one(&self, key: &[u8], value: &[u8]) {
        let Ok(id) = std::str::from_utf8(key) else {
            return;
        };
        // Values written before the log kept states were a bare timestamp
        // of a message handed to the provider.
        let entry = serde_json::from_slice::<Entry>(value).unwrap_or(Entry {
            state: State::Sent,
            ..Entry::sending("")
        });
        self.inner().put(id, Some(entry));
    }
}

async fn read_all(k: &KafkaBus, topic: &str, group: &str, log: &SentLog) -> Result<(), BusError> {
    // A group of its own that never commits: every start reads it all.
    let group = format!("{group}.restore.{}", crate::message::new_id());
    let (mut consumer, progress) = k.reader(&group, topic).await?;
    let mut n = 0usize;
    read_to_end(&mut consumer, topic, &progress, async |r| {
        if let Some(key) = r.key.as_deref() {
            log.restore_one(key, &r.payload);
            n += 1;
        }
        Ok::<(), BusError>(())
    })
    .await?;
    tracing::info!(topic, ids = n, "sent-log restored");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn states_follow_the_records() {
        let log = SentLog::new(Arc::from("t.sent"));
        assert_eq!(log.check("m1"), Seen::New);
        assert_eq!(log.check("m1"), Seen::InFlight);
        log.record("m1", Entry::sending("+1"));
        assert_eq!(log.check("m1"), Seen::InFlight);
        let sent = Entry {
            state: State::Sent,
            provider_id: Some("SM1".into()),
            ..Entry::sending("+1")
        };
        let record = log.record("m1", sent.clone());
        assert_eq!(log.check("m1"), Seen::Recorded(sent.clone()));
        assert_eq!(log.by_provider_id("SM1"), Some(("m1".into(), "+1".into())));

        // A restart reads the topic back: a bare `sending` is now unknown.
        let after = SentLog::new(Arc::from("t.sent"));
        after.restore_one(b"m1", &record.payload);
        let sending = log.record("m2", Entry::sending("+2"));
        after.restore_one(b"m2", &sending.payload);
        after.restore_one(b"m3", b"1700000000000");
        assert_eq!(after.check("m1"), Seen::Recorded(sent));
        assert!(matches!(
            after.check("m2"),
            Seen::Recorded(Entry {
                state: State::Sending,
                ..
            })
        ));
        assert!(matches!(
            after.check("m3"),
            Seen::Recorded(Entry {
                state: State::Sent,
                ..
            })
        ));
        assert_eq!(after.check("m4"), Seen::New);
        after.release("m4");
        assert_eq!(after.check("m4"), Seen::New);

        // Left to retry (shutdown during back-off): sent again, once.
        let retry = log.record(
            "m5",
            Entry {
                state: State::Retry,
                ..Entry::sending("+5")
            },
        );
        assert_eq!(log.check("m5"), Seen::New);
        assert_eq!(log.check("m5"), Seen::InFlight);
        after.restore_one(b"m5", &retry.payload);
        assert_eq!(after.check("m5"), Seen::New);
        assert_eq!(after.check("m5"), Seen::InFlight);
    }
}
