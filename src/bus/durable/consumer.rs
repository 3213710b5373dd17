//! Reading the durable bus: a consumer group's member (resuming at the
//! group's committed offsets), a reader outside any group (from the oldest
//! record held), and the committer that marks records done.

use std::collections::VecDeque;
use std::sync::Arc;

use bytes::Bytes;
use redb::ReadableDatabase;
use tokio::sync::Notify;

use super::handle::DurableBus;
use super::store::{lock, storage, Position, Topic};
use crate::bus::record::{distinct, wait_for, BusError, Record};

/// Records a consumer reads from disk at once.
const READ_AHEAD: usize = 256;

impl DurableBus {
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
