//! The dead-letter topic, for operators: `smsflow dlq list` shows what stages
//! could not process and why; `smsflow dlq replay` writes those records back
//! to the topics they came from, once the cause is fixed.

use std::sync::Arc;

use anyhow::bail;
use bytes::Bytes;
use serde_json::json;

use crate::bus::kafka::{read_to_end, KafkaBus};
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

/// Every dead letter matching `filter`, oldest first per partition.
pub async fn list(p: &Pipeline, filter: &Filter) -> anyhow::Result<Vec<DeadLetter>> {
    let bus = kafka(p).await?;
    let group = format!("{}.dlq-list.{}", p.kafka.group, crate::message::new_id());
    let (mut consumer, progress) = bus.reader(&group, &p.topics.dlq).await?;
    let mut out = Vec::new();
    read_to_end(&mut consumer, &p.topics.dlq, &progress, async |r| {
        let d = DeadLetter::from_record(&r);
        if filter.matches(&d) {
            out.push(d);
        }
        Ok::<(), anyhow::Error>(())
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
    let (mut consumer, progress) = bus.reader(&group, &p.topics.dlq).await?;
    let committer = consumer.committer();
    let producer = bus.producer()?;
    let mut replayed = 0;
    read_to_end(&mut consumer, &p.topics.dlq, &progress, async |r| {
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
            producer.send_and_wait(out).await?;
            replayed += 1;
        }
        committer.done(&[(&r.topic, r.partition, r.offset)])?;
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
