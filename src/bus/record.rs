//! What every bus shares: a record read ([`Record`]) and one to write
//! ([`Produce`]), a topic's shape ([`TopicSpec`]), the errors ([`BusError`])
//! and the acknowledgement of a write ([`Ack`], [`AckGroup`]).

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use tokio::sync::Notify;

/// A record read from a topic.
#[derive(Debug, Clone)]
pub struct Record {
    pub topic: Arc<str>,
    pub partition: i32,
    pub offset: i64,
    pub key: Option<Bytes>,
    pub payload: Bytes,
    pub headers: Vec<(String, Bytes)>,
}

impl Record {
    /// The key as text (connection keys are UTF-8), or empty.
    pub fn key_str(&self) -> &str {
        self.key
            .as_deref()
            .and_then(|k| std::str::from_utf8(k).ok())
            .unwrap_or("")
    }

    pub fn header(&self, name: &str) -> Option<&[u8]> {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_ref())
    }
}

/// A record to write.
#[derive(Debug, Clone)]
pub struct Produce {
    pub topic: Arc<str>,
    pub key: Bytes,
    pub payload: Bytes,
    pub headers: Vec<(String, Bytes)>,
}

impl Produce {
    pub fn new(topic: Arc<str>, key: impl Into<Bytes>, payload: impl Into<Bytes>) -> Self {
        Self {
            topic,
            key: key.into(),
            payload: payload.into(),
            headers: Vec::new(),
        }
    }
}

/// A topic the pipeline needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopicSpec {
    pub name: String,
    pub partitions: i32,
    pub replication: i32,
    /// Keep only the latest record per key (Kafka `cleanup.policy=compact`).
    pub compacted: bool,
    /// Delete records older than this (Kafka `retention.ms`; on a compacted
    /// topic `cleanup.policy=compact,delete`). `None`: the cluster's default
    /// for an ordinary topic, for ever for a compacted one.
    pub retention: Option<std::time::Duration>,
}

impl TopicSpec {
    /// The topic-level settings a cluster is given for it: `cleanup.policy`
    /// and `retention.ms` (when smsflow creates it, and in the Kubernetes
    /// `KafkaTopic`s).
    pub fn kafka_config(&self) -> Vec<(&'static str, String)> {
        let mut config = Vec::new();
        match (self.compacted, self.retention) {
            (true, None) => config.push(("cleanup.policy", "compact".to_owned())),
            (true, Some(_)) => config.push(("cleanup.policy", "compact,delete".to_owned())),
            (false, _) => {}
        }
        if let Some(r) = self.retention {
            config.push(("retention.ms", r.as_millis().to_string()));
        }
        config
    }
}

/// Each `Arc` of `all` once (by pointer), in order: the distinct topics a
/// consumer's partitions belong to.
pub(crate) fn distinct<'a, T: 'a>(all: impl IntoIterator<Item = &'a Arc<T>>) -> Vec<Arc<T>> {
    let mut out: Vec<Arc<T>> = Vec::new();
    for a in all {
        if !out.iter().any(|t| Arc::ptr_eq(t, a)) {
            out.push(a.clone());
        }
    }
    out
}

/// Wait until `next` has something, woken by any of `wakes`: each wake-up
/// is registered before `next` looks, so one that comes in between is not
/// missed. What the embedded buses' consumers do in `recv`.
pub(crate) async fn wait_for<T>(wakes: &[&Notify], mut next: impl FnMut() -> Option<T>) -> T {
    loop {
        let mut waits: Vec<_> = wakes.iter().map(|n| Box::pin(n.notified())).collect();
        for w in &mut waits {
            w.as_mut().enable();
        }
        if let Some(found) = next() {
            return found;
        }
        futures::future::select_all(waits).await;
    }
}

/// A bus failure. `retryable` says whether trying again later can help.
#[derive(Debug, Clone, thiserror::Error)]
pub enum BusError {
    #[error("kafka: {message}")]
    Kafka { message: String, retryable: bool },
    #[error("unknown topic {0:?} (topics are created at start-up from the pipeline)")]
    UnknownTopic(String),
    #[error("the bus is shut down")]
    Closed,
    /// Shutdown came before a record was finished: it was not marked done,
    /// so it is read again after a restart.
    #[error("stopped before finishing a record ({0}); it is read again after a restart")]
    Interrupted(String),
    /// The record's partition was taken away (a rebalance) before it was
    /// finished: not marked done here; its next owner reads it.
    #[error("the record's partition went to another member before the record was finished")]
    Revoked,
    /// Retrying cannot help (credentials refused, not authorized, a topic
    /// or partition missing): a stage stops on it, naming the cause.
    #[error("kafka: {message}: {cause}")]
    Fatal {
        message: String,
        cause: &'static str,
    },
    /// The durable embedded bus's storage failed (disk full, I/O error,
    /// data_dir in use): not retryable by the stage.
    #[error("embedded bus storage: {0}")]
    Storage(String),
}

impl BusError {
    pub fn retryable(&self) -> bool {
        matches!(
            self,
            BusError::Kafka {
                retryable: true,
                ..
            }
        )
    }

    /// Whether a consumer cannot go on after this error (see [`BusError::Fatal`]).
    pub fn fatal(&self) -> bool {
        matches!(self, BusError::Fatal { .. } | BusError::Closed)
    }
}

/// The acknowledgement of one produced record.
pub enum Ack {
    Done,
    Group(Arc<AckGroup>),
}

impl Ack {
    /// Acknowledged already (nothing to wait for).
    pub fn is_done(&self) -> bool {
        match self {
            Ack::Done => true,
            Ack::Group(g) => g.is_done(),
        }
    }

    pub async fn wait(self) -> Result<(), BusError> {
        match self {
            Ack::Done => Ok(()),
            Ack::Group(g) => g.wait().await,
        }
    }
}

/// Acknowledgements awaited together (the outputs of one input record): a
/// count of records not yet acknowledged, and the first failure.
#[derive(Default)]
pub struct AckGroup {
    pending: AtomicUsize,
    error: Mutex<Option<BusError>>,
    notify: Notify,
}

impl AckGroup {
    pub fn new() -> Arc<AckGroup> {
        Arc::default()
    }

    /// One more record to wait for (before it is handed to the bus).
    pub(crate) fn expect_one(&self) {
        self.pending.fetch_add(1, Ordering::AcqRel);
    }

    /// One record acknowledged, or failed.
    pub(crate) fn complete(&self, result: Result<(), BusError>) {
        if let Err(e) = result {
            let mut error = self.error.lock().unwrap_or_else(|p| p.into_inner());
            error.get_or_insert(e);
        }
        if self.pending.fetch_sub(1, Ordering::AcqRel) == 1 {
            // Stores a permit when nobody waits yet: `wait` cannot miss it.
            self.notify.notify_one();
        }
    }

    /// Every record acknowledged (or failed).
    fn is_finished(&self) -> bool {
        self.pending.load(Ordering::Acquire) == 0
    }

    /// Every record acknowledged, none failed.
    pub fn is_done(&self) -> bool {
        self.is_finished()
            && self
                .error
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .is_none()
    }

    /// Wait until every record is acknowledged; the first failure, if any.
    pub async fn wait(&self) -> Result<(), BusError> {
        while !self.is_finished() {
            self.notify.notified().await;
        }
        match self.error.lock().unwrap_or_else(|p| p.into_inner()).take() {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }
}
