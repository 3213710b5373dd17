//! Reading from Kafka as a group member: records, the offsets of finished
//! ones, and the rebalance callbacks ([`GroupContext`]).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{
    BaseConsumer, CommitMode, Consumer, ConsumerContext, Rebalance, StreamConsumer,
};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{Headers, Message};
use rdkafka::{ClientContext, Offset, TopicPartitionList};
use tracing::{info, warn};

use super::error::kafka_error;
use super::lag::LagReporter;
use crate::bus::rebalance::{Rebalances, TopicPartition};
use crate::bus::record::{BusError, Record};

/// Read `consumer` (from [`super::KafkaBus::reader`]) until every partition is read
/// up to the end it had when the reader was made, then until the topic is
/// quiet for a second, calling `each` per record. (The quiet second is for
/// brokers whose reported end is short: tansu 0.6.0 reports the end of a
/// batch of several records as its first offset + 1.)
pub async fn read_to_end<E: From<BusError>>(
    consumer: &mut KafkaConsumer,
    topic: &str,
    progress: &[(i32, i64, i64)],
    mut each: impl AsyncFnMut(Record) -> Result<(), E>,
) -> Result<(), E> {
    if progress.iter().all(|(_, _, end)| *end == 0) {
        return Ok(()); // never written to
    }
    // Partitions with something this group has not read yet.
    let mut remaining: HashMap<i32, i64> = progress
        .iter()
        .filter(|(_, done, end)| done < end)
        .map(|(p, _, end)| (*p, *end))
        .collect();
    let mut received = false;
    loop {
        let wait = match (remaining.is_empty(), received) {
            (true, true) => Duration::from_secs(1),
            (true, false) => Duration::from_secs(2),
            (false, _) => Duration::from_secs(30),
        };
        let r = match tokio::time::timeout(wait, consumer.recv()).await {
            Ok(r) => r?,
            Err(_) if remaining.is_empty() => return Ok(()),
            Err(_) => {
                return Err(BusError::Kafka {
                    message: format!("{topic} stopped answering before its end"),
                    retryable: true,
                }
                .into())
            }
        };
        if let Some(end) = remaining.get(&r.partition) {
            if r.offset + 1 >= *end {
                remaining.remove(&r.partition);
            }
        }
        received = true;
        each(r).await?;
    }
}

/// A stage member's librdkafka context: before partitions are taken away
/// it runs the [`Rebalances`] hooks and commits the stored offsets (so the
/// next owner neither races what this member started nor redoes what it
/// finished); after partitions are given it records them.
pub struct GroupContext {
    rebalances: Arc<Rebalances>,
    /// Reports the member's lag from librdkafka's statistics.
    lag: LagReporter,
}

fn partitions(tpl: &TopicPartitionList) -> Vec<TopicPartition> {
    tpl.elements()
        .iter()
        .map(|e| (e.topic().to_owned(), e.partition()))
        .collect()
}

impl ClientContext for GroupContext {
    fn stats(&self, stats: rdkafka::Statistics) {
        self.lag.record(&stats);
    }
}

impl ConsumerContext for GroupContext {
    fn pre_rebalance(&self, consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        if let Rebalance::Revoke(tpl) = rebalance {
            self.rebalances.revoking(&partitions(tpl));
            if consumer.assignment_lost() {
                // The session ended (or the member is leaving): the group
                // takes no commit for them now; their next owner reads on
                // from the last one.
                info!(partitions = tpl.count(), "partitions lost: not committing");
                return;
            }
            match consumer.commit_consumer_state(CommitMode::Sync) {
                Ok(()) => info!(partitions = tpl.count(), "committed before revoke"),
                // Nothing stored yet is the common harmless case.
                Err(KafkaError::ConsumerCommit(RDKafkaErrorCode::NoOffset)) => {}
                Err(e) => warn!(error = %e, "commit before revoke failed"),
            }
        }
    }

    fn post_rebalance(&self, _: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        if let Rebalance::Assign(tpl) = rebalance {
            info!(partitions = tpl.count(), "partitions assigned");
            self.rebalances.assigned(&partitions(tpl));
        }
    }
}

/// Reads from Kafka as a group member.
pub struct KafkaConsumer {
    consumer: Arc<StreamConsumer<GroupContext>>,
    rebalances: Arc<Rebalances>,
    /// Topic names seen, shared by the records (not one allocation each).
    topics: Vec<Arc<str>>,
    /// Whether records carry their headers (parsing them costs even when a
    /// record has none; stages never read their input's headers).
    headers: bool,
}

impl KafkaConsumer {
    /// A member of `config`'s group, subscribed to `topics` (none: assign later).
    pub(super) fn new(
        config: &ClientConfig,
        group: &str,
        topics: &[&str],
        lag: LagReporter,
    ) -> Result<Self, BusError> {
        let rebalances = Arc::new(Rebalances::default());
        let context = GroupContext {
            rebalances: rebalances.clone(),
            lag,
        };
        let consumer: StreamConsumer<GroupContext> =
            config.create_with_context(context).map_err(kafka_error)?;
        if !topics.is_empty() {
            consumer.subscribe(topics).map_err(|e| {
                let e = kafka_error(e);
                warn!(group, error = %e, "cannot subscribe");
                e
            })?;
        }
        Ok(KafkaConsumer {
            consumer: Arc::new(consumer),
            rebalances,
            topics: Vec::new(),
            headers: true,
        })
    }

    /// Read exactly these partitions (no group membership).
    pub(super) fn assign(&self, tpl: &TopicPartitionList) -> Result<(), BusError> {
        self.consumer.assign(tpl).map_err(kafka_error)
    }

    /// A second handle on this consumer, to ask the broker about offsets
    /// while another task reads records.
    pub fn handle(&self) -> KafkaConsumer {
        KafkaConsumer {
            consumer: self.consumer.clone(),
            rebalances: self.rebalances.clone(),
            topics: Vec::new(),
            headers: self.headers,
        }
    }

    /// This member's assignment as it changes.
    pub fn rebalances(&self) -> Arc<Rebalances> {
        self.rebalances.clone()
    }

    /// For each partition of `topic`: (partition, oldest offset held, end
    /// offset), asked of the broker now.
    pub async fn watermarks(&self, topic: &str) -> Result<Vec<(i32, i64, i64)>, BusError> {
        let c = self.consumer.clone();
        let topic = topic.to_owned();
        tokio::task::spawn_blocking(move || {
            let timeout = Duration::from_secs(10);
            partition_ids(&c, &topic, timeout)?
                .into_iter()
                .map(|p| {
                    let (low, high) = c
                        .fetch_watermarks(&topic, p, timeout)
                        .map_err(kafka_error)?;
                    Ok((p, low, high))
                })
                .collect()
        })
        .await
        .map_err(|_| BusError::Closed)?
    }

    /// Leave records' headers out.
    pub fn ignore_headers(&mut self) {
        self.headers = false;
    }

    fn topic(&mut self, name: &str) -> Arc<str> {
        if let Some(t) = self.topics.iter().find(|t| ***t == *name) {
            return t.clone();
        }
        let t: Arc<str> = Arc::from(name);
        self.topics.push(t.clone());
        t
    }

    pub async fn recv(&mut self) -> Result<Record, BusError> {
        let consumer = self.consumer.clone();
        let m = consumer.recv().await.map_err(kafka_error)?;
        let headers = match self.headers.then(|| m.headers()).flatten() {
            Some(h) => h
                .iter()
                .map(|h| {
                    (
                        h.key.to_owned(),
                        Bytes::copy_from_slice(h.value.unwrap_or_default()),
                    )
                })
                .collect(),
            None => Vec::new(),
        };
        Ok(Record {
            topic: self.topic(m.topic()),
            partition: m.partition(),
            offset: m.offset(),
            key: m.key().map(Bytes::copy_from_slice),
            payload: Bytes::copy_from_slice(m.payload().unwrap_or_default()),
            headers,
        })
    }

    /// For each partition of `topic`: the group's committed offset (0 when
    /// it has none) and the end offset (the next offset to be written).
    pub async fn progress(&self, topic: &str) -> Result<Vec<(i32, i64, i64)>, BusError> {
        let c = self.consumer.clone();
        let topic = topic.to_owned();
        tokio::task::spawn_blocking(move || {
            let timeout = Duration::from_secs(10);
            let mut tpl = TopicPartitionList::new();
            for p in partition_ids(&c, &topic, timeout)? {
                tpl.add_partition(&topic, p);
            }
            let committed = c.committed_offsets(tpl, timeout).map_err(kafka_error)?;
            committed
                .elements()
                .iter()
                .map(|e| {
                    let done = match e.offset() {
                        Offset::Offset(o) => o,
                        _ => 0,
                    };
                    c.fetch_watermarks(&topic, e.partition(), timeout)
                        .map(|(_, end)| (e.partition(), done, end))
                        .map_err(kafka_error)
                })
                .collect()
        })
        .await
        .map_err(|_| BusError::Closed)?
    }

    pub fn committer(&self) -> KafkaCommitter {
        KafkaCommitter {
            consumer: self.consumer.clone(),
        }
    }

    pub async fn close(self) -> Result<(), BusError> {
        let c = self.consumer;
        tokio::task::spawn_blocking(move || match c.commit_consumer_state(CommitMode::Sync) {
            Ok(()) | Err(KafkaError::ConsumerCommit(RDKafkaErrorCode::NoOffset)) => {
                c.unsubscribe();
                Ok(())
            }
            Err(e) => Err(kafka_error(e)),
        })
        .await
        .map_err(|_| BusError::Closed)?
    }
}

/// The partitions `topic` has, as the cluster's metadata says now.
fn partition_ids(
    c: &StreamConsumer<GroupContext>,
    topic: &str,
    timeout: Duration,
) -> Result<Vec<i32>, BusError> {
    let md = c
        .fetch_metadata(Some(topic), timeout)
        .map_err(kafka_error)?;
    Ok(md
        .topics()
        .iter()
        .filter(|t| t.name() == topic)
        .flat_map(|t| t.partitions().iter().map(|p| p.id()))
        .collect())
}

/// Stores offsets of finished records.
#[derive(Clone)]
pub struct KafkaCommitter {
    consumer: Arc<StreamConsumer<GroupContext>>,
}

impl KafkaCommitter {
    /// Store, for each `(topic, partition, offset)`, that the record at
    /// `offset` and all before it are done: one call for many partitions.
    pub fn done(&self, records: &[(&str, i32, i64)]) -> Result<(), BusError> {
        let mut tpl = TopicPartitionList::with_capacity(records.len());
        for (topic, partition, offset) in records {
            // The next offset to read, as commit takes it.
            tpl.add_partition_offset(topic, *partition, Offset::Offset(offset + 1))
                .map_err(kafka_error)?;
        }
        match self.consumer.store_offsets(&tpl) {
            Ok(()) => Ok(()),
            // The partition was revoked meanwhile (librdkafka answers
            // `State` for a partition no longer assigned): its new owner
            // redoes the record (at least once); nothing to store here.
            Err(KafkaError::StoreOffset(
                RDKafkaErrorCode::UnknownPartition | RDKafkaErrorCode::State,
            )) => {
                tracing::debug!(
                    ?records,
                    "a partition was revoked before its record was done"
                );
                Ok(())
            }
            Err(e) => Err(kafka_error(e)),
        }
    }
}
