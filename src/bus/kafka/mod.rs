//! The Kafka bus, through rdkafka (librdkafka): a real cluster, or
//! librdkafka's mock cluster started in-process for tests.
//!
//! At-least-once: the consumer's offsets are stored only when the stage says a
//! record is done (everything produced from it acknowledged), auto-committed
//! every second, committed synchronously when partitions are revoked and when
//! the consumer closes.
//!
//! Settings: the pipeline's `kafka.config` goes to every client,
//! `kafka.producer` to producers and `kafka.consumer` to consumers, each over
//! smsflow's defaults; the admin client gets `config` alone. A stage's
//! consumer joins its group as a static member (`group.instance.id`) when
//! the process has an instance id, so that a restarted process takes its
//! partitions back at once instead of after the session timeout.

mod consumer;
mod error;
pub mod groups;
mod lag;
pub(super) mod mock;
mod producer;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::RDKafkaErrorCode;
use rdkafka::{Offset, TopicPartitionList};
use tracing::info;

use super::record::{BusError, TopicSpec};
use crate::config::{self, KafkaMode};
pub use consumer::{read_to_end, GroupContext, KafkaCommitter, KafkaConsumer};
use error::kafka_error;
use mock::MockCluster;
pub use producer::{AckContext, KafkaProducer, TopicFraming};

/// A connection to a cluster (its settings; clients are made per stage).
pub struct KafkaBus {
    /// What every client gets (the admin client only this).
    shared: ClientConfig,
    producer: ClientConfig,
    consumer: ClientConfig,
    /// This process's `group.instance.id`, for the stages' group members.
    instance_id: Option<String>,
    /// Present in mock mode: the thread that owns librdkafka's mock cluster.
    mock: Option<MockCluster>,
    group_prefix: String,
    /// Producers' framing of Avro records (`None`: the codecs' own).
    framing: Option<Arc<TopicFraming>>,
}

/// `base` with `defaults` where `overrides` says nothing, then `overrides`.
fn layered(
    base: &ClientConfig,
    defaults: &[(&str, &str)],
    overrides: &BTreeMap<String, String>,
) -> ClientConfig {
    let mut c = base.clone();
    for (k, v) in defaults {
        c.set(*k, *v);
    }
    for (k, v) in overrides {
        c.set(k, v);
    }
    c
}

impl KafkaBus {
    pub async fn connect(cfg: &config::Kafka, topics: &[TopicSpec]) -> Result<KafkaBus, BusError> {
        let mut shared = ClientConfig::new();
        let mut mock = None;
        match cfg.mode {
            KafkaMode::Mock => {
                let cluster = MockCluster::start(topics)?;
                shared.set("bootstrap.servers", &cluster.bootstrap);
                mock = Some(cluster);
            }
            _ => {
                shared.set(
                    "bootstrap.servers",
                    cfg.brokers.as_deref().unwrap_or_default(),
                );
            }
        }
        for (k, v) in &cfg.config {
            shared.set(k, v);
        }
        let producer = layered(
            &shared,
            &[
                // Kafka's Java partitioner, so keys land where the embedded
                // bus puts them and where Java producers would.
                ("partitioner", "murmur2_random"),
                ("linger.ms", "5"),
            ],
            &cfg.producer,
        );
        let consumer = layered(
            &shared,
            &[
                // A hop waits at most this long for data; librdkafka's 500 ms
                // default would add half a second per stage to every reply.
                ("fetch.wait.max.ms", "20"),
                // A member that died without coming back (a pod deleted, a
                // node lost) holds its partitions this long: 6 s, the least
                // a stock broker allows (group.min.session.timeout.ms),
                // rather than librdkafka's 45 s. (The mock cluster also
                // makes each later join wait session.timeout - 1 s.)
                ("session.timeout.ms", "6000"),
                ("heartbeat.interval.ms", "1500"),
            ],
            &cfg.consumer,
        );
        let bus = KafkaBus {
            shared,
            producer,
            consumer,
            instance_id: cfg.instance_id.clone(),
            mock,
            group_prefix: format!("{}.", cfg.group),
            framing: TopicFraming::of(cfg),
        };
        if bus.mock.is_none() && !topics.is_empty() {
            bus.create_topics(topics).await?;
        }
        Ok(bus)
    }

    /// The bootstrap servers clients connect to (in mock mode, the mock
    /// cluster's loopback listener, which other processes can reach too).
    pub fn bootstrap_servers(&self) -> String {
        self.shared
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
        self.shared.clone()
    }

    pub fn producer(&self) -> Result<KafkaProducer, BusError> {
        KafkaProducer::new(&self.producer, self.framing.clone())
    }

    /// Join `group` on `topics` as a stage's member: static (with this
    /// process's instance id) when it has one.
    pub fn consumer(&self, group: &str, topics: &[&str]) -> Result<KafkaConsumer, BusError> {
        self.member(group, topics, true, self.instance_id.as_deref())
    }

    /// A group member that starts, when the group has no committed offset,
    /// at the oldest record (`earliest`) or at the next one written; never
    /// static (tools and readers come and go).
    pub fn consumer_from(
        &self,
        group: &str,
        topics: &[&str],
        earliest: bool,
    ) -> Result<KafkaConsumer, BusError> {
        self.member(group, topics, earliest, None)
    }

    fn member(
        &self,
        group: &str,
        topics: &[&str],
        earliest: bool,
        instance_id: Option<&str>,
    ) -> Result<KafkaConsumer, BusError> {
        let mut c = self.consumer.clone();
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
            .set("partition.assignment.strategy", "cooperative-sticky");
        // The lag metric's statistics, unless the pipeline sets their interval.
        if c.get("statistics.interval.ms").is_none() {
            c.set("statistics.interval.ms", lag::interval(topics));
        }
        if let Some(id) = instance_id {
            c.set("group.instance.id", id);
        }
        let stage = group.strip_prefix(&self.group_prefix).unwrap_or(group);
        KafkaConsumer::new(&c, group, topics, lag::LagReporter::new(stage))
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
        reader.assign(&tpl)?;
        Ok((reader, progress))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rdkafka::error::KafkaError;

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
