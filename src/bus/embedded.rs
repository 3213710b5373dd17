//! The embedded bus: Kafka's model in one process, for running a pipeline
//! with no server. Keyed partitions (Kafka's partitioner), per-partition
//! order, consumer groups with their own positions, and bounded memory: a
//! full partition makes producers wait until every group has consumed and
//! marked done the oldest records. Nothing a group still has to read is ever
//! dropped. It is not durable: records in it are gone when the process stops.
//!
//! A topic that no group reads keeps its latest `capacity` records per
//! partition, oldest trimmed first: no reader can ever ask for the older ones,
//! since every group of an embedded pipeline lives in this process and joins
//! at start-up.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};

use bytes::Bytes;
use tokio::sync::Notify;

use super::murmur2::partition_for_key;
use super::record::{distinct, wait_for, BusError, Produce, Record, TopicSpec};

/// The in-process bus.
pub struct EmbeddedBus {
    topics: HashMap<String, Arc<Topic>>,
    capacity: usize,
}

struct Topic {
    name: Arc<str>,
    partitions: Vec<Mutex<Partition>>,
    /// Woken when records are appended: only this topic's readers wake.
    data: Notify,
    /// Woken when records are trimmed (room for this topic's waiting producers).
    room: Notify,
}

#[derive(Default)]
struct Partition {
    /// Offset of `log[0]`.
    base: i64,
    log: VecDeque<Entry>,
    /// Per group: the next offset it still needs (everything below is done).
    groups: HashMap<Arc<str>, i64>,
}

struct Entry {
    key: Bytes,
    payload: Bytes,
    headers: Vec<(String, Bytes)>,
}

impl Partition {
    fn end(&self) -> i64 {
        self.base + self.log.len() as i64
    }

    /// Drop records every group is done with; with no group, keep `capacity`.
    fn trim(&mut self, capacity: usize) -> bool {
        let keep_from = match self.groups.values().min() {
            Some(&min) => min,
            None => self.end() - capacity as i64,
        };
        let mut trimmed = false;
        while self.base < keep_from && !self.log.is_empty() {
            self.log.pop_front();
            self.base += 1;
            trimmed = true;
        }
        trimmed
    }
}

fn lock(p: &Mutex<Partition>) -> MutexGuard<'_, Partition> {
    // A panic while holding this lock would be a bug in this file; the data
    // (a queue of immutable records) stays consistent, so carry on.
    p.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl EmbeddedBus {
    pub fn new(capacity: usize, topics: &[TopicSpec]) -> Self {
        let topics = topics
            .iter()
            .map(|t| {
                let topic = Topic {
                    name: Arc::from(t.name.as_str()),
                    partitions: (0..t.partitions.max(1))
                        .map(|_| Mutex::new(Partition::default()))
                        .collect(),
                    data: Notify::new(),
                    room: Notify::new(),
                };
                (t.name.clone(), Arc::new(topic))
            })
            .collect();
        Self {
            topics,
            capacity: capacity.max(1),
        }
    }

    fn topic(&self, name: &str) -> Result<&Arc<Topic>, BusError> {
        self.topics
            .get(name)
            .ok_or_else(|| BusError::UnknownTopic(name.to_owned()))
    }

    /// Append a record, waiting while its partition is full.
    pub async fn produce(&self, record: Produce) -> Result<(), BusError> {
        let topic = self.topic(&record.topic)?;
        let p = partition_for_key(&record.key, topic.partitions.len() as i32) as usize;
        let mut entry = Some(Entry {
            key: record.key,
            payload: record.payload,
            headers: record.headers,
        });
        loop {
            let room = topic.room.notified();
            tokio::pin!(room);
            // Register before checking, so a trim between check and wait still wakes us.
            room.as_mut().enable();
            {
                let mut part = lock(&topic.partitions[p]);
                if part.log.len() >= self.capacity {
                    part.trim(self.capacity);
                }
                if part.log.len() < self.capacity || part.groups.is_empty() {
                    if let Some(e) = entry.take() {
                        part.log.push_back(e);
                    }
                    if part.groups.is_empty() {
                        part.trim(self.capacity);
                    }
                    drop(part);
                    topic.data.notify_waiters();
                    return Ok(());
                }
            }
            room.await;
        }
    }

    /// Join `group` on `topics`. A new group starts at the oldest record held.
    pub fn consumer(
        self: &Arc<Self>,
        group: &str,
        topics: &[&str],
    ) -> Result<EmbeddedConsumer, BusError> {
        let group: Arc<str> = Arc::from(group);
        let mut assigned = Vec::new();
        for name in topics {
            let topic = self.topic(name)?.clone();
            for (i, part) in topic.partitions.iter().enumerate() {
                let mut part = lock(part);
                let base = part.base;
                let position = *part.groups.entry(group.clone()).or_insert(base);
                assigned.push(Assigned {
                    topic: topic.clone(),
                    partition: i,
                    position,
                });
            }
        }
        Ok(EmbeddedConsumer {
            bus: self.clone(),
            group,
            assigned,
            next: 0,
        })
    }

    fn done(&self, group: &str, topic: &str, partition: i32, offset: i64) {
        let Some(t) = self.topics.get(topic) else {
            return;
        };
        let Some(part) = t.partitions.get(partition as usize) else {
            return;
        };
        let trimmed = {
            let mut part = lock(part);
            if let Some(next) = part.groups.get_mut(group) {
                *next = (*next).max(offset + 1);
            }
            part.trim(self.capacity)
        };
        if trimmed {
            t.room.notify_waiters();
        }
    }

    /// Records held, per topic (for tests and `/readyz` diagnostics).
    pub fn depth(&self, topic: &str) -> usize {
        self.topics
            .get(topic)
            .map(|t| t.partitions.iter().map(|p| lock(p).log.len()).sum())
            .unwrap_or(0)
    }

    /// Records of `topic` that `group` has not marked done yet.
    pub fn lag(&self, group: &str, topic: &str) -> i64 {
        self.topics
            .get(topic)
            .map(|t| {
                t.partitions
                    .iter()
                    .map(|p| {
                        let p = lock(p);
                        p.end() - p.groups.get(group).copied().unwrap_or(p.base)
                    })
                    .sum()
            })
            .unwrap_or(0)
    }
}

struct Assigned {
    topic: Arc<Topic>,
    partition: usize,
    /// The next offset this consumer reads.
    position: i64,
}

/// A group member reading every partition of its topics.
pub struct EmbeddedConsumer {
    bus: Arc<EmbeddedBus>,
    group: Arc<str>,
    assigned: Vec<Assigned>,
    /// Round-robin start, so one busy partition does not starve the others.
    next: usize,
}

impl EmbeddedConsumer {
    pub async fn recv(&mut self) -> Result<Record, BusError> {
        // The topics this consumer reads, to wait on their wake-ups.
        let topics = distinct(self.assigned.iter().map(|a| &a.topic));
        if topics.is_empty() {
            return Err(BusError::Closed);
        }
        let wakes: Vec<&Notify> = topics.iter().map(|t| &t.data).collect();
        Ok(wait_for(&wakes, || self.try_recv()).await)
    }

    /// The next record if one is there now.
    pub fn try_recv(&mut self) -> Option<Record> {
        let n = self.assigned.len();
        for i in 0..n {
            let idx = (self.next + i) % n;
            let a = &mut self.assigned[idx];
            let part = lock(&a.topic.partitions[a.partition]);
            // A record below base was trimmed: only possible for a topic read
            // by no group before this one joined. Skip to what is held.
            if a.position < part.base {
                a.position = part.base;
            }
            let at = (a.position - part.base) as usize;
            if let Some(e) = part.log.get(at) {
                let record = Record {
                    topic: a.topic.name.clone(),
                    partition: a.partition as i32,
                    offset: a.position,
                    key: Some(e.key.clone()),
                    payload: e.payload.clone(),
                    headers: e.headers.clone(),
                };
                drop(part);
                a.position += 1;
                self.next = (idx + 1) % n;
                return Some(record);
            }
        }
        None
    }

    pub fn committer(&self) -> EmbeddedCommitter {
        EmbeddedCommitter {
            bus: self.bus.clone(),
            group: self.group.clone(),
        }
    }
}

/// Marks records done for one group.
#[derive(Clone)]
pub struct EmbeddedCommitter {
    bus: Arc<EmbeddedBus>,
    group: Arc<str>,
}

impl EmbeddedCommitter {
    pub fn done(&self, topic: &str, partition: i32, offset: i64) {
        self.bus.done(&self.group, topic, partition, offset);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn bus(capacity: usize) -> Arc<EmbeddedBus> {
        Arc::new(EmbeddedBus::new(
            capacity,
            &[TopicSpec {
                name: "t".into(),
                partitions: 4,
                replication: 1,
                compacted: false,
                retention: None,
            }],
        ))
    }

    fn rec(key: &str, n: usize) -> Produce {
        Produce::new(Arc::from("t"), key.to_owned(), n.to_string())
    }

    #[tokio::test]
    async fn keeps_order_per_key_and_same_partition_as_kafka() {
        let bus = bus(100);
        let mut c = bus.consumer("g", &["t"]).unwrap();
        for n in 0..50 {
            bus.produce(rec(&format!("k{}", n % 5), n)).await.unwrap();
        }
        let mut last: HashMap<String, i64> = HashMap::new();
        for _ in 0..50 {
            let r = c.recv().await.unwrap();
            let key = r.key_str().to_owned();
            assert_eq!(r.partition, partition_for_key(key.as_bytes(), 4));
            let n: i64 = std::str::from_utf8(&r.payload).unwrap().parse().unwrap();
            assert!(last.insert(key, n).is_none_or(|prev| prev < n));
        }
        assert!(c.try_recv().is_none());
    }

    #[tokio::test(start_paused = true)]
    async fn a_full_partition_makes_producers_wait_and_loses_nothing() {
        let bus = bus(3);
        let mut c = bus.consumer("g", &["t"]).unwrap();
        let committer = c.committer();
        let producer = {
            let bus = bus.clone();
            tokio::spawn(async move {
                for n in 0..20 {
                    bus.produce(rec("same", n)).await.unwrap();
                }
            })
        };
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert_eq!(bus.depth("t"), 3, "producer must wait at capacity");
        for n in 0..20 {
            let r = c.recv().await.unwrap();
            assert_eq!(&r.payload[..], n.to_string().as_bytes());
            committer.done("t", r.partition, r.offset);
        }
        producer.await.unwrap();
        assert_eq!(bus.lag("g", "t"), 0);
    }

    #[tokio::test]
    async fn groups_read_independently() {
        let bus = bus(10);
        let mut a = bus.consumer("a", &["t"]).unwrap();
        let mut b = bus.consumer("b", &["t"]).unwrap();
        bus.produce(rec("k", 1)).await.unwrap();
        let ra = a.recv().await.unwrap();
        a.committer().done("t", ra.partition, ra.offset);
        assert_eq!(bus.depth("t"), 1, "b has not read it yet");
        let rb = b.recv().await.unwrap();
        b.committer().done("t", rb.partition, rb.offset);
        assert_eq!(bus.depth("t"), 0);
    }

    #[tokio::test]
    async fn unread_topic_keeps_the_latest_records() {
        let bus = bus(2);
        for n in 0..10 {
            bus.produce(rec("k", n)).await.unwrap();
        }
        assert_eq!(bus.depth("t"), 2);
    }
}
