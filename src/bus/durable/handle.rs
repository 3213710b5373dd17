//! [`DurableBus`], the handle every producer, consumer and committer
//! shares: opening the database, producing with backpressure, flushing,
//! sweeping, and the depth and lag the operator sees.

use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Instant, SystemTime};

use redb::{Database, ReadableDatabase, ReadableTableMetadata};
use tokio::sync::{mpsc, oneshot, Notify};
use tokio_util::sync::CancellationToken;
use tracing::info;

use super::store::{load, lock, storage, Shared, Topic, FILE};
use super::writer::{write_loop, Pending, Write, MAX_BATCH};
use crate::bus::murmur2::partition_for_key;
use crate::bus::record::{AckGroup, BusError, Produce, TopicSpec};
use crate::config;

/// redb's page cache (its default is 1 GiB): recent records are read from
/// it, older ones through the OS's page cache.
const CACHE_BYTES: usize = 64 << 20;

/// The durable embedded bus.
pub struct DurableBus {
    pub(super) shared: Arc<Shared>,
    writes: mpsc::Sender<Write>,
    capacity: usize,
    /// Cancelled once the writer has made its last commit and the database
    /// is closed (every handle on the bus dropped).
    closed: CancellationToken,
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

    pub(super) fn topic(&self, name: &str) -> Result<&Arc<Topic>, BusError> {
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

    pub(super) async fn sweep_at(&self, now: SystemTime) -> Result<u64, BusError> {
        let (tx, rx) = oneshot::channel();
        self.writes
            .send(Write::Sweep(now, tx))
            .await
            .map_err(|_| BusError::Closed)?;
        rx.await.map_err(|_| BusError::Closed)?
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
