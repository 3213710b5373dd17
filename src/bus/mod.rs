//! The bus: what every stage uses to talk to Kafka, or to the embedded
//! in-process stand-in, through one small interface.
//!
//! - [`Producer::send`] enqueues a keyed record and returns an [`Ack`] to await.
//! - [`Consumer::recv`] gives the next record of the subscribed topics, as a
//!   member of a consumer group.
//! - [`Committer::done`] marks a record processed; call it only once everything
//!   produced from that record is acknowledged, in the order records were
//!   received ([`crate::stage`] does this for every stage).
//!
//! Keys are partitioned with Kafka's murmur2 partitioner on every bus, so a
//! connection lands on the same partition number whichever bus carries it.
//!
//! The embedded bus comes in two kinds: in memory ([`embedded`], the
//! default, for tests and the demo) and on disk ([`durable`], with
//! `kafka: {mode: embedded, data_dir: ...}`).

pub mod durable;
pub mod embedded;
pub mod kafka;
mod murmur2;
pub mod rebalance;
pub mod record;

use std::sync::Arc;
use std::time::Duration;

use crate::config::{self, KafkaMode};
pub use murmur2::partition_for_key;
pub use rebalance::{Rebalances, RevokeHook, TopicPartition};
pub use record::{Ack, AckGroup, BusError, Produce, Record, TopicSpec};

/// The bus a pipeline runs on.
#[derive(Clone)]
pub enum Bus {
    Embedded(Arc<embedded::EmbeddedBus>),
    Durable(Arc<durable::DurableBus>),
    Kafka(Arc<kafka::KafkaBus>),
}

impl Bus {
    /// Connect (or start the embedded bus / mock cluster) and create the
    /// topics that are missing.
    pub async fn connect(cfg: &config::Kafka, topics: &[TopicSpec]) -> Result<Bus, BusError> {
        Ok(match cfg.mode {
            KafkaMode::Embedded if cfg.data_dir.is_some() => {
                Bus::Durable(Arc::new(durable::DurableBus::open(cfg, topics)?))
            }
            KafkaMode::Embedded => Bus::Embedded(Arc::new(embedded::EmbeddedBus::new(
                cfg.partition_capacity,
                topics,
            ))),
            KafkaMode::Mock | KafkaMode::Kafka => {
                Bus::Kafka(Arc::new(kafka::KafkaBus::connect(cfg, topics).await?))
            }
        })
    }

    pub fn producer(&self) -> Result<Producer, BusError> {
        Ok(match self {
            Bus::Embedded(b) => Producer::Embedded(b.clone()),
            Bus::Durable(b) => Producer::Durable(b.clone()),
            Bus::Kafka(b) => Producer::Kafka(b.producer()?),
        })
    }

    /// Join consumer group `group` on `topics`.
    pub fn consumer(&self, group: &str, topics: &[&str]) -> Result<Consumer, BusError> {
        Ok(match self {
            Bus::Embedded(b) => Consumer::Embedded(b.consumer(group, topics)?),
            Bus::Durable(b) => Consumer::Durable(b.consumer(group, topics)?),
            Bus::Kafka(b) => Consumer::Kafka(b.consumer(group, topics)?),
        })
    }

    /// Whether records survive a restart of this process.
    pub fn durable(&self) -> bool {
        match self {
            Bus::Embedded(_) => false,
            Bus::Durable(_) => true,
            Bus::Kafka(b) => !b.is_mock(),
        }
    }
}

/// Writes records.
#[derive(Clone)]
pub enum Producer {
    Embedded(Arc<embedded::EmbeddedBus>),
    Durable(Arc<durable::DurableBus>),
    Kafka(kafka::KafkaProducer),
}

impl Producer {
    /// Enqueue a record; waits while the bus is full (backpressure). The
    /// returned [`Ack`] resolves once the bus has stored it.
    pub async fn send(&self, record: Produce) -> Result<Ack, BusError> {
        let group = self.tracks_acks().then(AckGroup::new);
        self.send_in(record, group.as_ref()).await?;
        Ok(match group {
            Some(g) => Ack::Group(g),
            None => Ack::Done,
        })
    }

    /// Whether records are stored after `send` returns (Kafka: when the
    /// broker acknowledges; the durable bus: when its commit is done), so
    /// that an [`AckGroup`] is needed to know when.
    pub fn tracks_acks(&self) -> bool {
        matches!(self, Producer::Kafka(_) | Producer::Durable(_))
    }

    /// Enqueue a record whose acknowledgement completes `group` (needed
    /// when [`Producer::tracks_acks`]; the embedded bus stores it before
    /// returning).
    pub async fn send_in(
        &self,
        record: Produce,
        group: Option<&Arc<AckGroup>>,
    ) -> Result<(), BusError> {
        match (self, group) {
            (Producer::Embedded(b), _) => b.produce(record).await,
            (Producer::Durable(b), g) => b.produce(record, g).await,
            (Producer::Kafka(p), Some(g)) => p.send(record, g).await,
            (Producer::Kafka(p), None) => p.send(record, &AckGroup::new()).await,
        }
    }

    /// Send and wait for the acknowledgement.
    pub async fn send_and_wait(&self, record: Produce) -> Result<(), BusError> {
        self.send(record).await?.wait().await
    }

    /// Wait until everything enqueued is delivered (or `timeout` passes).
    pub async fn flush(&self, timeout: Duration) -> Result<(), BusError> {
        match self {
            Producer::Embedded(_) => Ok(()),
            Producer::Durable(b) => tokio::time::timeout(timeout, b.flush())
                .await
                .unwrap_or_else(|_| {
                    Err(BusError::Storage(format!(
                        "the bus did not commit within {timeout:?}"
                    )))
                }),
            Producer::Kafka(p) => p.flush(timeout).await,
        }
    }
}

/// Reads records as a member of a consumer group.
pub enum Consumer {
    Embedded(embedded::EmbeddedConsumer),
    Durable(durable::DurableConsumer),
    Kafka(kafka::KafkaConsumer),
}

impl Consumer {
    /// The next record.
    pub async fn recv(&mut self) -> Result<Record, BusError> {
        match self {
            Consumer::Embedded(c) => c.recv().await,
            Consumer::Durable(c) => c.recv().await,
            Consumer::Kafka(c) => c.recv().await,
        }
    }

    /// The next record if one arrives soon, for draining at shutdown: the
    /// embedded buses answer at once, Kafka waits up to `idle`.
    pub async fn recv_drain(&mut self, idle: Duration) -> Option<Result<Record, BusError>> {
        match self {
            Consumer::Embedded(c) => c.try_recv().map(Ok),
            Consumer::Durable(c) => c.try_recv(),
            Consumer::Kafka(c) => tokio::time::timeout(idle, c.recv()).await.ok(),
        }
    }

    /// A handle to mark records done, usable from another task.
    pub fn committer(&self) -> Committer {
        match self {
            Consumer::Embedded(c) => Committer::Embedded(c.committer()),
            Consumer::Durable(c) => Committer::Durable(c.committer()),
            Consumer::Kafka(c) => Committer::Kafka(c.committer()),
        }
    }

    /// This member's assignment as it changes (on the embedded buses it
    /// holds every partition from the start).
    pub fn rebalances(&self) -> Arc<Rebalances> {
        match self {
            Consumer::Kafka(c) => c.rebalances(),
            Consumer::Embedded(_) | Consumer::Durable(_) => Rebalances::fixed(),
        }
    }

    /// Leave records' headers out (stages never read their input's; on
    /// Kafka, parsing them costs even when a record has none).
    pub fn ignore_headers(&mut self) {
        if let Consumer::Kafka(c) = self {
            c.ignore_headers();
        }
    }

    /// Commit what was marked done, synchronously, and leave the group.
    pub async fn close(self) -> Result<(), BusError> {
        match self {
            Consumer::Embedded(_) => Ok(()),
            Consumer::Durable(c) => c.close().await,
            Consumer::Kafka(c) => c.close().await,
        }
    }
}

/// Marks records done (Kafka: stores the offset for the next commit).
#[derive(Clone)]
pub enum Committer {
    Embedded(embedded::EmbeddedCommitter),
    Durable(durable::DurableCommitter),
    Kafka(kafka::KafkaCommitter),
}

impl Committer {
    /// Everything produced from this record is acknowledged: it need not be
    /// read again. Takes the record's own offset.
    pub fn done(&self, topic: &str, partition: i32, offset: i64) -> Result<(), BusError> {
        self.done_many(&[(topic, partition, offset)])
    }

    /// [`Committer::done`] for the last finished record of several
    /// partitions at once (each implies every earlier one of its partition).
    pub fn done_many(&self, records: &[(&str, i32, i64)]) -> Result<(), BusError> {
        match self {
            Committer::Embedded(c) => {
                for (topic, partition, offset) in records {
                    c.done(topic, *partition, *offset);
                }
                Ok(())
            }
            Committer::Durable(c) => {
                for (topic, partition, offset) in records {
                    c.done(topic, *partition, *offset);
                }
                Ok(())
            }
            Committer::Kafka(c) => c.done(records),
        }
    }
}
