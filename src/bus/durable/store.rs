//! What the durable bus holds: its tables on disk, and in memory its
//! topics, their partitions and each group's position, loaded (and created
//! where missing) when the bus opens.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use redb::{Database, ReadableTable, TableDefinition};
use tokio::sync::Notify;
use tracing::warn;

use crate::bus::record::{BusError, TopicSpec};
use crate::config::Fsync;

/// The database file inside `data_dir`.
pub const FILE: &str = "bus.redb";

/// (time in ms, key, payload, headers).
pub(super) type Stored = (
    i64,
    &'static [u8],
    &'static [u8],
    Vec<(&'static str, &'static [u8])>,
);

pub(super) const TOPICS: TableDefinition<&str, (u32, bool)> = TableDefinition::new("topics");
pub(super) const ENDS: TableDefinition<(&str, i32), i64> = TableDefinition::new("ends");
pub(super) const OFFSETS: TableDefinition<(&str, &str, i32), i64> = TableDefinition::new("offsets");

/// (group, topic, partition) → the next offset the group needs.
pub(super) type Offsets = HashMap<(Arc<str>, Arc<str>, i32), i64>;

pub(super) fn storage(e: impl Into<redb::Error>) -> BusError {
    BusError::Storage(e.into().to_string())
}

pub(super) fn now_millis() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// What the bus and its writer task share.
pub(super) struct Shared {
    pub(super) db: Database,
    pub(super) path: PathBuf,
    pub(super) topics: HashMap<String, Arc<Topic>>,
    pub(super) fsync: Fsync,
    pub(super) fsync_interval: Duration,
    pub(super) retention: Duration,
    pub(super) retention_records: Option<u64>,
    /// Offsets marked done and not yet written, coalesced per partition.
    pub(super) dirty: Mutex<Offsets>,
    /// Woken when `dirty` gains an entry.
    pub(super) wake: Notify,
    pub(super) opened: Instant,
}

pub(super) struct Topic {
    pub(super) name: Arc<str>,
    pub(super) compacted: bool,
    /// redb table names.
    pub(super) records: String,
    pub(super) keys: String,
    pub(super) partitions: Vec<Mutex<Partition>>,
    /// Woken when records are committed: only this topic's readers wake.
    pub(super) data: Notify,
    /// Woken when a group marks records done (room for waiting producers).
    pub(super) room: Notify,
}

impl Topic {
    pub(super) fn records(&self) -> TableDefinition<'_, (i32, i64), Stored> {
        TableDefinition::new(&self.records)
    }

    pub(super) fn keys(&self) -> TableDefinition<'_, (i32, &'static [u8]), i64> {
        TableDefinition::new(&self.keys)
    }
}

#[derive(Default)]
pub(super) struct Partition {
    /// The next offset (everything below is committed).
    pub(super) end: i64,
    /// Records handed to the writer and not committed yet.
    pub(super) queued: usize,
    /// Per group: the next offset it needs, and whether a consumer of this
    /// process joined it.
    pub(super) groups: HashMap<Arc<str>, Position>,
}

#[derive(Clone, Copy)]
pub(super) struct Position {
    pub(super) next: i64,
    pub(super) live: bool,
}

impl Partition {
    /// Records not yet done by every group that is reading.
    pub(super) fn backlog(&self) -> usize {
        let oldest = self
            .groups
            .values()
            .filter(|g| g.live)
            .map(|g| g.next)
            .min();
        match oldest {
            Some(next) => (self.end - next).max(0) as usize + self.queued,
            None => 0,
        }
    }

    /// The lowest offset some group (joined or remembered) still needs.
    pub(super) fn needed_from(&self) -> Option<i64> {
        self.groups.values().map(|g| g.next).min()
    }
}

pub(super) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // Nothing panics while holding these locks; the data stays consistent.
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// Read (creating what is missing) the topics, their ends and the groups'
/// offsets.
pub(super) fn load(
    db: &Database,
    specs: &[TopicSpec],
) -> Result<HashMap<String, Arc<Topic>>, redb::Error> {
    let tx = db.begin_write()?;
    let mut topics = HashMap::new();
    {
        let mut known = tx.open_table(TOPICS)?;
        let ends = tx.open_table(ENDS)?;
        for spec in specs {
            let wanted = spec.partitions.max(1) as u32;
            let stored = known.get(spec.name.as_str())?.map(|v| v.value());
            let (partitions, compacted) = match stored {
                Some((n, compacted)) => {
                    if n != wanted {
                        warn!(topic = %spec.name, stored = n, configured = wanted, "the topic keeps the partition count it was created with");
                    }
                    (n, compacted)
                }
                None => {
                    known.insert(spec.name.as_str(), (wanted, spec.compacted))?;
                    (wanted, spec.compacted)
                }
            };
            let mut parts = Vec::new();
            for p in 0..partitions as i32 {
                let end = ends.get((spec.name.as_str(), p))?.map_or(0, |v| v.value());
                parts.push(Mutex::new(Partition {
                    end,
                    ..Partition::default()
                }));
            }
            let topic = Topic {
                name: Arc::from(spec.name.as_str()),
                compacted,
                records: format!("records/{}", spec.name),
                keys: format!("keys/{}", spec.name),
                partitions: parts,
                data: Notify::new(),
                room: Notify::new(),
            };
            tx.open_table(topic.records())?;
            if compacted {
                tx.open_table(topic.keys())?;
            }
            topics.insert(spec.name.clone(), Arc::new(topic));
        }
        let offsets = tx.open_table(OFFSETS)?;
        for entry in offsets.iter()? {
            let (k, v) = entry?;
            let (group, topic, partition) = k.value();
            if let Some(part) = topics
                .get(topic)
                .and_then(|t: &Arc<Topic>| t.partitions.get(partition as usize))
            {
                lock(part).groups.insert(
                    Arc::from(group),
                    Position {
                        next: v.value(),
                        live: false,
                    },
                );
            }
        }
    }
    tx.commit()?;
    Ok(topics)
}

impl Shared {
    pub(super) fn mark_dirty(&self, group: &Arc<str>, topic: &Arc<str>, partition: i32, next: i64) {
        let mut dirty = lock(&self.dirty);
        let at = dirty
            .entry((group.clone(), topic.clone(), partition))
            .or_insert(next);
        *at = (*at).max(next);
    }
}
