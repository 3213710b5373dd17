//! Tables: a topic kept as local state by every process that needs it.
//!
//! [`follow`] reads a topic from its first record, waits until it has read
//! what the topic held (the restore), and then keeps reading in the
//! background for as long as the process runs, handing each record to an
//! `apply` function. The contacts, the opt-out list, poll answers, message
//! statuses and the message log are all tables over their topics: each
//! stage process that needs one restores it at start-up and keeps it
//! current while running, and several processes agree because they read
//! the same records in the same order (per key).
//!
//! Kafka: a group of its own per process that never commits, reading every
//! partition by assignment. Durable embedded bus: a reader outside any
//! group, from the oldest record held. Embedded bus: a group joined at
//! start-up (every group of an embedded pipeline joins before anything is
//! written).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use tokio::task::JoinHandle;
use tracing::{info, warn};

use crate::bus::{Bus, BusError, Produce, Producer, Record};
use crate::config::Pipeline;
use crate::metrics::metrics;
use crate::stage;

/// The version (a time in ms) of a write that replaces one at `previous`:
/// now, or just after `previous` when the clock has not passed it (two
/// writes in one millisecond, or another process's clock ahead). Tables
/// apply a record only if it is not older than what they hold, since a
/// process applies its own writes at once and reads them back later, after
/// newer ones.
pub fn next_version(previous: Option<i64>) -> i64 {
    let now = crate::message::now_millis();
    previous.map_or(now, |p| now.max(p + 1))
}

/// Whether a record came from the restore or arrived while running.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    Restore,
    Live,
}

/// A followed topic; dropping it stops following.
pub struct Follower {
    task: JoinHandle<()>,
}

impl Drop for Follower {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// What to do with a record a table cannot read: count it and log it; one
/// that arrives while running also goes to the dead-letter topic (returned,
/// for [`follow`] to write). One found in the restore was dead-lettered when
/// it was first read.
pub fn unreadable(dlq: &Arc<str>, record: &Record, phase: Phase, message: &str) -> Option<Produce> {
    let stage = format!("table:{}", record.topic);
    warn!(%stage, partition = record.partition, offset = record.offset, error = message, "table: record cannot be read, skipped");
    metrics()
        .errors
        .with_label_values(&[&stage, "decode"])
        .inc();
    (phase == Phase::Live).then(|| {
        metrics().dead_lettered.with_label_values(&[&stage]).inc();
        stage::dead_letter_value(
            dlq,
            &stage,
            record.key.clone().unwrap_or_default(),
            record.payload.clone(),
            stage::Origin {
                topic: &record.topic,
                position: Some((record.partition, record.offset)),
            },
            "decode",
            message,
        )
    })
}

/// Read `topic` from the beginning, calling `apply` per record; return once
/// what it held at start-up is applied, and keep applying new records in the
/// background until the returned [`Follower`] is dropped. A record `apply`
/// returns (a dead letter) is written with `producer`.
pub async fn follow<F>(
    bus: &Bus,
    producer: &Producer,
    group: &str,
    topic: &str,
    mut apply: F,
) -> Result<Follower, BusError>
where
    F: FnMut(&Record, Phase) -> Option<Produce> + Send + 'static,
{
    let producer = producer.clone();
    let write = move |p: Option<Produce>| {
        let producer = producer.clone();
        async move {
            if let Some(p) = p {
                if let Err(e) = producer.send_and_wait(p).await {
                    warn!(error = %e, "table: cannot write a dead letter");
                }
            }
        }
    };
    let group = format!("{group}.table.{topic}.{}", crate::message::new_id());
    let topic: Arc<str> = Arc::from(topic);
    let task = match bus {
        Bus::Kafka(k) => {
            let (mut consumer, progress) = k.reader(&group, &topic).await?;
            // Up to the end each partition had now; what comes after (on a
            // busy topic, all the time) is applied live.
            let mut remaining: HashMap<i32, i64> = progress
                .iter()
                .filter(|(_, _, end)| *end > 0)
                .map(|(p, _, end)| (*p, *end))
                .collect();
            let mut n = 0usize;
            while !remaining.is_empty() {
                // Silence before the reported end: a broker whose end is
                // off (tansu 0.6.0 reports a batch's as its first offset +
                // 1). Go on: the rest, if any, arrives live.
                let Ok(r) = tokio::time::timeout(Duration::from_secs(2), consumer.recv()).await
                else {
                    warn!(topic = %topic, "table: no record before the reported end; restored what was read");
                    break;
                };
                let r = r?;
                if remaining
                    .get(&r.partition)
                    .is_some_and(|end| r.offset + 1 >= *end)
                {
                    remaining.remove(&r.partition);
                }
                write(apply(&r, Phase::Restore)).await;
                n += 1;
            }
            info!(topic = %topic, records = n, "table restored");
            tokio::spawn(async move {
                loop {
                    match consumer.recv().await {
                        Ok(r) => write(apply(&r, Phase::Live)).await,
                        Err(BusError::Closed) => return,
                        Err(e) => {
                            warn!(topic = %topic, error = %e, "table: read failed, retrying");
                            tokio::time::sleep(Duration::from_secs(1)).await;
                        }
                    }
                }
            })
        }
        Bus::Durable(d) => {
            // A reader outside any group: from the oldest record held, as
            // on Kafka; what the topic held now is the restore.
            let mut reader = d.reader(&topic)?;
            let mut n = 0usize;
            while let Some(r) = reader.restore_next() {
                write(apply(&r?, Phase::Restore)).await;
                n += 1;
            }
            info!(topic = %topic, records = n, "table restored");
            tokio::spawn(async move {
                loop {
                    match reader.recv().await {
                        Ok(r) => write(apply(&r, Phase::Live)).await,
                        Err(BusError::Closed) => return,
                        Err(e) => {
                            warn!(topic = %topic, error = %e, "table: read failed, retrying");
                            tokio::time::sleep(Duration::from_secs(1)).await;
                        }
                    }
                }
            })
        }
        Bus::Embedded(_) => {
            let mut consumer = bus.consumer(&group, &[&topic])?;
            let committer = consumer.committer();
            tokio::spawn(async move {
                while let Ok(r) = consumer.recv().await {
                    write(apply(&r, Phase::Live)).await;
                    // Marked done at once: a table never holds the bus back.
                    let _ = committer.done(&r.topic, r.partition, r.offset);
                }
            })
        }
    };
    Ok(Follower { task })
}

/// [`follow`] `topic` into a table: `apply` reads a record into it, or says
/// why it cannot ([`unreadable`] takes it from there).
pub(super) async fn table<F>(
    bus: &Bus,
    producer: &Producer,
    p: &Pipeline,
    topic: &str,
    apply: F,
) -> Result<Follower, BusError>
where
    F: Fn(&Record) -> Result<(), String> + Send + 'static,
{
    let dlq: Arc<str> = Arc::from(p.topics.dlq.as_str());
    follow(bus, producer, &p.kafka.group, topic, move |r, phase| {
        let why = apply(r).err()?;
        unreadable(&dlq, r, phase, &why)
    })
    .await
}
