//! `smsflow replay`: a what-if run. A range of `sms.inbound` is copied to
//! `replay.<id>.sms.inbound` and run through the pipeline's router and apps
//! with every topic renamed under `replay.<id>.` (no backend sink, no
//! campaign stage, no HTTP listener: nothing reaches a provider); then each
//! replayed message's replies are compared with those sent at the time.
//!
//! - [`range`]: the range as given (times, offsets) and resolved per partition.
//! - [`kafka`]: what is asked of the cluster directly (offsets-for-times, ranges).
//! - [`report`]: the comparison and how it prints.
//!
//! The replay's tables (contacts, opt-outs, polls) are seeded from the real
//! ones as they are now: a what-if never writes to the real tables, and it
//! sees today's state, not the state at the time of each message.

pub mod kafka;
pub mod range;
pub mod report;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context};
use futures::future::try_join_all;

use crate::bus::{Bus, TopicSpec};
use crate::config::{KafkaMode, Pipeline, Topics};
use crate::message::InboundMessage;
use crate::schema;
use crate::topology::{StageKind, Topology};
use kafka::{Cluster, Read};
use range::{End, PartitionInfo, Start};
use report::{DeadLetter, Reply, Report};

/// What to replay.
#[derive(Debug, Clone)]
pub struct Options {
    /// Names the replay's topics (`replay.<id>.`); a new one each run.
    pub id: String,
    pub start: Start,
    pub end: End,
    /// How long the router and the apps may take over the range.
    pub timeout: Duration,
}

/// A replay id: letters, digits, `-` and `_` (it goes into topic names).
pub fn check_id(id: &str) -> anyhow::Result<()> {
    let ok = |c: char| c.is_ascii_alphanumeric() || c == '-' || c == '_';
    if id.is_empty() || id.len() > 100 || !id.chars().all(ok) {
        bail!(
            "--id {id:?}: use 1 to 100 letters, digits, '-' or '_' (it names the replay's topics)"
        );
    }
    Ok(())
}

/// The default id: the time now, as `20261207-053000`.
pub fn default_id() -> String {
    chrono::Utc::now().format("%Y%m%d-%H%M%S").to_string()
}

/// `topics` with every name under `prefix`.
pub fn renamed(topics: &Topics, prefix: &str) -> Topics {
    let mut t = topics.clone();
    for name in [
        &mut t.inbound,
        &mut t.outbound,
        &mut t.app_prefix,
        &mut t.send_prefix,
        &mut t.events,
        &mut t.contacts,
        &mut t.optouts,
        &mut t.log,
        &mut t.polls,
        &mut t.dlq,
        &mut t.campaigns,
        &mut t.audience,
        &mut t.stats,
    ] {
        name.insert_str(0, prefix);
    }
    t
}

/// The cluster of `p` (replay reads and writes Kafka only), with a client
/// named for replay `id`.
fn cluster(p: &Pipeline, id: &str) -> anyhow::Result<Cluster> {
    let brokers = match p.kafka.mode {
        KafkaMode::Kafka => p.kafka.brokers.clone().unwrap_or_default(),
        KafkaMode::Mock => bail!("replay needs a Kafka cluster: `kafka: mock` is librdkafka's mock cluster inside the `smsflow run` process, which another process cannot read"),
        KafkaMode::Embedded if p.kafka.data_dir.is_some() => bail!("replay needs a Kafka cluster: the durable embedded bus (kafka.data_dir) is open to one process at a time (`smsflow run` holds it), and it cannot delete topics, so a replay's topics would stay in the pipeline's data for ever; its records carry no timestamps for a time range either"),
        KafkaMode::Embedded => bail!("replay needs a Kafka cluster: the in-memory embedded bus lives inside the `smsflow run` process and ends with it, so there is nothing to replay"),
    };
    Ok(Cluster::new(
        &p.kafka,
        &brokers,
        &format!("{}.replay.{id}.reader", p.kafka.group),
    ))
}

/// What [`delete`] removed.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Deleted {
    pub topics: Vec<String>,
    pub groups: Vec<String>,
}

/// Delete replay `id`'s topics (`replay.<id>.*`) and consumer groups
/// (`<group>.replay.<id>.*`).
pub async fn delete(p: &Pipeline, id: &str) -> anyhow::Result<Deleted> {
    check_id(id)?;
    let cluster = cluster(p, id)?;
    let (topics, groups) = cluster
        .named(
            &format!("replay.{id}."),
            &format!("{}.replay.{id}.", p.kafka.group),
        )
        .await?;
    if topics.is_empty() && groups.is_empty() {
        bail!("--id {id}: no topic replay.{id}.* nor consumer group of that replay on the cluster");
    }
    cluster.delete(&topics, &groups).await?;
    Ok(Deleted { topics, groups })
}

/// Replay `opts`' range of `p`'s inbound topic through `p` and compare.
pub async fn run(p: &Pipeline, opts: &Options) -> anyhow::Result<Report> {
    check_id(&opts.id)?;
    let prefix = format!("replay.{}.", opts.id);
    let t = &p.topics;
    let cluster = cluster(p, &opts.id)?;

    // The range of the real inbound topic.
    let marks = cluster.watermarks(&t.inbound).await?;
    if marks.is_empty() {
        bail!(
            "topic {} does not exist on {}: nothing to replay",
            t.inbound,
            p.kafka.brokers.as_deref().unwrap_or_default()
        );
    }
    let replay_inbound = format!("{prefix}{}", t.inbound);
    if !cluster.partitions(&replay_inbound).await?.is_empty() {
        bail!("--id {}: topic {replay_inbound} exists already (an earlier replay); choose another id or delete the replay's topics", opts.id);
    }
    let at = |ms: Option<i64>| {
        let cluster = &cluster;
        let topic = t.inbound.clone();
        async move {
            match ms {
                Some(ms) => cluster.offsets_for_time(&topic, ms).await,
                None => Ok(HashMap::new()),
            }
        }
    };
    let (from_ms, to_ms) = (
        matches!(opts.start, Start::Time(_)).then_some(time_of_start(&opts.start)),
        match opts.end {
            End::Time(ms) => Some(ms),
            _ => None,
        },
    );
    let (from_at, to_at) = (at(from_ms).await?, at(to_ms).await?);
    let infos: Vec<PartitionInfo> = marks
        .iter()
        .map(|(partition, low, end)| PartitionInfo {
            partition: *partition,
            low: *low,
            end: *end,
            from_time: from_at.get(partition).copied().flatten(),
            to_time: to_at.get(partition).copied().flatten(),
        })
        .collect();
    let spans = range::resolve(&t.inbound, &opts.start, &opts.end, &infos)?;
    let open = !matches!(opts.end, End::Offsets(_));
    let raw: Vec<(i32, i64, i64)> = spans
        .iter()
        .map(|s| (s.partition, s.start, s.end))
        .collect();
    let records: Vec<Read> = cluster
        .read(&t.inbound, &raw, open)
        .await?
        .into_iter()
        .filter(|r| in_time(r, from_ms, to_ms))
        .collect();
    if records.is_empty() {
        bail!(
            "the range holds no message of {}: nothing to replay",
            t.inbound
        );
    }
    let inbound: Vec<InboundMessage> = records
        .iter()
        .filter_map(|r| schema::inbound().decode(&r.payload).ok())
        .collect();

    // The replay's pipeline: every topic and group its own, no sinks.
    let mut rp = p.clone();
    rp.topics = renamed(t, &prefix);
    rp.kafka.group = format!("{}.replay.{}", p.kafka.group, opts.id);
    let topology = Topology::new(rp.clone())?.without_sinks();
    let stages = topology.stages();
    seed(&rp, &topology.topics(), &cluster, t, &records).await?;

    let mut running = topology
        .start(None, false)
        .await
        .context("cannot start the replay")?;
    let Bus::Kafka(bus) = running.bus().clone() else {
        bail!("the replay's bus is not Kafka");
    };
    // Step by step along the flow (a step's input is complete once the
    // step before has finished), the apps side by side.
    let step = |is: fn(&StageKind) -> bool| {
        try_join_all(stages.iter().filter(|s| is(&s.kind)).map(|s| {
            let group = format!("{}.{}", rp.kafka.group, s.name);
            let (bus, cluster) = (&bus, &cluster);
            async move { wait_consumed(bus, cluster, &group, &s.reads[0]).await }
        }))
    };
    let waited = async {
        step(|k| matches!(k, StageKind::RouterIn)).await?;
        step(|k| matches!(k, StageKind::App { .. })).await?;
        step(|k| matches!(k, StageKind::RouterOut)).await?;
        anyhow::Ok(())
    };
    // Until every stage has finished the range, a stage stops on an
    // error, or the time is up.
    let waited = tokio::select! {
        w = tokio::time::timeout(opts.timeout, waited) => w,
        stage = running.failed() => Ok(Err(anyhow::anyhow!(
            "the replay's stage {stage} stopped on an error (the log says why); its topics are {prefix}*"
        ))),
    };
    let stopped = running.shutdown().await;
    match waited {
        Err(_) => bail!(
            "the replay did not finish within {:?} (--timeout); its topics are {prefix}*",
            opts.timeout
        ),
        Ok(r) => r?,
    }
    stopped.context("the replay's stages did not stop cleanly")?;

    // What was sent then, what the replay would send.
    let since = records
        .iter()
        .filter_map(|r| r.timestamp)
        .min()
        .unwrap_or(0)
        - 60_000;
    // Read at once, as each read waits for its topic to be quiet.
    let (before, after, dlq) = tokio::try_join!(
        try_join_all(p.backends.iter().map(|b| replies(
            &cluster,
            t.send(b.name()),
            b.name(),
            Some(since)
        ))),
        try_join_all(p.backends.iter().map(|b| replies(
            &cluster,
            rp.topics.send(b.name()),
            b.name(),
            None
        ))),
        cluster.read_all(&rp.topics.dlq),
    )?;
    let (before, after) = (before.concat(), after.concat());
    let dlq = dlq.iter().map(|r| dead_letter(r, &rp.topics)).collect();
    let head = report::Head {
        id: opts.id.clone(),
        prefix,
        topic: t.inbound.clone(),
        range: spans,
        messages: records.len(),
        not_run: stages_not_run(p, &stages),
    };
    Ok(report::compare(head, &inbound, before, after, dlq))
}

fn time_of_start(start: &Start) -> i64 {
    match start {
        Start::Time(ms) => *ms,
        Start::Offsets(_) => 0,
    }
}

/// Whether `r` is within the time bounds (a record without a timestamp is).
fn in_time(r: &Read, from: Option<i64>, to: Option<i64>) -> bool {
    let Some(ts) = r.timestamp else { return true };
    from.is_none_or(|f| ts >= f) && to.is_none_or(|t| ts < t)
}

/// The external apps no process of the replay runs: their messages get no
/// reply in the replay.
fn stages_not_run(p: &Pipeline, stages: &[crate::topology::StageInfo]) -> Vec<String> {
    let runs = |name: &str| {
        stages
            .iter()
            .any(|s| matches!(&s.kind, StageKind::App { app, .. } if app == name))
    };
    p.apps
        .iter()
        .map(|a| a.name().to_owned())
        .filter(|name| !p.chain.includes(name) && !runs(name))
        .collect()
}

/// Create the replay's topics, copy today's tables into its own, and the
/// range into its inbound topic.
async fn seed(
    rp: &Pipeline,
    topics: &[TopicSpec],
    cluster: &Cluster,
    real: &Topics,
    records: &[Read],
) -> anyhow::Result<()> {
    let bus = Bus::connect(&rp.kafka, topics)
        .await
        .context("cannot create the replay's topics")?;
    let producer = bus.producer()?;
    let mut acks = Vec::new();
    let r = &rp.topics;
    // The tables are read at once: each read waits for its topic to be
    // quiet (Cluster::read).
    let tables = [
        (&real.contacts, &r.contacts),
        (&real.optouts, &r.optouts),
        (&real.polls, &r.polls),
    ];
    let read = try_join_all(tables.iter().map(|(from, _)| cluster.read_all(from))).await?;
    for ((_, to), recs) in tables.iter().zip(read) {
        let to: Arc<str> = Arc::from(to.as_str());
        for rec in recs {
            acks.push(producer.send(rec.to(&to)).await?);
        }
    }
    let inbound: Arc<str> = Arc::from(r.inbound.as_str());
    for rec in records {
        acks.push(producer.send(rec.to(&inbound)).await?);
    }
    for a in acks {
        a.wait()
            .await
            .context("cannot write to the replay's topics")?;
    }
    producer.flush(Duration::from_secs(30)).await?;
    Ok(())
}

/// Wait until `group` has finished every record `topic` holds.
async fn wait_consumed(
    bus: &crate::bus::kafka::KafkaBus,
    cluster: &Cluster,
    group: &str,
    topic: &str,
) -> anyhow::Result<()> {
    let mut ends: HashMap<i32, i64> = HashMap::new();
    for r in cluster.read_all(topic).await? {
        let e = ends.entry(r.partition).or_default();
        *e = (*e).max(r.offset + 1);
    }
    let client = bus.group_client(group)?;
    let partitions: Vec<i32> = ends.keys().copied().collect();
    loop {
        let done = client.committed(topic, &partitions).await?;
        if done
            .iter()
            .all(|(p, o)| o.zip(ends.get(p)).is_some_and(|(o, end)| o >= *end))
        {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// The replies on a send topic (from `since`, a time, or all of it).
async fn replies(
    cluster: &Cluster,
    topic: String,
    backend: &str,
    since: Option<i64>,
) -> anyhow::Result<Vec<Reply>> {
    let marks = cluster.watermarks(&topic).await?;
    let starts = match since {
        Some(ms) if !marks.is_empty() => cluster.offsets_for_time(&topic, ms).await?,
        _ => HashMap::new(),
    };
    let spans: Vec<(i32, i64, i64)> = marks
        .iter()
        .map(|(p, low, end)| {
            let start = match since {
                Some(_) => starts.get(p).copied().flatten().unwrap_or(*end),
                None => *low,
            };
            (*p, start.max(*low), *end)
        })
        .collect();
    Ok(cluster
        .read(&topic, &spans, true)
        .await?
        .into_iter()
        .filter_map(|r| schema::outbound().decode(&r.payload).ok())
        .filter_map(|m| Reply::of(backend, m))
        .collect())
}

/// A dead letter of the replay, with the replayed message it came from.
fn dead_letter(r: &Read, t: &Topics) -> DeadLetter {
    let source_topic = r.header("smsflow.source.topic").unwrap_or_default();
    let inbound_id = if source_topic == t.inbound {
        schema::inbound().decode(&r.payload).ok().map(|m| m.id)
    } else if source_topic.starts_with(&t.app_prefix) {
        schema::routed()
            .decode(&r.payload)
            .ok()
            .map(|m| m.message.id)
    } else {
        schema::outbound()
            .decode(&r.payload)
            .ok()
            .and_then(|m| m.in_response_to)
    };
    DeadLetter {
        inbound_id,
        stage: r.header("smsflow.stage").unwrap_or_default(),
        kind: r.header("smsflow.error.kind").unwrap_or_default(),
        message: r.header("smsflow.error.message").unwrap_or_default(),
        source_topic,
    }
}
