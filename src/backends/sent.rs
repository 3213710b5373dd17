//! The sent-log: which message ids a sink already handed to its provider,
//! so that a message read again (at least once) is not sent again.
//!
//! On Kafka it is kept in a compacted topic (`<send topic>.sent`, key = the
//! message id) that the sink reads back at start-up, so it survives restarts.
//! On the embedded bus it lives in memory, like everything else there.

use std::collections::{HashSet, VecDeque};
use std::sync::Arc;

use bytes::Bytes;

use crate::bus::kafka::{read_to_end, KafkaBus};
use crate::bus::{Bus, BusError, Produce};
use crate::message::now_millis;

/// Ids remembered in memory; the oldest is forgotten first.
const REMEMBERED: usize = 1_000_000;

pub struct SentLog {
    topic: Arc<str>,
    ids: HashSet<String>,
    order: VecDeque<String>,
}

impl SentLog {
    /// An empty log writing to `topic`.
    pub fn new(topic: Arc<str>) -> Self {
        Self {
            topic,
            ids: HashSet::new(),
            order: VecDeque::new(),
        }
    }

    /// The log as the topic holds it (Kafka), or empty (embedded bus).
    pub async fn restore(bus: &Bus, topic: Arc<str>, group: &str) -> Result<Self, BusError> {
        let mut log = SentLog::new(topic.clone());
        if let Bus::Kafka(k) = bus {
            read_all(k, &topic, group, &mut log).await?;
        }
        Ok(log)
    }

    pub fn contains(&self, id: &str) -> bool {
        self.ids.contains(id)
    }

    fn remember(&mut self, id: String) {
        if self.ids.insert(id.clone()) {
            self.order.push_back(id);
            if self.order.len() > REMEMBERED {
                if let Some(old) = self.order.pop_front() {
                    self.ids.remove(&old);
                }
            }
        }
    }

    /// Note `id` as sent; the returned record must be stored before the
    /// message's offset is marked done.
    pub fn record(&mut self, id: &str) -> Produce {
        self.remember(id.to_owned());
        // Not empty: an empty value in a compacted topic is a tombstone.
        Produce::new(
            self.topic.clone(),
            Bytes::from(id.to_owned()),
            Bytes::from(now_millis().to_string()),
        )
    }
}

async fn read_all(
    k: &KafkaBus,
    topic: &str,
    group: &str,
    log: &mut SentLog,
) -> Result<(), BusError> {
    // A group of its own that never commits: every start reads it all.
    let group = format!("{group}.restore.{}", crate::message::new_id());
    let (mut consumer, progress) = k.reader(&group, topic).await?;
    let mut n = 0usize;
    read_to_end(&mut consumer, topic, &progress, async |r| {
        if let Ok(id) = std::str::from_utf8(r.key.as_deref().unwrap_or_default()) {
            log.remember(id.to_owned());
            n += 1;
        }
        Ok::<(), BusError>(())
    })
    .await?;
    tracing::info!(topic, ids = n, "sent-log restored");
    Ok(())
}
