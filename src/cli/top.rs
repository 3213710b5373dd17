//! `smsflow top PIPELINE`: every stage's consumer group on the cluster, like
//! `kafka-consumer-groups --describe`, live in the terminal. Per partition of
//! the topics a stage reads: the group's committed offset, the end offset,
//! the lag between them, and the rates between two refreshes (records done
//! per second, from the committed offset; records written, from the end).
//! Per stage: the total lag and rates, and the group's members and state.
//!
//! It reads the cluster only, never joining a group: the embedded buses
//! live inside `smsflow run`, where `/metrics` has `smsflow_consumer_lag`.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::time::{Duration, Instant, SystemTime};

use anyhow::{bail, Context};

use crate::bus::kafka::groups::{GroupClient, GroupState, Watermarks};
use crate::bus::kafka::KafkaBus;
use crate::config::KafkaMode;
use crate::topology::Topology;

/// One partition of a topic a stage reads.
#[derive(Debug, Clone, PartialEq)]
pub struct PartitionRow {
    pub topic: String,
    pub partition: i32,
    /// The group's committed offset: the next record it will handle.
    pub committed: Option<i64>,
    /// The next offset to be written.
    pub end: i64,
    /// Records the group has still to finish: end − committed (with nothing
    /// committed, every record the partition holds: stages start at the oldest).
    pub lag: i64,
    /// Records done per second since the last refresh.
    pub done_rate: Option<f64>,
    /// Records written per second since the last refresh.
    pub written_rate: Option<f64>,
}

/// One stage: its group and every partition it reads.
#[derive(Debug, Clone, PartialEq)]
pub struct StageRow {
    pub name: String,
    pub group: String,
    /// The group's state and members, or why they could not be read.
    pub state: Result<GroupState, String>,
    pub partitions: Vec<PartitionRow>,
}

impl StageRow {
    pub fn lag(&self) -> i64 {
        self.partitions.iter().map(|p| p.lag).sum()
    }

    fn total(&self, rate: impl Fn(&PartitionRow) -> Option<f64>) -> Option<f64> {
        self.partitions.iter().map(rate).sum()
    }
}

/// Every stage at one moment.
#[derive(Debug, Clone)]
pub struct Snapshot {
    pub stages: Vec<StageRow>,
    taken: Instant,
    at: SystemTime,
}

struct Watched {
    name: String,
    reads: Vec<String>,
    client: GroupClient,
}

/// The stages of one pipeline, watched on its cluster.
pub struct Top {
    stages: Vec<Watched>,
    previous: Option<Snapshot>,
    /// For the heading: the pipeline and its brokers.
    title: String,
}

impl Top {
    /// Watch `topology`'s stages on its Kafka cluster.
    pub async fn connect(topology: &Topology, name: &str) -> anyhow::Result<Top> {
        let p = topology.pipeline();
        match p.kafka.mode {
            KafkaMode::Kafka => {}
            KafkaMode::Embedded => bail!(
                "smsflow top reads the stages' consumer groups from a Kafka cluster; with `kafka: embedded` the bus lives inside the `smsflow run` process, where nothing else can read it"
            ),
            KafkaMode::Mock => bail!(
                "smsflow top reads the stages' consumer groups from a Kafka cluster; with `kafka: mock` librdkafka's mock cluster lives inside the `smsflow run` process (its /metrics shows smsflow_consumer_lag)"
            ),
        }
        let bus = KafkaBus::connect(&p.kafka, &[])
            .await
            .with_context(|| format!("cannot connect to {}", bus_name(topology)))?;
        let stages = topology
            .stages()
            .into_iter()
            .map(|s| {
                let group = format!("{}.{}", p.kafka.group, s.name);
                Ok(Watched {
                    client: bus.group_client(&group)?,
                    name: s.name,
                    reads: s.reads,
                })
            })
            .collect::<anyhow::Result<Vec<_>>>()?;
        Ok(Top {
            stages,
            previous: None,
            title: format!("{name} · {}", bus_name(topology)),
        })
    }

    /// Read every stage's offsets now; rates are against the last refresh.
    pub async fn refresh(&mut self) -> anyhow::Result<Snapshot> {
        let mut ends: HashMap<String, Vec<Watermarks>> = HashMap::new();
        let mut rows = Vec::new();
        for s in &self.stages {
            let mut partitions = Vec::new();
            for topic in &s.reads {
                if !ends.contains_key(topic) {
                    let marks = s
                        .client
                        .watermarks(topic)
                        .await
                        .with_context(|| format!("cannot read the offsets of {topic}"))?;
                    ends.insert(topic.clone(), marks);
                }
                let marks = &ends[topic];
                let numbers: Vec<i32> = marks.iter().map(|m| m.partition).collect();
                let committed: HashMap<i32, Option<i64>> = s
                    .client
                    .committed(topic, &numbers)
                    .await
                    .with_context(|| {
                        format!("cannot read the committed offsets of stage {}", s.name)
                    })?
                    .into_iter()
                    .collect();
                for m in marks {
                    let committed = committed.get(&m.partition).copied().flatten();
                    partitions.push(PartitionRow {
                        topic: topic.clone(),
                        partition: m.partition,
                        committed,
                        end: m.end,
                        lag: (m.end - committed.unwrap_or(m.low)).max(0),
                        done_rate: None,
                        written_rate: None,
                    });
                }
            }
            let group = s.client.group().to_owned();
            let state = s.client.state().await.map_err(|e| e.to_string());
            rows.push(StageRow {
                name: s.name.clone(),
                group,
                state,
                partitions,
            });
        }
        let mut now = Snapshot {
            stages: rows,
            taken: Instant::now(),
            at: SystemTime::now(),
        };
        if let Some(before) = &self.previous {
            rates(before, &mut now);
        }
        self.previous = Some(now.clone());
        Ok(now)
    }

    /// The snapshot as a table, under a heading.
    pub fn render(&self, s: &Snapshot, every: Option<Duration>) -> String {
        let mut text = format!(
            "smsflow top · {} · {}",
            self.title,
            humantime::format_rfc3339_seconds(s.at)
        );
        if let Some(every) = every {
            let _ = write!(
                text,
                " · every {} (Ctrl-C to quit)",
                humantime::format_duration(every)
            );
        }
        text.push_str("\n\n");
        text.push_str(&table(s));
        text
    }
}

fn bus_name(topology: &Topology) -> String {
    format!(
        "brokers {}",
        topology.pipeline().kafka.brokers.as_deref().unwrap_or("-")
    )
}

/// Fill `now`'s rates from the offsets' change since `before`.
fn rates(before: &Snapshot, now: &mut Snapshot) {
    let seconds = now.taken.duration_since(before.taken).as_secs_f64();
    if seconds <= 0.0 {
        return;
    }
    let old: HashMap<(&str, &str, i32), &PartitionRow> = before
        .stages
        .iter()
        .flat_map(|s| {
            s.partitions
                .iter()
                .map(move |p| ((s.name.as_str(), p.topic.as_str(), p.partition), p))
        })
        .collect();
    for s in &mut now.stages {
        for p in &mut s.partitions {
            let Some(o) = old.get(&(s.name.as_str(), p.topic.as_str(), p.partition)) else {
                continue;
            };
            let per_second = |from: i64, to: i64| (to - from).max(0) as f64 / seconds;
            p.written_rate = Some(per_second(o.end, p.end));
            p.done_rate = match (o.committed, p.committed) {
                (Some(from), Some(to)) => Some(per_second(from, to)),
                (None, None) => Some(0.0),
                // The first commit: from the oldest record held then.
                (None, Some(to)) => Some(per_second(o.end - o.lag, to)),
                // Its offsets expired: unknown.
                (Some(_), None) => None,
            };
        }
    }
}

fn rate(r: Option<f64>) -> String {
    r.map_or_else(|| "-".to_owned(), |r| format!("{r:.1}"))
}

/// One line per stage (its totals and group), then one per partition.
pub fn table(s: &Snapshot) -> String {
    let width = s
        .stages
        .iter()
        .flat_map(|st| {
            std::iter::once(st.name.len()).chain(st.partitions.iter().map(|p| p.topic.len() + 2))
        })
        .chain(std::iter::once("STAGE / TOPIC".len()))
        .max()
        .unwrap_or(0);
    let mut t = String::new();
    let _ = writeln!(
        t,
        "{:<width$} {:>5} {:>11} {:>11} {:>9} {:>9} {:>9}  MEMBERS",
        "STAGE / TOPIC", "PART", "COMMITTED", "END", "LAG", "DONE/S", "WRITTEN/S"
    );
    for st in &s.stages {
        let members = match &st.state {
            Ok(g) => format!("{} {} (group {})", g.members, g.state, st.group),
            Err(e) => format!("? (group {}: {e})", st.group),
        };
        let _ = writeln!(
            t,
            "{:<width$} {:>5} {:>11} {:>11} {:>9} {:>9} {:>9}  {members}",
            st.name,
            "",
            "",
            "",
            st.lag(),
            rate(st.total(|p| p.done_rate)),
            rate(st.total(|p| p.written_rate)),
        );
        if st.partitions.is_empty() {
            let _ = writeln!(t, "  (its topics do not exist yet)");
        }
        for p in &st.partitions {
            let _ = writeln!(
                t,
                "  {:<w$} {:>5} {:>11} {:>11} {:>9} {:>9} {:>9}",
                p.topic,
                p.partition,
                p.committed
                    .map_or_else(|| "-".to_owned(), |c| c.to_string()),
                p.end,
                p.lag,
                rate(p.done_rate),
                rate(p.written_rate),
                w = width - 2,
            );
        }
    }
    t
}

/// `smsflow top`: redraw every `interval` until Ctrl-C, or print one
/// snapshot when `once` (rates need two, so it shows none).
pub async fn run(
    topology: &Topology,
    name: &str,
    interval: Duration,
    once: bool,
) -> anyhow::Result<()> {
    if interval.is_zero() {
        bail!("--interval must be above zero");
    }
    let mut top = Top::connect(topology, name).await?;
    if once {
        let s = top.refresh().await?;
        crate::out!("{}", top.render(&s, None));
        return Ok(());
    }
    // A terminal is redrawn in place; a pipe or file gets one snapshot after another.
    let live = std::io::IsTerminal::is_terminal(&std::io::stdout());
    loop {
        let text = match top.refresh().await {
            Ok(s) => top.render(&s, Some(interval)),
            Err(e) => format!("smsflow top · {} · refresh failed: {e:#}\n", top.title),
        };
        if live {
            crate::out!("\x1b[H\x1b[2J{text}");
        } else {
            crate::out!("{text}\n");
        }
        tokio::select! {
            _ = tokio::time::sleep(interval) => {}
            _ = tokio::signal::ctrl_c() => return Ok(()),
        }
    }
}
