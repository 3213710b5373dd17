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
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::task::JoinHandle;
use tracing::{info, warn};

use crate::bus::kafka::KafkaConsumer;
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
    topic: Arc<str>,
    /// Kafka: where the follower is per partition, and a handle to ask the
    /// broker for the ends (the other buses apply what they hold at once).
    kafka: Option<(Arc<Positions>, KafkaConsumer)>,
}

impl Drop for Follower {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// The next offset to apply, per partition, and a count of the records
/// applied (a watch: a waiter that subscribed misses no change).
pub struct Positions {
    next: std::sync::Mutex<HashMap<i32, i64>>,
    applied: tokio::sync::watch::Sender<u64>,
}

impl Default for Positions {
    fn default() -> Self {
        Positions {
            next: Default::default(),
            applied: tokio::sync::watch::Sender::new(0),
        }
    }
}

impl Positions {
    fn applied(&self, partition: i32, offset: i64) {
        self.next
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(partition, offset + 1);
        self.applied.send_modify(|n| *n += 1);
    }

    /// The first partition not read up to its end, as (partition, next, end).
    fn behind(&self, ends: &[(i32, i64, i64)]) -> Option<(i32, i64, i64)> {
        let next = self.next.lock().unwrap_or_else(|p| p.into_inner());
        ends.iter().find_map(|&(p, low, high)| {
            let at = next.get(&p).copied().unwrap_or(low).max(low);
            (at < high).then_some((p, at, high))
        })
    }
}

impl Follower {
    /// Changes each time a record is applied (on Kafka; never elsewhere).
    pub fn changes(&self) -> tokio::sync::watch::Receiver<u64> {
        match &self.kafka {
            Some((positions, _)) => positions.applied.subscribe(),
            None => tokio::sync::watch::Sender::new(0).subscribe(),
        }
    }

    /// Wait until every record the topic holds now is applied; an error
    /// naming the partition behind when that takes longer than `timeout`.
    pub async fn catch_up(&self, timeout: Duration) -> Result<(), BusError> {
        let Some((positions, handle)) = &self.kafka else {
            return Ok(());
        };
        let ends = handle.watermarks(&self.topic).await?;
        let deadline = tokio::time::Instant::now() + timeout;
        // Subscribed before the check, so that no record applied after it is missed.
        let mut applied = positions.applied.subscribe();
        loop {
            let Some((partition, at, end)) = positions.behind(&ends) else {
                return Ok(());
            };
            let waited = tokio::time::timeout_at(deadline, applied.changed()).await;
            if let Ok(Err(_)) = waited {
                return Err(BusError::Closed);
            }
            if waited.is_err() {
                return Err(BusError::Kafka {
                    message: format!(
                        "{}: partition {partition} read to offset {at} of {end} within {timeout:?}",
                        self.topic
                    ),
                    retryable: true,
                });
            }
        }
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
/// what it held at start-up is applied (on Kafka: every partition read to
/// the end it had then, or an error after `restore_timeout`), and keep
/// applying new records in the background until the returned [`Follower`]
/// is dropped. A record `apply` returns (a dead letter) is written with
/// `producer`.
pub async fn follow<F>(
    bus: &Bus,
    producer: &Producer,
    group: &str,
    topic: &str,
    restore_timeout: Duration,
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
            let (mut consumer, _) = k.reader(&group, &topic).await?;
            let handle = consumer.handle();
            let name = topic.clone();
            let positions = Arc::new(Positions::default());
            let restoring = Arc::new(AtomicBool::new(true));
            let (p, r) = (positions.clone(), restoring.clone());
            let task = tokio::spawn(async move {
                loop {
                    match consumer.recv().await {
                        Ok(record) => {
                            let phase = match r.load(Ordering::Acquire) {
                                true => Phase::Restore,
                                false => Phase::Live,
                            };
                            write(apply(&record, phase)).await;
                            p.applied(record.partition, record.offset);
                        }
                        Err(BusError::Closed) => return,
                        Err(e) => {
                            warn!(topic = %name, error = %e, "table: read failed, retrying");
                            tokio::time::sleep(Duration::from_secs(1)).await;
                        }
                    }
                }
            });
            let follower = Follower {
                task,
                topic: topic.clone(),
                kafka: Some((positions, handle)),
            };
            follower.catch_up(restore_timeout).await?;
            restoring.store(false, Ordering::Release);
            info!(topic = %topic, "table restored");
            return Ok(follower);
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
            let name = topic.clone();
            tokio::spawn(async move {
                loop {
                    match reader.recv().await {
                        Ok(r) => write(apply(&r, Phase::Live)).await,
                        Err(BusError::Closed) => return,
                        Err(e) => {
                            warn!(topic = %name, error = %e, "table: read failed, retrying");
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
    Ok(Follower {
        task,
        topic,
        kafka: None,
    })
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
    let timeout = p.kafka.restore_timeout;
    follow(
        bus,
        producer,
        &p.kafka.group,
        topic,
        timeout,
        move |r, phase| {
            let why = apply(r).err()?;
            unreadable(&dlq, r, phase, &why)
        },
    )
    .await
}
