//! The dead-letter topic, for operators: `smsflow dlq list` shows what stages
//! could not process and why; `smsflow dlq replay` writes those records back
//! to the topics they came from, once the cause is fixed.

use std::collections::HashMap;
use std::sync::Arc;

use std::time::Duration;

use anyhow::bail;
use bytes::Bytes;
use serde_json::json;

use crate::bus::kafka::{KafkaBus, KafkaConsumer};
use crate::bus::{Produce, Record};
use crate::config::{KafkaMode, Pipeline};

/// One dead letter, as `dlq list` prints it.
#[derive(Debug, Clone, serde::Serialize)]
pub struct DeadLetter {
    pub partition: i32,
    pub offset: i64,
    pub key: String,
    pub stage: String,
    pub kind: String,
    pub message: String,
    pub source_topic: String,
    pub source_partition: Option<i32>,
    pub source_offset: Option<i64>,
    pub bytes: usize,
}

impl DeadLetter {
    fn from_record(r: &Record) -> DeadLetter {
        let h = |name: &str| {
            r.header(name)
                .map(|v| String::from_utf8_lossy(v).into_owned())
                .unwrap_or_default()
        };
        DeadLetter {
            partition: r.partition,
            offset: r.offset,
            key: r.key_str().to_owned(),
            stage: h("smsflow.stage"),
            kind: h("smsflow.error.kind"),
            message: h("smsflow.error.message"),
            source_topic: h("smsflow.source.topic"),
            source_partition: h("smsflow.source.partition").parse().ok(),
            source_offset: h("smsflow.source.offset").parse().ok(),
            bytes: r.payload.len(),
        }
    }
}

/// Which dead letters a command applies to.
#[derive(Debug, Clone, Default)]
pub struct Filter {
    pub stage: Option<String>,
    pub kind: Option<String>,
}

impl Filter {
    fn matches(&self, d: &DeadLetter) -> bool {
        self.stage.as_ref().is_none_or(|s| *s == d.stage)
            && self.kind.as_ref().is_none_or(|k| *k == d.kind)
    }
}

async fn kafka(p: &Pipeline) -> anyhow::Result<KafkaBus> {
    if p.kafka.mode != KafkaMode::Kafka {
        bail!("the dead-letter commands read a Kafka cluster; with `kafka: {:?}` the bus lives inside `smsflow run`", p.kafka.mode);
    }
    Ok(KafkaBus::connect(&p.kafka, &[]).await?)
}

/// Read `consumer` from its group's committed offsets until every partition
/// of `topic` is read up to the end it had when we started, then until the
/// topic is quiet for a second, calling `each` per record. (The quiet second is for brokers whose reported end is
/// short: tansu 0.6.0 reports the end of a batch of several records as its
/// first offset + 1.)
async fn read_to_end(
    consumer: &mut KafkaConsumer,
    topic: &str,
    mut each: impl AsyncFnMut(Record) -> anyhow::Result<()>,
) -> anyhow::Result<()> {
    // Partitions with something this group has not read yet.
    let mut remaining: HashMap<i32, i64> = consumer
        .progress(topic)
        .await?
        .into_iter()
        .filter(|(_, done, end)| done < end)
        .map(|(p, _, end)| (p, end))
        .collect();
    let mut received = false;
    loop {
        // Joining the group takes a few seconds; after that, quiet means done.
        let wait = match (remaining.is_empty(), received) {
            (true, true) => Duration::from_secs(1),
            (true, false) => Duration::from_secs(5),
            (false, _) => Duration::from_secs(30),
        };
        let r = match tokio::time::timeout(wait, consumer.recv()).await {
            Ok(r) => r?,
            Err(_) if remaining.is_empty() => return Ok(()),
            Err(_) => bail!("the dead-letter topic stopped answering before its end"),
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

/// Every dead letter matching `filter`, oldest first per partition.
pub async fn list(p: &Pipeline, filter: &Filter) -> anyhow::Result<Vec<DeadLetter>> {
    let bus = kafka(p).await?;
    let group = format!("{}.dlq-list.{}", p.kafka.group, crate::message::new_id());
    let mut consumer = bus.consumer_from(&group, &[&p.topics.dlq], true)?;
    let mut out = Vec::new();
    read_to_end(&mut consumer, &p.topics.dlq, async |r| {
        let d = DeadLetter::from_record(&r);
        if filter.matches(&d) {
            out.push(d);
        }
        Ok(())
    })
    .await?;
    Ok(out)
}

/// Write the dead letters matching `filter` back to their source topics
/// (original key and bytes, plus a `smsflow.replayed-from` header).
///
/// Progress is kept in the consumer group `<group>.dlq-replay`: a record is
/// looked at by one replay only, whether it matched the filter or not.
/// Returns how many were replayed.
pub async fn replay(p: &Pipeline, filter: &Filter) -> anyhow::Result<usize> {
    let bus = kafka(p).await?;
    let group = format!("{}.dlq-replay", p.kafka.group);
    let mut consumer = bus.consumer_from(&group, &[&p.topics.dlq], true)?;
    let committer = consumer.committer();
    let producer = bus.producer()?;
    let mut replayed = 0;
    read_to_end(&mut consumer, &p.topics.dlq, async |r| {
        let d = DeadLetter::from_record(&r);
        if filter.matches(&d) {
            if d.source_topic.is_empty() {
                bail!(
                    "dead letter {}:{} has no smsflow.source.topic header",
                    r.partition,
                    r.offset
                );
            }
            let mut out = Produce::new(
                Arc::from(d.source_topic.as_str()),
                r.key.clone().unwrap_or_default(),
                r.payload.clone(),
            );
            out.headers.push((
                "smsflow.replayed-from".into(),
                Bytes::from(format!("{}:{}:{}", r.topic, r.partition, r.offset)),
            ));
            producer.send(out).await?.wait().await?;
            replayed += 1;
        }
        committer.done(&r.topic, r.partition, r.offset)?;
        Ok(())
    })
    .await?;
    consumer.close().await?;
    Ok(replayed)
}

/// A dead letter as one JSON line.
pub fn to_json(d: &DeadLetter) -> String {
    json!(d).to_string()
}
