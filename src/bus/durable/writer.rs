//! The writer task: every change to the database goes through it. Produces
//! that arrive during a commit go into the next transaction together (group
//! commit); the transaction is synced to disk at once with `fsync: always`,
//! at the next interval with `fsync: interval`.

use std::collections::hash_map::Entry;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use redb::Durability;
use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::CancellationToken;
use tracing::error;

use super::store::{lock, now_millis, Offsets, Shared, Topic, ENDS, OFFSETS};
use crate::bus::record::{AckGroup, BusError, Produce};
use crate::config::Fsync;

/// Records written together at most (one transaction).
pub(super) const MAX_BATCH: usize = 4096;
/// How often retention runs.
const SWEEP_EVERY: Duration = Duration::from_secs(60);

/// A change for the writer task.
pub(super) enum Write {
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
pub(super) struct Pending {
    pub(super) topic: Arc<Topic>,
    pub(super) partition: usize,
    pub(super) record: Produce,
    pub(super) ack: Option<Arc<AckGroup>>,
    pub(super) outcome: Option<Result<(), BusError>>,
}

impl Drop for Pending {
    fn drop(&mut self) {
        lock(&self.topic.partitions[self.partition]).queued -= 1;
        if let Some(a) = self.ack.take() {
            a.complete(self.outcome.take().unwrap_or(Err(BusError::Closed)));
        }
    }
}

impl Shared {
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
}

/// The writer task: every change to the database goes through here. It
/// ends when the bus is dropped, after a last commit on disk.
pub(super) async fn write_loop(
    shared: Arc<Shared>,
    mut rx: mpsc::Receiver<Write>,
    closed: CancellationToken,
) {
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
