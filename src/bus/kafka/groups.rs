//! What a consumer group has done, read from the cluster without joining
//! the group (as `kafka-consumer-groups --describe` does, for `smsflow top`):
//! each partition's offsets, the group's committed offsets, its members.

use std::sync::Arc;
use std::time::Duration;

use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::RDKafkaErrorCode;
use rdkafka::{Offset, TopicPartitionList};

use super::error::kafka_error;
use super::KafkaBus;
use crate::bus::record::BusError;

/// How long one request to the cluster may take.
const TIMEOUT: Duration = Duration::from_secs(10);

/// Reads one group's progress. It never subscribes, so it never joins the
/// group nor makes it rebalance.
pub struct GroupClient {
    consumer: Arc<BaseConsumer>,
    group: String,
}

/// A partition's offsets on the broker.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Watermarks {
    pub partition: i32,
    /// The oldest offset it holds.
    pub low: i64,
    /// The next offset to be written.
    pub end: i64,
}

/// A group as its coordinator describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupState {
    /// `Stable`, `PreparingRebalance`, `CompletingRebalance`, `Empty` or
    /// `Dead` (no such group).
    pub state: String,
    pub members: usize,
}

impl KafkaBus {
    /// A client reading `group`'s progress with the pipeline's settings.
    pub fn group_client(&self, group: &str) -> Result<GroupClient, BusError> {
        let mut c = self.consumer.clone();
        c.set("group.id", group).set("enable.auto.commit", "false");
        let consumer: BaseConsumer = c.create().map_err(kafka_error)?;
        Ok(GroupClient {
            consumer: Arc::new(consumer),
            group: group.to_owned(),
        })
    }
}

impl GroupClient {
    /// The group it reads.
    pub fn group(&self) -> &str {
        &self.group
    }

    async fn blocking<T: Send + 'static>(
        &self,
        f: impl FnOnce(&BaseConsumer, &str) -> Result<T, BusError> + Send + 'static,
    ) -> Result<T, BusError> {
        let (c, group) = (self.consumer.clone(), self.group.clone());
        tokio::task::spawn_blocking(move || f(&c, &group))
            .await
            .map_err(|_| BusError::Closed)?
    }

    /// Every partition of `topic` with its offsets, by partition number;
    /// none when the topic does not exist.
    pub async fn watermarks(&self, topic: &str) -> Result<Vec<Watermarks>, BusError> {
        let topic = topic.to_owned();
        self.blocking(move |c, _| {
            let md = c
                .fetch_metadata(Some(&topic), TIMEOUT)
                .map_err(kafka_error)?;
            let mut partitions: Vec<i32> = md
                .topics()
                .iter()
                .filter(|t| t.name() == topic && t.error().is_none())
                .flat_map(|t| t.partitions().iter().map(|p| p.id()))
                .collect();
            partitions.sort_unstable();
            partitions
                .into_iter()
                .map(|partition| {
                    let (low, end) = c
                        .fetch_watermarks(&topic, partition, TIMEOUT)
                        .map_err(kafka_error)?;
                    Ok(Watermarks {
                        partition,
                        low,
                        end,
                    })
                })
                .collect()
        })
        .await
    }

    /// The group's committed offset (the next record it will read) for each
    /// of `partitions` of `topic`; `None` where it has committed nothing.
    pub async fn committed(
        &self,
        topic: &str,
        partitions: &[i32],
    ) -> Result<Vec<(i32, Option<i64>)>, BusError> {
        if partitions.is_empty() {
            return Ok(Vec::new());
        }
        let mut tpl = TopicPartitionList::new();
        for p in partitions {
            tpl.add_partition(topic, *p);
        }
        self.blocking(move |c, _| {
            let committed = c.committed_offsets(tpl, TIMEOUT).map_err(kafka_error)?;
            Ok(committed
                .elements()
                .iter()
                .map(|e| match e.offset() {
                    Offset::Offset(o) => (e.partition(), Some(o)),
                    _ => (e.partition(), None),
                })
                .collect())
        })
        .await
    }

    /// The group's state and number of members.
    pub async fn state(&self) -> Result<GroupState, BusError> {
        self.blocking(|c, group| {
            let list = match c.fetch_group_list(Some(group), TIMEOUT) {
                Ok(list) => list,
                // A coordinator that does not know the group yet.
                Err(e) if e.rdkafka_error_code() == Some(RDKafkaErrorCode::GroupIdNotFound) => {
                    return Ok(GroupState {
                        state: "Dead".into(),
                        members: 0,
                    })
                }
                Err(e) => return Err(kafka_error(e)),
            };
            Ok(match list.groups().iter().find(|g| g.name() == group) {
                Some(g) => GroupState {
                    state: g.state().to_owned(),
                    members: g.members().len(),
                },
                None => GroupState {
                    state: "Dead".into(),
                    members: 0,
                },
            })
        })
        .await
    }
}
