//! What a replay asks of the cluster directly (rdkafka, outside any
//! consumer group): a topic's partitions and offsets, the offsets at a time
//! (Kafka's offsets-for-times), and the records of an offset range.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use bytes::Bytes;
use rdkafka::admin::{AdminClient, AdminOptions};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::{Headers, Message};
use rdkafka::{Offset, TopicPartitionList};

use crate::bus::Produce;
use crate::config;

/// How long one request to the cluster may take.
const TIMEOUT: Duration = Duration::from_secs(10);

/// A record read, with its position and timestamp.
#[derive(Debug, Clone)]
pub struct Read {
    pub partition: i32,
    pub offset: i64,
    /// Milliseconds since the Unix epoch, as the cluster keeps it.
    pub timestamp: Option<i64>,
    pub key: Bytes,
    pub payload: Bytes,
    pub headers: Vec<(String, Bytes)>,
}

impl Read {
    /// The same record, to write to `topic`.
    pub fn to(&self, topic: &std::sync::Arc<str>) -> Produce {
        let mut p = Produce::new(topic.clone(), self.key.clone(), self.payload.clone());
        p.headers = self.headers.clone();
        p
    }

    pub fn header(&self, name: &str) -> Option<String> {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| String::from_utf8_lossy(v).into_owned())
    }
}

/// A client of the cluster the pipeline names, outside any group.
pub struct Cluster {
    config: ClientConfig,
}

impl Cluster {
    /// A client with the pipeline's settings (`kafka.config`, then
    /// `kafka.consumer`), connecting to `bootstrap`.
    pub fn new(cfg: &config::Kafka, bootstrap: &str, group: &str) -> Cluster {
        let mut c = ClientConfig::new();
        c.set("bootstrap.servers", bootstrap);
        for (k, v) in cfg.config.iter().chain(&cfg.consumer) {
            c.set(k, v);
        }
        // Never commits: the group id only names the client.
        c.set("group.id", group)
            .set("enable.auto.commit", "false")
            .set("enable.auto.offset.store", "false");
        Cluster { config: c }
    }

    async fn blocking<T: Send + 'static>(
        &self,
        f: impl FnOnce(&BaseConsumer) -> anyhow::Result<T> + Send + 'static,
    ) -> anyhow::Result<T> {
        let config = self.config.clone();
        tokio::task::spawn_blocking(move || {
            let c: BaseConsumer = config
                .create()
                .context("cannot make a Kafka client with the pipeline's settings")?;
            f(&c)
        })
        .await
        .context("the Kafka client's task stopped")?
    }

    /// The topic's partition numbers, sorted; none when it does not exist.
    pub async fn partitions(&self, topic: &str) -> anyhow::Result<Vec<i32>> {
        let topic = topic.to_owned();
        self.blocking(move |c| partitions(c, &topic)).await
    }

    /// Per partition: (partition, oldest offset held, next offset).
    pub async fn watermarks(&self, topic: &str) -> anyhow::Result<Vec<(i32, i64, i64)>> {
        let topic = topic.to_owned();
        self.blocking(move |c| {
            partitions(c, &topic)?
                .into_iter()
                .map(|p| {
                    let (low, end) = c
                        .fetch_watermarks(&topic, p, TIMEOUT)
                        .with_context(|| format!("cannot read the offsets of {topic} {p}"))?;
                    Ok((p, low, end))
                })
                .collect()
        })
        .await
    }

    /// Per partition: the first offset whose timestamp is at or after
    /// `at_ms` (Kafka's offsets-for-times), `None` when no record is.
    pub async fn offsets_for_time(
        &self,
        topic: &str,
        at_ms: i64,
    ) -> anyhow::Result<HashMap<i32, Option<i64>>> {
        let topic = topic.to_owned();
        self.blocking(move |c| {
            let mut tpl = TopicPartitionList::new();
            for p in partitions(c, &topic)? {
                tpl.add_partition_offset(&topic, p, Offset::Offset(at_ms))?;
            }
            let found = c.offsets_for_times(tpl, TIMEOUT).with_context(|| {
                format!("cannot ask the cluster for {topic}'s offsets at a time")
            })?;
            Ok(found
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

    /// Every record of `spans` ((partition, start, end excluded)), in
    /// offset order per partition. A span whose end is `open` (what the
    /// topic held when asked) is read on until the topic is quiet for a
    /// second past it: some brokers report a short end (tansu 0.6.0: a
    /// batch's first offset + 1).
    pub async fn read(
        &self,
        topic: &str,
        spans: &[(i32, i64, i64)],
        open: bool,
    ) -> anyhow::Result<Vec<Read>> {
        let topic = topic.to_owned();
        let spans = spans.to_vec();
        self.blocking(move |c| {
            let mut tpl = TopicPartitionList::new();
            let mut remaining: HashMap<i32, i64> = HashMap::new();
            for (p, start, end) in &spans {
                if end > start || open {
                    tpl.add_partition_offset(&topic, *p, Offset::Offset(*start))?;
                }
                if end > start {
                    remaining.insert(*p, *end);
                }
            }
            let ends: HashMap<i32, i64> = spans.iter().map(|(p, _, e)| (*p, *e)).collect();
            if tpl.count() == 0 {
                return Ok(Vec::new());
            }
            c.assign(&tpl)
                .with_context(|| format!("cannot read {topic}"))?;
            let mut out = Vec::new();
            let mut last_seen = Instant::now();
            let quiet = Duration::from_secs(1);
            let stalled = Duration::from_secs(30);
            loop {
                if remaining.is_empty() && (!open || last_seen.elapsed() >= quiet) {
                    return Ok(out);
                }
                if !remaining.is_empty() && last_seen.elapsed() >= stalled {
                    bail!("{topic} stopped answering before the end of the range");
                }
                let Some(m) = c.poll(Duration::from_millis(200)) else {
                    continue;
                };
                let m = m.with_context(|| format!("cannot read {topic}"))?;
                last_seen = Instant::now();
                let (p, o) = (m.partition(), m.offset());
                if !open && ends.get(&p).is_some_and(|end| o >= *end) {
                    remaining.remove(&p);
                    continue;
                }
                if let Some(end) = remaining.get(&p) {
                    if o + 1 >= *end {
                        remaining.remove(&p);
                    }
                }
                out.push(Read {
                    partition: p,
                    offset: o,
                    timestamp: m.timestamp().to_millis(),
                    key: Bytes::copy_from_slice(m.key().unwrap_or_default()),
                    payload: Bytes::copy_from_slice(m.payload().unwrap_or_default()),
                    headers: m
                        .headers()
                        .map(|h| {
                            h.iter()
                                .map(|h| {
                                    (
                                        h.key.to_owned(),
                                        Bytes::copy_from_slice(h.value.unwrap_or_default()),
                                    )
                                })
                                .collect()
                        })
                        .unwrap_or_default(),
                });
            }
        })
        .await
    }

    /// The topics whose names start with `prefix`, and the consumer groups.
    pub async fn named(
        &self,
        prefix: &str,
        group_prefix: &str,
    ) -> anyhow::Result<(Vec<String>, Vec<String>)> {
        let (prefix, group_prefix) = (prefix.to_owned(), group_prefix.to_owned());
        self.blocking(move |c| {
            let md = c
                .fetch_metadata(None, TIMEOUT)
                .context("cannot list the cluster's topics")?;
            let topics = md
                .topics()
                .iter()
                .map(|t| t.name().to_owned())
                .filter(|t| t.starts_with(&prefix))
                .collect();
            let groups = c
                .fetch_group_list(None, TIMEOUT)
                .context("cannot list the cluster's consumer groups")?
                .groups()
                .iter()
                .map(|g| g.name().to_owned())
                .filter(|g| g.starts_with(&group_prefix))
                .collect();
            Ok((topics, groups))
        })
        .await
    }

    /// Delete `topics` and the consumer groups `groups`.
    pub async fn delete(&self, topics: &[String], groups: &[String]) -> anyhow::Result<()> {
        let admin: AdminClient<DefaultClientContext> = self
            .config
            .create()
            .context("cannot make a Kafka admin client with the pipeline's settings")?;
        let opts = AdminOptions::new().operation_timeout(Some(TIMEOUT));
        let names: Vec<&str> = topics.iter().map(String::as_str).collect();
        if !names.is_empty() {
            for r in admin.delete_topics(&names, &opts).await? {
                if let Err((name, code)) = r {
                    bail!("cannot delete topic {name}: {code}");
                }
            }
        }
        let names: Vec<&str> = groups.iter().map(String::as_str).collect();
        if !names.is_empty() {
            for r in admin.delete_groups(&names, &opts).await? {
                if let Err((name, code)) = r {
                    bail!("cannot delete consumer group {name}: {code}");
                }
            }
        }
        Ok(())
    }

    /// Every record `topic` holds now (none when it does not exist).
    pub async fn read_all(&self, topic: &str) -> anyhow::Result<Vec<Read>> {
        let spans: Vec<(i32, i64, i64)> = self.watermarks(topic).await?;
        self.read(topic, &spans, true).await
    }
}

fn partitions(c: &BaseConsumer, topic: &str) -> anyhow::Result<Vec<i32>> {
    let md = c
        .fetch_metadata(Some(topic), TIMEOUT)
        .with_context(|| format!("cannot ask the cluster about topic {topic}"))?;
    let mut ps: Vec<i32> = md
        .topics()
        .iter()
        .filter(|t| t.name() == topic && t.error().is_none())
        .flat_map(|t| t.partitions().iter().map(|p| p.id()))
        .collect();
    ps.sort_unstable();
    Ok(ps)
}
