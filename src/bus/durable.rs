//! The durable embedded bus: the embedded bus's model (keyed partitions,
//! per-partition order, consumer groups, backpressure) kept on disk in one
//! [redb] database, so that what it acknowledged survives kill -9 and, with
//! `fsync: always`, power loss. redb gives the crash safety: every commit is
//! checksummed and a torn write is rolled back to the last good commit when
//! the file is opened again.
//!
//! The database (`<data_dir>/bus.redb`) holds:
//! - `topics`: name → (partitions, compacted), as first created; later runs
//!   keep it, as Kafka keeps an existing topic;
//! - `records/<topic>`: (partition, offset) → (time, key, payload, headers);
//! - `ends`: (topic, partition) → the next offset, kept when retention
//!   empties a partition, so offsets never go back;
//! - `offsets`: (group, topic, partition) → the next offset the group needs;
//! - `keys/<topic>` (compacted topics): (partition, key) → the offset of the
//!   key's latest record.
//!
//! One writer task makes every change. Produces that arrive while a commit
//! is under way go into the next transaction together (group commit), so a
//! busy bus pays one fsync for many records. A produce is acknowledged once
//! its transaction is committed: on disk with `fsync: always`; with
//! `fsync: interval`, at once, and on disk at the next interval's sync.
//!
//! Consumer groups resume at their committed offsets after a restart.
//! Readers outside any group ([`DurableBus::reader`], for tables and the
//! sent-log) start at the oldest record held, like a restore from Kafka.
//!
//! Retention: a record of an ordinary topic is deleted once every group
//! that reads its topic has marked it done and it is older than
//! `retention` or beyond the newest `retention_records` of its partition.
//! A compacted topic keeps the latest record of each key; an older one goes
//! as soon as no group still has to read it. A group that no consumer of
//! the running process joins for `retention` is forgotten (as Kafka expires
//! the offsets of an empty group), so that a stage removed from the
//! pipeline does not pin its topics for ever.

use std::collections::hash_map::Entry;
use std::collections::{HashMap, VecDeque};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use redb::{
    Database, Durability, ReadableDatabase, ReadableTable, ReadableTableMetadata, TableDefinition,
};
use tokio::sync::{mpsc, oneshot, Notify};
use tokio_util::sync::CancellationToken;
use tracing::{error, info, warn};

use super::murmur2::partition_for_key;
use super::record::{distinct, wait_for, AckGroup, BusError, Produce, Record, TopicSpec};
use crate::config::{self, Fsync};

/// The database file inside `data_dir`.
pub const FILE: &str = "bus.redb";

/// (time in ms, key, payload, headers).
type Stored = (
    i64,
    &'static [u8],
    &'static [u8],
    Vec<(&'static str, &'static [u8])>,
);

const TOPICS: TableDefinition<&str, (u32, bool)> = TableDefinition::new("topics");
const ENDS: TableDefinition<(&str, i32), i64> = TableDefinition::new("ends");
const OFFSETS: TableDefinition<(&str, &str, i32), i64> = TableDefinition::new("offsets");

/// (group, topic, partition) → the next offset the group needs.
type Offsets = HashMap<(Arc<str>, Arc<str>, i32), i64>;

/// Records written together at most (one transaction).
const MAX_BATCH: usize = 4096;
/// Records a consumer reads from disk at once.
const READ_AHEAD: usize = 256;
/// redb's page cache (its default is 1 GiB): recent records are read from
/// it, older ones through the OS's page cache.
const CACHE_BYTES: usize = 64 << 20;
/// How often retention runs.
const SWEEP_EVERY: Duration = Duration::from_secs(60);

fn storage(e: impl Into<redb::Error>) -> BusError {
    BusError::Storage(e.into().to_string())
}

fn now_millis() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// The durable embedded bus.
pub struct DurableBus {
    shared: Arc<Shared>,
    writes: mpsc::Sender<Write>,
    capacity: usize,
    /// Cancelled once the writer has made its last commit and the database
    /// is closed (every handle on the bus dropped).
    closed: CancellationToken,
}

/// What the bus and its writer task share.
struct Shared {
    db: Database,
    path: PathBuf,
    topics: HashMap<String, Arc<Topic>>,
    fsync: Fsync,
    fsync_interval: Duration,
    retention: Duration,
    retention_records: Option<u64>,
    /// Offsets marked done and not yet written, coalesced per partition.
    dirty: Mutex<Offsets>,
    /// Woken when `dirty` gains an entry.
    wake: Notify,
    opened: Instant,
}

struct Topic {
    name: Arc<str>,
    compacted: bool,
    /// redb table names.
    records: String,
    keys: String,
    partitions: Vec<Mutex<Partition>>,
    /// Woken when records are committed: only this topic's readers wake.
    data: Notify,
    /// Woken when a group marks records done (room for waiting producers).
    room: Notify,
}

impl Topic {
    fn records(&self) -> TableDefinition<'_, (i32, i64), Stored> {
        TableDefinition::new(&self.records)
    }

    fn keys(&self) -> TableDefinition<'_, (i32, &'static [u8]), i64> {
        TableDefinition::new(&self.keys)
    }
}

#[derive(Default)]
struct Partition {
    /// The next offset (everything below is committed).
    end: i64,
    /// Records handed to the writer and not committed yet.
    queued: usize,
    /// Per group: the next offset it needs, and whether a consumer of this
    /// process joined it.
    groups: HashMap<Arc<str>, Position>,
}

#[derive(Clone, Copy)]
struct Position {
    next: i64,
    live: bool,
}

impl Partition {
    /// Records not yet done by every group that is reading.
    fn backlog(&self) -> usize {
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
    fn needed_from(&self) -> Option<i64> {
        self.groups.values().map(|g| g.next).min()
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // Nothing panics while holding these locks; the data stays consistent.
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// A change for the writer task.
enum Write {
    Record(Pending),
    /// Commit everything so far, on disk, then answer.
    Flush(oneshot::Sender<Result<(), BusError>>),
    /// Apply retention as if the time were this, then answer with the
    /// number of records deleted.
    Sweep(SystemTime, oneshot::Sender<Result<u64, BusError>>),
}

/// A record handed to the writer. Dropped, it settles: its partition's
/// queue count goes down and its acknowledgement completes with `outcome`,
/// or fails if it never got one (the writer stopped).
struct Pending {
    topic: Arc<Topic>,
    partition: usize,
    record: Produce,
    ack: Option<Arc<AckGroup>>,
    outcome: Option<Result<(), BusError>>,
}

impl Drop for Pending {
    fn drop(&mut self) {
        lock(&self.topic.partitions[self.partition]).queued -= 1;
        if let Some(a) = self.ack.take() {
            a.complete(self.outcome.take().unwrap_or(Err(BusError::Closed)));
        }
    }
}

impl DurableBus {
    /// Open (or create) the bus in `cfg.data_dir` with `topics`; needs a
    /// tokio runtime (the writer task).
    pub fn open(cfg: &config::Kafka, topics: &[TopicSpec]) -> Result<DurableBus, BusError> {
        let dir = cfg
            .data_dir
            .as_deref()
            .ok_or_else(|| BusError::Storage("the durable embedded bus needs `data_dir`".into()))?;
        std::fs::create_dir_all(dir).map_err(|e| {
            BusError::Storage(format!("cannot create data_dir {}: {e}", dir.display()))
        })?;
        let path = dir.join(FILE);
        let db = Database::builder()
            .set_cache_size(CACHE_BYTES)
            .create(&path)
            .map_err(|e| match e {
                redb::DatabaseError::DatabaseAlreadyOpen => BusError::Storage(format!(
                    "{} is in use by another process: one smsflow per data_dir",
                    path.display()
                )),
                e => BusError::Storage(format!("cannot open {}: {e}", path.display())),
            })?;
        let topics = load(&db, topics).map_err(storage)?;
        let shared = Arc::new(Shared {
            db,
            path,
            topics,
            fsync: cfg.fsync,
            fsync_interval: cfg.fsync_interval,
            retention: cfg.retention,
            retention_records: cfg.retention_records,
            dirty: Mutex::default(),
            wake: Notify::new(),
            opened: Instant::now(),
        });
        let (tx, rx) = mpsc::channel(MAX_BATCH);
        let closed = CancellationToken::new();
        tokio::spawn(write_loop(shared.clone(), rx, closed.clone()));
        info!(path = %shared.path.display(), fsync = ?cfg.fsync, "durable embedded bus open");
        Ok(DurableBus {
            shared,
            writes: tx,
            capacity: cfg.partition_capacity.max(1),
            closed,
        })
    }

    fn topic(&self, name: &str) -> Result<&Arc<Topic>, BusError> {
        self.shared
            .topics
            .get(name)
            .ok_or_else(|| BusError::UnknownTopic(name.to_owned()))
    }

    /// Append a record, waiting while its partition's backlog is full. Its
    /// acknowledgement completes `ack` once its transaction is committed.
    pub async fn produce(
        &self,
        record: Produce,
        ack: Option<&Arc<AckGroup>>,
    ) -> Result<(), BusError> {
        let topic = self.topic(&record.topic)?.clone();
        let p = partition_for_key(&record.key, topic.partitions.len() as i32) as usize;
        loop {
            let room = topic.room.notified();
            tokio::pin!(room);
            // Register before checking, so a `done` in between still wakes us.
            room.as_mut().enable();
            if lock(&topic.partitions[p]).backlog() < self.capacity {
                break;
            }
            room.await;
        }
        // The last wait; from here on nothing can be cancelled half-way.
        let permit = self.writes.reserve().await.map_err(|_| BusError::Closed)?;
        lock(&topic.partitions[p]).queued += 1;
        if let Some(a) = ack {
            a.expect_one();
        }
        permit.send(Write::Record(Pending {
            topic: topic.clone(),
            partition: p,
            record,
            ack: ack.cloned(),
            outcome: None,
        }));
        Ok(())
    }

    /// Wait until everything handed to the bus, and every offset marked
    /// done, is committed and on disk.
    pub async fn flush(&self) -> Result<(), BusError> {
        let (tx, rx) = oneshot::channel();
        self.writes
            .send(Write::Flush(tx))
            .await
            .map_err(|_| BusError::Closed)?;
        rx.await.map_err(|_| BusError::Closed)?
    }

    /// Apply retention now (it also runs every minute); the number of
    /// records deleted.
    pub async fn sweep(&self) -> Result<u64, BusError> {
        self.sweep_at(SystemTime::now()).await
    }

    async fn sweep_at(&self, now: SystemTime) -> Result<u64, BusError> {
        let (tx, rx) = oneshot::channel();
        self.writes
            .send(Write::Sweep(now, tx))
            .await
            .map_err(|_| BusError::Closed)?;
        rx.await.map_err(|_| BusError::Closed)?
    }

    /// Join `group` on `topics`: resume at its committed offsets, or, for a
    /// new group, start at the oldest record held.
    pub fn consumer(
        self: &Arc<Self>,
        group: &str,
        topics: &[&str],
    ) -> Result<DurableConsumer, BusError> {
        let group: Arc<str> = Arc::from(group);
        let mut assigned = Vec::new();
        for name in topics {
            let topic = self.topic(name)?.clone();
            for i in 0..topic.partitions.len() {
                let known = lock(&topic.partitions[i]).groups.get(&group).copied();
                let next = match known {
                    Some(g) => g.next,
                    None => {
                        let first = self.first_offset(&topic, i)?;
                        // Remembered on disk at once: retention must not
                        // delete what this group has yet to read.
                        self.shared.mark_dirty(&group, &topic.name, i as i32, first);
                        first
                    }
                };
                lock(&topic.partitions[i])
                    .groups
                    .insert(group.clone(), Position { next, live: true });
                assigned.push(Assigned::new(topic.clone(), i, next));
            }
        }
        self.shared.wake.notify_one();
        Ok(DurableConsumer {
            bus: self.clone(),
            group: Some(group),
            assigned,
            next: 0,
            restore_ends: None,
        })
    }

    /// Read `topic` outside any group, from its oldest record held: a table
    /// or the sent-log restoring itself. [`DurableConsumer::restore_next`]
    /// gives what the topic holds now; `recv` then goes on with what comes.
    pub fn reader(self: &Arc<Self>, topic: &str) -> Result<DurableConsumer, BusError> {
        let topic = self.topic(topic)?.clone();
        let mut assigned = Vec::new();
        let mut ends = Vec::new();
        for i in 0..topic.partitions.len() {
            ends.push(lock(&topic.partitions[i]).end);
            assigned.push(Assigned::new(
                topic.clone(),
                i,
                self.first_offset(&topic, i)?,
            ));
        }
        Ok(DurableConsumer {
            bus: self.clone(),
            group: None,
            assigned,
            next: 0,
            restore_ends: Some(ends),
        })
    }

    /// The oldest offset held in a partition (its end when it is empty).
    fn first_offset(&self, topic: &Topic, partition: usize) -> Result<i64, BusError> {
        let end = lock(&topic.partitions[partition]).end;
        let tx = self.shared.db.begin_read().map_err(storage)?;
        let table = tx.open_table(topic.records()).map_err(storage)?;
        let p = partition as i32;
        let first = table
            .range((p, i64::MIN)..=(p, i64::MAX))
            .map_err(storage)?
            .next();
        Ok(match first {
            Some(entry) => entry.map_err(storage)?.0.value().1,
            None => end,
        })
    }

    /// Up to `max` records of a partition from offset `from` on.
    fn read(
        &self,
        topic: &Topic,
        partition: usize,
        from: i64,
        max: usize,
    ) -> Result<Vec<Record>, BusError> {
        let tx = self.shared.db.begin_read().map_err(storage)?;
        let table = tx.open_table(topic.records()).map_err(storage)?;
        let p = partition as i32;
        let mut out = Vec::new();
        for entry in table.range((p, from)..=(p, i64::MAX)).map_err(storage)? {
            let (k, v) = entry.map_err(storage)?;
            let (_, key, payload, headers) = v.value();
            out.push(Record {
                topic: topic.name.clone(),
                partition: p,
                offset: k.value().1,
                key: Some(Bytes::copy_from_slice(key)),
                payload: Bytes::copy_from_slice(payload),
                headers: headers
                    .into_iter()
                    .map(|(n, v)| (n.to_owned(), Bytes::copy_from_slice(v)))
                    .collect(),
            });
            if out.len() >= max {
                break;
            }
        }
        Ok(out)
    }

    fn done(&self, group: &Arc<str>, topic: &str, partition: i32, offset: i64) {
        let Some(t) = self.shared.topics.get(topic) else {
            return;
        };
        let Some(part) = t.partitions.get(partition as usize) else {
            return;
        };
        let advanced = {
            let mut part = lock(part);
            match part.groups.get_mut(group) {
                Some(g) if g.next < offset + 1 => {
                    g.next = offset + 1;
                    true
                }
                _ => false,
            }
        };
        if advanced {
            self.shared
                .mark_dirty(group, &t.name, partition, offset + 1);
            self.shared.wake.notify_one();
            t.room.notify_waiters();
        }
    }

    /// Records held in `topic` (all partitions).
    pub fn depth(&self, topic: &str) -> Result<u64, BusError> {
        let t = self.topic(topic)?;
        let tx = self.shared.db.begin_read().map_err(storage)?;
        let table = tx.open_table(t.records()).map_err(storage)?;
        table.len().map_err(storage)
    }

    /// Records of `topic` that `group` has not marked done yet.
    pub fn lag(&self, group: &str, topic: &str) -> i64 {
        self.shared
            .topics
            .get(topic)
            .map(|t| {
                t.partitions
                    .iter()
                    .map(|p| {
                        let p = lock(p);
                        let next = p.groups.get(group).map_or(0, |g| g.next);
                        p.end - next
                    })
                    .sum()
            })
            .unwrap_or(0)
    }

    /// Resolves once the bus is dropped (with every producer, consumer and
    /// committer), its last commit made and the database closed: it can be
    /// opened again.
    pub fn closed(&self) -> impl std::future::Future<Output = ()> + Send + 'static {
        self.closed.clone().cancelled_owned()
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.shared.path
    }
}

/// Read (creating what is missing) the topics, their ends and the groups'
/// offsets.
fn load(db: &Database, specs: &[TopicSpec]) -> Result<HashMap<String, Arc<Topic>>, redb::Error> {
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
    fn mark_dirty(&self, group: &Arc<str>, topic: &Arc<str>, partition: i32, next: i64) {
        let mut dirty = lock(&self.dirty);
        let at = dirty
            .entry((group.clone(), topic.clone(), partition))
            .or_insert(next);
        *at = (*at).max(next);
    }

    /// One transaction: append `batch`, write `offsets`, apply retention
    /// as of `sweep`. Returns the offset given to each record of `batch`,
    /// and the records deleted.
    fn commit(
        &self,
        batch: &[Pending],
        offsets: &Offsets,
        durable: bool,
        sweep: Option<SystemTime>,
    ) -> Result<(Vec<i64>, u64), redb::Error> {
        let mut tx = self.db.begin_write()?;
        tx.set_durability(if durable {
            Durability::Immediate
        } else {
            Durability::None
        })?;
        let now = now_millis();
        let mut given = Vec::with_capacity(batch.len());
        let mut deleted = 0;
        {
            // The next offset per partition touched in this batch.
            let mut next: HashMap<(&str, usize), i64> = HashMap::new();
            // Each topic's tables, opened once for the whole batch.
            let mut records = HashMap::new();
            let mut keys = HashMap::new();
            let mut ends = tx.open_table(ENDS)?;
            for p in batch {
                let t = &p.topic;
                let at = next
                    .entry((&t.name, p.partition))
                    .or_insert_with(|| lock(&t.partitions[p.partition]).end);
                let offset = *at;
                *at += 1;
                let r = &p.record;
                let headers: Vec<(&str, &[u8])> = r
                    .headers
                    .iter()
                    .map(|(n, v)| (n.as_str(), v.as_ref()))
                    .collect();
                let part = p.partition as i32;
                let table = match records.entry(&*t.name) {
                    Entry::Occupied(e) => e.into_mut(),
                    Entry::Vacant(e) => e.insert(tx.open_table(t.records())?),
                };
                table.insert(
                    (part, offset),
                    (now, r.key.as_ref(), r.payload.as_ref(), headers),
                )?;
                if t.compacted {
                    let index = match keys.entry(&*t.name) {
                        Entry::Occupied(e) => e.into_mut(),
                        Entry::Vacant(e) => e.insert(tx.open_table(t.keys())?),
                    };
                    let older = index
                        .insert((part, r.key.as_ref()), offset)?
                        .map(|v| v.value());
                    // The key's older record goes once no group needs it.
                    let needed = lock(&t.partitions[p.partition]).needed_from();
                    if let Some(older) = older.filter(|o| needed.is_none_or(|n| *o < n)) {
                        if table.remove((part, older))?.is_some() {
                            deleted += 1;
                        }
                    }
                }
                given.push(offset);
            }
            for ((topic, partition), end) in &next {
                ends.insert((*topic, *partition as i32), *end)?;
            }
            let mut table = tx.open_table(OFFSETS)?;
            for ((group, topic, partition), offset) in offsets {
                table.insert((&**group, &**topic, *partition), *offset)?;
            }
        }
        if let Some(at) = sweep {
            deleted += self.retain(&tx, at)?;
        }
        tx.commit()?;
        Ok((given, deleted))
    }

    /// Retention (see the module doc), inside `tx`.
    fn retain(&self, tx: &redb::WriteTransaction, now: SystemTime) -> Result<u64, redb::Error> {
        let now_ms = now
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as i64);
        let cutoff = now_ms.saturating_sub(self.retention.as_millis() as i64);
        let forget = self.opened.elapsed() >= self.retention;
        let mut deleted = 0;
        let mut offsets = tx.open_table(OFFSETS)?;
        for t in self.topics.values() {
            let mut records = tx.open_table(t.records())?;
            for (i, part) in t.partitions.iter().enumerate() {
                let (end, needed) = {
                    let mut part = lock(part);
                    if forget {
                        let gone: Vec<Arc<str>> = part
                            .groups
                            .iter()
                            .filter(|(_, g)| !g.live)
                            .map(|(name, _)| name.clone())
                            .collect();
                        for g in gone {
                            info!(group = %g, topic = %t.name, "forgetting a group no stage joined for the retention time");
                            part.groups.remove(&g);
                            offsets.remove((&*g, &*t.name, i as i32))?;
                        }
                    }
                    (part.end, part.needed_from())
                };
                let p = i as i32;
                let below = needed.unwrap_or(i64::MAX);
                let mut doomed = Vec::new();
                if t.compacted {
                    if needed.is_some() {
                        // Superseded records the groups have now all read.
                        let keys = tx.open_table(t.keys())?;
                        for entry in records.range((p, i64::MIN)..(p, below))? {
                            let (k, v) = entry?;
                            let offset = k.value().1;
                            let latest = keys.get((p, v.value().1))?.map(|l| l.value());
                            if latest != Some(offset) {
                                doomed.push(offset);
                            }
                        }
                    }
                } else {
                    for entry in records.range((p, i64::MIN)..(p, below))? {
                        let (k, v) = entry?;
                        let offset = k.value().1;
                        let old = v.value().0 <= cutoff;
                        let beyond = self
                            .retention_records
                            .is_some_and(|n| end - offset > n as i64);
                        if !(old || beyond) {
                            break;
                        }
                        doomed.push(offset);
                    }
                }
                for offset in doomed {
                    records.remove((p, offset))?;
                    deleted += 1;
                }
            }
        }
        Ok(deleted)
    }
}

/// The writer task: every change to the database goes through here. It
/// ends when the bus is dropped, after a last commit on disk.
async fn write_loop(shared: Arc<Shared>, mut rx: mpsc::Receiver<Write>, closed: CancellationToken) {
    let tick_every = match shared.fsync {
        Fsync::Interval => shared.fsync_interval.min(SWEEP_EVERY),
        Fsync::Always => SWEEP_EVERY,
    };
    let mut tick = tokio::time::interval(tick_every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut last_sweep = Instant::now();
    let mut last_sync = Instant::now();
    // A commit since the last one on disk (`fsync: interval`).
    let mut unsynced = false;
    let mut open = true;
    while open {
        let mut writes = Vec::new();
        tokio::select! {
            w = rx.recv() => match w {
                Some(w) => writes.push(w),
                None => open = false,
            },
            _ = shared.wake.notified() => {}
            _ = tick.tick() => {}
        }
        while open && writes.len() < MAX_BATCH {
            match rx.try_recv() {
                Ok(w) => writes.push(w),
                Err(mpsc::error::TryRecvError::Empty) => break,
                Err(mpsc::error::TryRecvError::Disconnected) => open = false,
            }
        }
        let mut batch = Vec::with_capacity(writes.len());
        let mut flushes = Vec::new();
        let mut sweep = None;
        let mut asked = None;
        for w in writes {
            match w {
                Write::Record(p) => batch.push(p),
                Write::Flush(tx) => flushes.push(tx),
                Write::Sweep(at, tx) => {
                    sweep = Some(at);
                    asked = Some(tx);
                }
            }
        }
        if sweep.is_none() && last_sweep.elapsed() >= SWEEP_EVERY {
            sweep = Some(SystemTime::now());
        }
        let offsets = std::mem::take(&mut *lock(&shared.dirty));
        let sync_due = unsynced && last_sync.elapsed() >= shared.fsync_interval;
        let durable = shared.fsync == Fsync::Always || !flushes.is_empty() || sync_due || !open;
        if batch.is_empty() && offsets.is_empty() && sweep.is_none() && !(durable && unsynced) {
            for f in flushes {
                let _ = f.send(Ok(()));
            }
            continue;
        }
        let job = {
            let shared = shared.clone();
            tokio::task::spawn_blocking(move || {
                let r = shared.commit(&batch, &offsets, durable, sweep);
                (
                    r.map_err(|e| BusError::Storage(e.to_string())),
                    batch,
                    offsets,
                )
            })
        };
        let Ok((result, batch, offsets)) = job.await else {
            error!("durable bus: the writer failed");
            break;
        };
        if sweep.is_some() {
            last_sweep = Instant::now();
        }
        match &result {
            Ok(_) if durable => {
                unsynced = false;
                last_sync = Instant::now();
            }
            Ok(_) => unsynced = true,
            Err(e) => {
                error!(error = %e, records = batch.len(), "durable bus: commit failed");
                // Written again with the next commit.
                let mut dirty = lock(&shared.dirty);
                for (k, v) in offsets {
                    dirty.entry(k).or_insert(v);
                }
            }
        }
        finish(batch, &result);
        for f in flushes {
            let _ = f.send(result.as_ref().map(|_| ()).map_err(Clone::clone));
        }
        if let Some(tx) = asked {
            let _ = tx.send(result.as_ref().map(|(_, n)| *n).map_err(Clone::clone));
        }
    }
    // The database closes with the last reference to it.
    drop(shared);
    closed.cancel();
}

/// After a commit: move the ends on, wake readers, complete the acks.
fn finish(batch: Vec<Pending>, result: &Result<(Vec<i64>, u64), BusError>) {
    let mut woken: Vec<Arc<Topic>> = Vec::new();
    for (i, p) in batch.iter().enumerate() {
        if let Ok((given, _)) = result {
            let mut part = lock(&p.topic.partitions[p.partition]);
            part.end = part.end.max(given[i] + 1);
        }
        if !woken.iter().any(|t| Arc::ptr_eq(t, &p.topic)) {
            woken.push(p.topic.clone());
        }
    }
    // Acknowledged once readable, and before producers are told of room.
    for mut p in batch {
        p.outcome = Some(result.as_ref().map(|_| ()).map_err(Clone::clone));
        drop(p);
    }
    for t in woken {
        t.data.notify_waiters();
        // A failed write leaves room too.
        t.room.notify_waiters();
    }
}

struct Assigned {
    topic: Arc<Topic>,
    partition: usize,
    /// The next offset this consumer reads.
    position: i64,
    /// Records read from disk ahead, from `position` on.
    ahead: VecDeque<Record>,
}

impl Assigned {
    fn new(topic: Arc<Topic>, partition: usize, position: i64) -> Self {
        Self {
            topic,
            partition,
            position,
            ahead: VecDeque::new(),
        }
    }
}

/// A group member reading every partition of its topics, or a reader
/// outside any group.
pub struct DurableConsumer {
    bus: Arc<DurableBus>,
    group: Option<Arc<str>>,
    assigned: Vec<Assigned>,
    /// Round-robin start, so one busy partition does not starve the others.
    next: usize,
    /// A reader's partition ends when it was made (what a restore reads).
    restore_ends: Option<Vec<i64>>,
}

impl DurableConsumer {
    pub async fn recv(&mut self) -> Result<Record, BusError> {
        // The topics this consumer reads, to wait on their wake-ups.
        let topics = distinct(self.assigned.iter().map(|a| &a.topic));
        if topics.is_empty() {
            return Err(BusError::Closed);
        }
        let wakes: Vec<&Notify> = topics.iter().map(|t| &t.data).collect();
        wait_for(&wakes, || self.try_recv()).await
    }

    /// The next record if one is committed now.
    pub fn try_recv(&mut self) -> Option<Result<Record, BusError>> {
        self.next_below(None)
    }

    /// A reader's next record of those its topic held when it was made;
    /// `None` once it has them all.
    pub fn restore_next(&mut self) -> Option<Result<Record, BusError>> {
        let ends = self.restore_ends.clone()?;
        self.next_below(Some(&ends))
    }

    fn next_below(&mut self, ends: Option<&[i64]>) -> Option<Result<Record, BusError>> {
        let n = self.assigned.len();
        for i in 0..n {
            let idx = (self.next + i) % n;
            let a = &mut self.assigned[idx];
            let end = match ends {
                Some(ends) => ends[idx],
                None => lock(&a.topic.partitions[a.partition]).end,
            };
            if a.ahead.is_empty() && a.position < end {
                match self.bus.read(&a.topic, a.partition, a.position, READ_AHEAD) {
                    Ok(records) => a.ahead.extend(records),
                    Err(e) => return Some(Err(e)),
                }
                if a.ahead.is_empty() {
                    // Deleted by retention meanwhile: nothing below `end` left.
                    a.position = end;
                }
            }
            if a.ahead.front().is_some_and(|r| r.offset < end) {
                let r = a.ahead.pop_front()?;
                a.position = r.offset + 1;
                self.next = (idx + 1) % n;
                return Some(Ok(r));
            }
        }
        None
    }

    pub fn committer(&self) -> DurableCommitter {
        DurableCommitter {
            bus: self.bus.clone(),
            group: self.group.clone(),
        }
    }

    /// Write the offsets marked done, on disk.
    pub async fn close(self) -> Result<(), BusError> {
        self.bus.flush().await
    }
}

/// Marks records done for one group (a reader's marks nothing).
#[derive(Clone)]
pub struct DurableCommitter {
    bus: Arc<DurableBus>,
    group: Option<Arc<str>>,
}

impl DurableCommitter {
    pub fn done(&self, topic: &str, partition: i32, offset: i64) {
        if let Some(g) = &self.group {
            self.bus.done(g, topic, partition, offset);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(name: &str, partitions: i32, compacted: bool) -> TopicSpec {
        TopicSpec {
            name: name.into(),
            partitions,
            replication: 1,
            compacted,
        }
    }

    fn cfg(dir: &Path) -> config::Kafka {
        config::Kafka {
            data_dir: Some(dir.to_owned()),
            ..config::Kafka::with_mode(config::KafkaMode::Embedded)
        }
    }

    fn open(cfg: &config::Kafka) -> Arc<DurableBus> {
        Arc::new(DurableBus::open(cfg, &[spec("t", 4, false), spec("c", 2, true)]).unwrap())
    }

    fn rec(topic: &str, key: &str, n: usize) -> Produce {
        Produce::new(Arc::from(topic), key.to_owned(), n.to_string())
    }

    async fn put(bus: &DurableBus, r: Produce) {
        let ack = AckGroup::new();
        bus.produce(r, Some(&ack)).await.unwrap();
        ack.wait().await.unwrap();
    }

    async fn reopen(bus: Arc<DurableBus>, cfg: &config::Kafka) -> Arc<DurableBus> {
        let closed = bus.closed();
        drop(bus);
        closed.await;
        open(cfg)
    }

    fn n(r: &Record) -> usize {
        std::str::from_utf8(&r.payload).unwrap().parse().unwrap()
    }

    #[tokio::test]
    async fn keeps_order_per_key_and_the_partition_kafka_would_use() {
        let dir = tempfile::tempdir().unwrap();
        let bus = open(&cfg(dir.path()));
        let mut c = bus.consumer("g", &["t"]).unwrap();
        for i in 0..50 {
            put(&bus, rec("t", &format!("k{}", i % 5), i)).await;
        }
        let mut last: HashMap<String, usize> = HashMap::new();
        for _ in 0..50 {
            let r = c.recv().await.unwrap();
            let key = r.key_str().to_owned();
            assert_eq!(r.partition, partition_for_key(key.as_bytes(), 4));
            assert!(last.insert(key, n(&r)).is_none_or(|prev| prev < n(&r)));
        }
        assert!(c.try_recv().is_none());
    }

    #[tokio::test]
    async fn a_restart_resumes_each_group_at_its_committed_offset() {
        let dir = tempfile::tempdir().unwrap();
        let cfg = cfg(dir.path());
        let bus = open(&cfg);
        let mut a = bus.consumer("a", &["t"]).unwrap();
        let _b = bus.consumer("b", &["t"]).unwrap();
        for i in 0..10 {
            put(&bus, rec("t", "k", i)).await;
        }
        let committer = a.committer();
        for _ in 0..4 {
            let r = a.recv().await.unwrap();
            committer.done(&r.topic, r.partition, r.offset);
        }
        // Read but not marked done: read again after the restart.
        a.recv().await.unwrap();
        drop((a, committer, _b));
        let bus = reopen(bus, &cfg).await;
        let mut a = bus.consumer("a", &["t"]).unwrap();
        let mut b = bus.consumer("b", &["t"]).unwrap();
        let got: Vec<usize> = (0..6).map(|_| n(&a.try_recv().unwrap().unwrap())).collect();
        assert_eq!(got, vec![4, 5, 6, 7, 8, 9]);
        assert!(a.try_recv().is_none());
        assert_eq!(
            n(&b.try_recv().unwrap().unwrap()),
            0,
            "b never marked anything done"
        );
        assert_eq!(bus.lag("a", "t"), 6);
        // New records after a restart get new offsets, never reused ones.
        put(&bus, rec("t", "k", 10)).await;
        let r = a.recv().await.unwrap();
        assert_eq!((n(&r), r.offset), (10, 10));
    }

    #[tokio::test]
    async fn a_full_partition_makes_producers_wait_and_loses_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let cfg = config::Kafka {
            partition_capacity: 3,
            ..cfg(dir.path())
        };
        let bus = open(&cfg);
        let mut c = bus.consumer("g", &["t"]).unwrap();
        let committer = c.committer();
        let producer = {
            let bus = bus.clone();
            tokio::spawn(async move {
                for i in 0..20 {
                    bus.produce(rec("t", "same", i), None).await.unwrap();
                }
            })
        };
        for i in 0..20 {
            let r = c.recv().await.unwrap();
            assert_eq!(n(&r), i);
            // Never more than the capacity waiting for this group.
            assert!(bus.lag("g", "t") <= 3);
            committer.done("t", r.partition, r.offset);
        }
        producer.await.unwrap();
        assert_eq!(bus.lag("g", "t"), 0);
    }

    #[tokio::test]
    async fn retention_deletes_only_what_every_group_is_done_with() {
        let dir = tempfile::tempdir().unwrap();
        let cfg = config::Kafka {
            retention: Duration::from_secs(3600),
            ..cfg(dir.path())
        };
        let bus = open(&cfg);
        let mut a = bus.consumer("a", &["t"]).unwrap();
        let mut b = bus.consumer("b", &["t"]).unwrap();
        for i in 0..10 {
            put(&bus, rec("t", "k", i)).await;
        }
        for _ in 0..6 {
            let r = a.recv().await.unwrap();
            a.committer().done(&r.topic, r.partition, r.offset);
        }
        for _ in 0..3 {
            let r = b.recv().await.unwrap();
            b.committer().done(&r.topic, r.partition, r.offset);
        }
        // Done by both, but not old yet.
        assert_eq!(bus.sweep().await.unwrap(), 0);
        let later = SystemTime::now() + Duration::from_secs(7200);
        assert_eq!(bus.sweep_at(later).await.unwrap(), 3, "b is done with 3");
        assert_eq!(bus.depth("t").unwrap(), 7);
        // b goes on reading where it was, and a reader starts at the oldest held.
        assert_eq!(n(&b.recv().await.unwrap()), 3);
        let mut reader = bus.reader("t").unwrap();
        assert_eq!(n(&reader.restore_next().unwrap().unwrap()), 3);
    }

    #[tokio::test]
    async fn retention_records_caps_what_is_kept_once_read() {
        let dir = tempfile::tempdir().unwrap();
        let cfg = config::Kafka {
            retention_records: Some(2),
            ..cfg(dir.path())
        };
        let bus = open(&cfg);
        let mut a = bus.consumer("a", &["t"]).unwrap();
        for i in 0..10 {
            put(&bus, rec("t", "k", i)).await;
        }
        for _ in 0..5 {
            let r = a.recv().await.unwrap();
            a.committer().done(&r.topic, r.partition, r.offset);
        }
        // Only the 5 done records can go; the newest 2 are kept anyway.
        assert_eq!(bus.sweep().await.unwrap(), 5);
        for _ in 0..5 {
            let r = a.recv().await.unwrap();
            a.committer().done(&r.topic, r.partition, r.offset);
        }
        assert_eq!(bus.sweep().await.unwrap(), 3);
        assert_eq!(bus.depth("t").unwrap(), 2);
    }

    #[tokio::test]
    async fn a_compacted_topic_keeps_each_keys_latest_record_across_restarts() {
        let dir = tempfile::tempdir().unwrap();
        let cfg = config::Kafka {
            retention: Duration::ZERO,
            ..cfg(dir.path())
        };
        let bus = open(&cfg);
        for i in 0..6 {
            put(&bus, rec("c", &format!("k{}", i % 2), i)).await;
        }
        assert_eq!(bus.sweep().await.unwrap(), 0, "nothing left to compact");
        let bus = reopen(bus, &cfg).await;
        let mut reader = bus.reader("c").unwrap();
        let mut got = Vec::new();
        while let Some(r) = reader.restore_next() {
            got.push(n(&r.unwrap()));
        }
        got.sort();
        assert_eq!(got, vec![4, 5]);
        // The restore stops at what was held; later records arrive live.
        put(&bus, rec("c", "k0", 6)).await;
        assert!(reader.restore_next().is_none());
        assert_eq!(n(&reader.recv().await.unwrap()), 6);
    }

    #[tokio::test]
    async fn a_group_reading_a_compacted_topic_still_gets_every_record() {
        let dir = tempfile::tempdir().unwrap();
        let bus = open(&cfg(dir.path()));
        let mut g = bus.consumer("g", &["c"]).unwrap();
        for i in 0..4 {
            put(&bus, rec("c", "k", i)).await;
        }
        let got: Vec<usize> = (0..4).map(|_| n(&g.try_recv().unwrap().unwrap())).collect();
        assert_eq!(got, vec![0, 1, 2, 3]);
        g.committer().done("c", partition_for_key(b"k", 2), 3);
        assert_eq!(bus.sweep().await.unwrap(), 3, "superseded and read");
        assert_eq!(bus.depth("c").unwrap(), 1);
    }

    #[tokio::test]
    async fn fsync_interval_acknowledges_at_once_and_syncs_when_closed() {
        let dir = tempfile::tempdir().unwrap();
        let cfg = config::Kafka {
            fsync: Fsync::Interval,
            fsync_interval: Duration::from_secs(3600),
            ..cfg(dir.path())
        };
        let bus = open(&cfg);
        for i in 0..10 {
            put(&bus, rec("t", "k", i)).await;
        }
        let bus = reopen(bus, &cfg).await;
        let mut reader = bus.reader("t").unwrap();
        let got: Vec<usize> = std::iter::from_fn(|| reader.restore_next())
            .map(|r| n(&r.unwrap()))
            .collect();
        assert_eq!(got, (0..10).collect::<Vec<_>>());
    }

    #[tokio::test]
    async fn a_group_no_stage_joins_any_more_is_forgotten_after_the_retention_time() {
        let dir = tempfile::tempdir().unwrap();
        let cfg = config::Kafka {
            retention: Duration::ZERO,
            ..cfg(dir.path())
        };
        let bus = open(&cfg);
        let gone = bus.consumer("gone", &["t"]).unwrap();
        for i in 0..5 {
            put(&bus, rec("t", "k", i)).await;
        }
        drop(gone);
        let bus = reopen(bus, &cfg).await;
        // Only `live` joins this run; `gone` read nothing and is remembered.
        let mut live = bus.consumer("live", &["t"]).unwrap();
        for _ in 0..5 {
            let r = live.recv().await.unwrap();
            live.committer().done(&r.topic, r.partition, r.offset);
        }
        assert_eq!(bus.lag("gone", "t"), 5);
        assert_eq!(bus.sweep().await.unwrap(), 5, "`gone` no longer pins them");
        assert_eq!(bus.depth("t").unwrap(), 0);
        // Joining again, it starts afresh at what is held: nothing.
        let mut again = bus.consumer("gone", &["t"]).unwrap();
        assert!(again.try_recv().is_none());
    }

    #[tokio::test]
    async fn a_second_process_on_the_same_data_dir_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let cfg = cfg(dir.path());
        let _bus = open(&cfg);
        let Err(e) = DurableBus::open(&cfg, &[spec("t", 1, false)]) else {
            panic!("opened twice");
        };
        assert!(e.to_string().contains("in use by another process"), "{e}");
    }

    #[tokio::test]
    async fn a_topic_keeps_the_partitions_it_was_created_with() {
        let dir = tempfile::tempdir().unwrap();
        let cfg = cfg(dir.path());
        let bus = open(&cfg);
        put(&bus, rec("t", "k", 1)).await;
        let closed = bus.closed();
        drop(bus);
        closed.await;
        let bus = Arc::new(DurableBus::open(&cfg, &[spec("t", 8, false)]).unwrap());
        let mut c = bus.consumer("g", &["t"]).unwrap();
        let r = c.recv().await.unwrap();
        assert_eq!(r.partition, partition_for_key(b"k", 4));
    }
}
