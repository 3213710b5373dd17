//! The Kafka bus, through rdkafka (librdkafka): a real cluster, or
//! librdkafka's mock cluster started in-process for tests.
//!
//! At-least-once: the consumer's offsets are stored only when the stage says a
//! record is done (everything produced from it acknowledged), auto-committed
//! every second, committed synchronously when partitions are revoked and when
//! the consumer closes.

mod error;
pub mod groups;
mod lag;
pub(super) mod mock;

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{
    BaseConsumer, CommitMode, Consumer, ConsumerContext, Rebalance, StreamConsumer,
};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{Header, Headers, Message, OwnedHeaders};
use rdkafka::producer::{
    BaseRecord, DeliveryResult, Producer as _, ProducerContext, ThreadedProducer,
};
use rdkafka::{ClientContext, Offset, TopicPartitionList};
use tracing::{info, warn};

use super::record::{AckGroup, BusError, Produce, Record, TopicSpec};
use crate::config::{self, KafkaMode};
use error::kafka_error;
use mock::MockCluster;

/// A connection to a cluster (its settings; clients are made per stage).
pub struct KafkaBus {
    base: ClientConfig,
    /// `consumer.`-prefixed settings from the pipeline, for consumers only.
    consumer_only: BTreeMap<String, String>,
    /// Present in mock mode: the thread that owns librdkafka's mock cluster.
    mock: Option<MockCluster>,
    group_prefix: String,
}

impl KafkaBus {
    pub async fn connect(cfg: &config::Kafka, topics: &[TopicSpec]) -> Result<KafkaBus, BusError> {
        let mut base = ClientConfig::new();
        let mut mock = None;
        let mut defaults: BTreeMap<&str, &str> = BTreeMap::new();
        // Kafka's Java partitioner, so keys land where the embedded bus puts
        // them and where Java producers would.
        defaults.insert("partitioner", "murmur2_random");
        // A hop waits at most this long for data; librdkafka's 500 ms default
        // would add half a second per stage to every reply.
        defaults.insert("fetch.wait.max.ms", "20");
        defaults.insert("linger.ms", "5");
        match cfg.mode {
            KafkaMode::Mock => {
                let cluster = MockCluster::start(topics)?;
                base.set("bootstrap.servers", &cluster.bootstrap);
                // The mock cluster makes each later join wait session.timeout - 1 s.
                defaults.insert("session.timeout.ms", "6000");
                mock = Some(cluster);
            }
            _ => {
                base.set(
                    "bootstrap.servers",
                    cfg.brokers.as_deref().unwrap_or_default(),
                );
            }
        }
        for (k, v) in defaults {
            base.set(k, v);
        }
        let mut consumer_only = BTreeMap::new();
        for (k, v) in &cfg.config {
            match k.strip_prefix("consumer.") {
                Some(key) => {
                    consumer_only.insert(key.to_owned(), v.clone());
                }
                None => {
                    base.set(k, v);
                }
            }
        }
        let bus = KafkaBus {
            base,
            consumer_only,
            mock,
            group_prefix: format!("{}.", cfg.group),
        };
        if bus.mock.is_none() && !topics.is_empty() {
            bus.create_topics(topics).await?;
        }
        Ok(bus)
    }

    /// The bootstrap servers clients connect to (in mock mode, the mock
    /// cluster's loopback listener, which other processes can reach too).
    pub fn bootstrap_servers(&self) -> String {
        self.base
            .get("bootstrap.servers")
            .unwrap_or_default()
            .to_owned()
    }

    pub fn is_mock(&self) -> bool {
        self.mock.is_some()
    }

    /// The topics the cluster has now.
    async fn existing_topics(&self) -> Result<Vec<String>, BusError> {
        let config = self.client_config();
        tokio::task::spawn_blocking(move || {
            let client: BaseConsumer = config.create().map_err(kafka_error)?;
            let md = client
                .fetch_metadata(None, Duration::from_secs(30))
                .map_err(kafka_error)?;
            Ok(md.topics().iter().map(|t| t.name().to_owned()).collect())
        })
        .await
        .map_err(|_| BusError::Closed)?
    }

    /// Create the missing topics; existing ones are left as they are (and
    /// need no permission to create: managed clusters often provision them).
    async fn create_topics(&self, topics: &[TopicSpec]) -> Result<(), BusError> {
        let existing = self.existing_topics().await?;
        let missing: Vec<&TopicSpec> = topics
            .iter()
            .filter(|t| !existing.contains(&t.name))
            .collect();
        if missing.is_empty() {
            return Ok(());
        }
        let admin: AdminClient<DefaultClientContext> =
            self.client_config().create().map_err(kafka_error)?;
        let configs: Vec<_> = missing.iter().map(|t| t.kafka_config()).collect();
        let new: Vec<NewTopic<'_>> = missing
            .iter()
            .zip(&configs)
            .map(|(t, config)| {
                let nt = NewTopic::new(
                    &t.name,
                    t.partitions,
                    TopicReplication::Fixed(t.replication),
                );
                config.iter().fold(nt, |nt, (k, v)| nt.set(k, v))
            })
            .collect();
        let results = admin
            .create_topics(
                &new,
                &AdminOptions::new().operation_timeout(Some(Duration::from_secs(30))),
            )
            .await
            .map_err(kafka_error)?;
        for r in results {
            match r {
                Ok(name) => info!(topic = %name, "created topic"),
                Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => {}
                Err((name, code)) => {
                    return Err(BusError::Kafka {
                        message: format!("cannot create topic {name}: {code}"),
                        retryable: false,
                    })
                }
            }
        }
        Ok(())
    }

    fn client_config(&self) -> ClientConfig {
        let mut c = ClientConfig::new();
        // Only settings every client type accepts; producer/consumer-only
        // keys would make librdkafka warn on the admin client.
        for (k, v) in self.base.config_map() {
            if k != "partitioner"
                && k != "linger.ms"
                && k != "fetch.wait.max.ms"
                && k != "session.timeout.ms"
            {
                c.set(k, v);
            }
        }
        c
    }

    pub fn producer(&self) -> Result<KafkaProducer, BusError> {
        let mut c = self.base.clone();
        for k in ["fetch.wait.max.ms", "session.timeout.ms"] {
            c.remove(k);
        }
        let producer: ThreadedProducer<AckContext> =
            c.create_with_context(AckContext).map_err(kafka_error)?;
        Ok(KafkaProducer {
            producer: Arc::new(producer),
        })
    }

    pub fn consumer(&self, group: &str, topics: &[&str]) -> Result<KafkaConsumer, BusError> {
        self.consumer_from(group, topics, true)
    }

    /// A group member that starts, when the group has no committed offset,
    /// at the oldest record (`earliest`) or at the next one written.
    pub fn consumer_from(
        &self,
        group: &str,
        topics: &[&str],
        earliest: bool,
    ) -> Result<KafkaConsumer, BusError> {
        let mut c = self.base.clone();
        for k in ["partitioner", "linger.ms"] {
            c.remove(k);
        }
        c.set("group.id", group)
            .set("enable.auto.commit", "true")
            .set("auto.commit.interval.ms", "1000")
            // Offsets are stored by Committer::done, never on delivery.
            .set("enable.auto.offset.store", "false")
            .set(
                "auto.offset.reset",
                if earliest { "earliest" } else { "latest" },
            )
            // Eager rebalancing was seen redelivering tens of thousands of records.
            .set("partition.assignment.strategy", "cooperative-sticky")
            .set("statistics.interval.ms", lag::interval(topics));
        for (k, v) in &self.consumer_only {
            c.set(k, v);
        }
        let lag = lag::LagReporter::new(group.strip_prefix(&self.group_prefix).unwrap_or(group));
        let consumer: StreamConsumer<CommitOnRevoke> = c
            .create_with_context(CommitOnRevoke { lag })
            .map_err(kafka_error)?;
        if !topics.is_empty() {
            consumer.subscribe(topics).map_err(kafka_error)?;
        }
        Ok(KafkaConsumer::new(consumer))
    }

    /// A consumer that reads every partition of `topic` from `group`'s
    /// committed offsets (or the beginning), by assignment rather than group
    /// membership: nothing to join, nothing to rebalance. Returns it with
    /// each partition's (partition, committed, end) for [`read_to_end`].
    pub async fn reader(
        &self,
        group: &str,
        topic: &str,
    ) -> Result<(KafkaConsumer, Vec<(i32, i64, i64)>), BusError> {
        let reader = self.consumer_from(group, &[], true)?;
        let progress = reader.progress(topic).await?;
        let mut tpl = TopicPartitionList::new();
        for (p, done, _) in &progress {
            let start = if *done > 0 {
                Offset::Offset(*done)
            } else {
                Offset::Beginning
            };
            tpl.add_partition_offset(topic, *p, start)
                .map_err(kafka_error)?;
        }
        reader.consumer.assign(&tpl).map_err(kafka_error)?;
        Ok((reader, progress))
    }
}

/// Read `consumer` (from [`KafkaBus::reader`]) until every partition is read
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

/// Writes to Kafka.
#[derive(Clone)]
pub struct KafkaProducer {
    producer: Arc<ThreadedProducer<AckContext>>,
}

/// Delivery reports complete the [`AckGroup`] each record was sent with
/// (on librdkafka's polling thread): no future and no wake-up per record.
pub struct AckContext;

impl ClientContext for AckContext {}

impl ProducerContext for AckContext {
    type DeliveryOpaque = Arc<AckGroup>;

    fn delivery(&self, result: &DeliveryResult<'_>, group: Arc<AckGroup>) {
        group.complete(match result {
            Ok(_) => Ok(()),
            Err((e, _)) => Err(kafka_error(e.clone())),
        });
    }
}

impl KafkaProducer {
    /// Enqueue `record`; `group` is completed when the broker acknowledged it.
    pub async fn send(&self, record: Produce, group: &Arc<AckGroup>) -> Result<(), BusError> {
        let mut br = BaseRecord::with_opaque_to(&record.topic, group.clone())
            .key(record.key.as_ref())
            .payload(record.payload.as_ref());
        // An empty payload is a tombstone (a deleted key in a compacted topic): null on Kafka.
        if record.payload.is_empty() {
            br.payload = None;
        }
        // librdkafka allocates a header list even for none: only when needed.
        if !record.headers.is_empty() {
            let mut headers = OwnedHeaders::new_with_capacity(record.headers.len());
            for (k, v) in &record.headers {
                headers = headers.insert(Header {
                    key: k,
                    value: Some(v.as_ref()),
                });
            }
            br = br.headers(headers);
        }
        group.expect_one();
        loop {
            match self.producer.send(br) {
                Ok(()) => return Ok(()),
                // librdkafka's queue is full: wait for deliveries to make room.
                Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), back)) => {
                    br = back;
                    tokio::time::sleep(Duration::from_millis(5)).await;
                }
                Err((e, _)) => {
                    let e = kafka_error(e);
                    group.complete(Err(e.clone()));
                    return Err(e);
                }
            }
        }
    }

    /// Send one record and wait for the broker's acknowledgement.
    pub async fn send_and_wait(&self, record: Produce) -> Result<(), BusError> {
        let group = AckGroup::new();
        self.send(record, &group).await?;
        group.wait().await
    }

    pub async fn flush(&self, timeout: Duration) -> Result<(), BusError> {
        let p = self.producer.clone();
        tokio::task::spawn_blocking(move || p.flush(timeout))
            .await
            .map_err(|_| BusError::Closed)?
            .map_err(kafka_error)
    }
}

/// Commits stored offsets before partitions are taken away, so the next
/// owner does not redo what this member finished. Reports the member's lag.
pub struct CommitOnRevoke {
    lag: lag::LagReporter,
}

impl ClientContext for CommitOnRevoke {
    fn stats(&self, stats: rdkafka::Statistics) {
        self.lag.record(&stats);
    }
}

impl ConsumerContext for CommitOnRevoke {
    fn pre_rebalance(&self, consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        if let Rebalance::Revoke(tpl) = rebalance {
            match consumer.commit_consumer_state(CommitMode::Sync) {
                Ok(()) => info!(partitions = tpl.count(), "committed before revoke"),
                // Nothing stored yet is the common harmless case.
                Err(KafkaError::ConsumerCommit(RDKafkaErrorCode::NoOffset)) => {}
                Err(e) => warn!(error = %e, "commit before revoke failed"),
            }
        }
    }
}

/// Reads from Kafka as a group member.
pub struct KafkaConsumer {
    consumer: Arc<StreamConsumer<CommitOnRevoke>>,
    /// Topic names seen, shared by the records (not one allocation each).
    topics: Vec<Arc<str>>,
    /// Whether records carry their headers (parsing them costs even when a
    /// record has none; stages never read their input's headers).
    headers: bool,
}

impl KafkaConsumer {
    fn new(consumer: StreamConsumer<CommitOnRevoke>) -> Self {
        KafkaConsumer {
            consumer: Arc::new(consumer),
            topics: Vec::new(),
            headers: true,
        }
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
            let md = c
                .fetch_metadata(Some(&topic), timeout)
                .map_err(kafka_error)?;
            let mut tpl = TopicPartitionList::new();
            for t in md.topics().iter().filter(|t| t.name() == topic) {
                for p in t.partitions() {
                    tpl.add_partition(&topic, p.id());
                }
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

/// Stores offsets of finished records.
#[derive(Clone)]
pub struct KafkaCommitter {
    consumer: Arc<StreamConsumer<CommitOnRevoke>>,
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn consumer_errors_that_retrying_cannot_fix_are_fatal() {
        use RDKafkaErrorCode as C;
        for (code, cause) in [
            (C::Authentication, "refused the credentials"),
            (C::SaslAuthenticationFailed, "refused the credentials"),
            (C::TopicAuthorizationFailed, "not authorized"),
            (C::GroupAuthorizationFailed, "not authorized"),
            (C::UnknownTopicOrPartition, "does not exist"),
            (C::UnknownPartition, "does not exist"),
        ] {
            let e = kafka_error(KafkaError::MessageConsumption(code));
            assert!(e.fatal(), "{code:?}");
            assert!(e.to_string().contains(cause), "{e}");
        }
        let e = kafka_error(KafkaError::MessageConsumptionFatal(C::Fenced));
        assert!(e.fatal(), "{e}");
        for code in [
            C::BrokerTransportFailure,
            C::AllBrokersDown,
            C::RequestTimedOut,
        ] {
            let e = kafka_error(KafkaError::MessageConsumption(code));
            assert!(!e.fatal() && e.retryable(), "{code:?}: {e:?}");
        }
    }
}
