//! The `analytics` stage: it reads `sms.inbound`, the app topics and
//! `sms.events`, counts each record into the [`Aggregator`], and writes the
//! changed windows to `topics.stats` every flush interval (and every
//! [`FLUSH_RECORDS`] records).
//!
//! Offsets follow the written counts: the first record read after a flush
//! holds a [`Later`], so it and every record after it stay unmarked until
//! the flush that counts them is stored. The committed offset of a
//! partition is therefore never past what its cells in `sms.stats` count,
//! and a partition's next owner (after a restart or a rebalance) restores
//! the open cells from `sms.stats` and counts only records past each
//! cell's `through_offset`: every record is counted once.
//!
//! On a revocation the partition's counts since the last flush are
//! dropped, not written: its records are not marked done either, and the
//! next owner counts them. The hook waits for the flushes in flight to be
//! stored first, so that the next owner's restore reads them.

use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::time::{Duration, Instant};

use bytes::Bytes;
use tracing::{error, info, warn};

use super::aggregate::{Aggregator, Settings, Source};
use super::observe::{self, Observation};
use super::restore::Restored;
use crate::bus::{AckGroup, Bus, BusError, Produce, Producer, Rebalances, Record, TopicPartition};
use crate::message::{now_millis, DeliveryEvent, InboundMessage, RoutedMessage};
use crate::metrics::metrics;
use crate::schema;
use crate::stage::{HandleError, Handler, Later, Output};
use crate::state::table::{follow, unreadable, Follower, Phase};

/// Records counted between two writes at most: the stage loop holds this
/// many records unmarked, far below its window of records in flight.
pub const FLUSH_RECORDS: usize = 1024;

/// How long a revocation waits for flushes being stored.
const SETTLE: Duration = Duration::from_secs(10);

/// The stage's name, as metrics and logs say it.
const STAGE: &str = "analytics";

/// The topics the stage reads and writes.
#[derive(Debug, Clone)]
pub struct Topics {
    pub inbound: Arc<str>,
    pub events: Arc<str>,
    pub stats: Arc<str>,
    pub dlq: Arc<str>,
}

/// How the stage runs.
#[derive(Debug, Clone)]
pub struct Options {
    pub settings: Settings,
    pub flush: Duration,
    /// How long reading `sms.stats` to its end may take.
    pub restore_timeout: Duration,
}

struct State {
    agg: Aggregator,
    /// The first record read since the last flush, held until the flush
    /// that counts it is stored.
    held: Option<Later>,
    since_flush: usize,
}

struct Shared {
    state: Mutex<State>,
    /// Taken while a flush takes its records and hands them to the bus, so
    /// that flushes reach the topic in the order they were taken.
    flushing: tokio::sync::Mutex<()>,
    producer: Producer,
    stats: Arc<str>,
    restored: Arc<Restored>,
    /// Kafka and the durable bus: the follower of `sms.stats`.
    follower: Option<Follower>,
    restore_timeout: Duration,
    /// Flushes handed to the bus and not yet stored.
    in_flight: Mutex<Vec<Arc<AckGroup>>>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // Nothing panics while holding these; a poisoned lock holds good data.
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Shared {
    /// Write the changed and closed cells; the held record is marked done
    /// once they are stored.
    async fn flush(&self) {
        let guard = self.flushing.lock().await;
        let (records, later) = {
            let mut st = lock(&self.state);
            st.since_flush = 0;
            (st.agg.flush(now_millis()), st.held.take())
        };
        if records.is_empty() && later.is_none() {
            return;
        }
        let group = AckGroup::new();
        let mut failure = None;
        let written = &metrics().analytics_records;
        for s in &records {
            let payload = match schema::stats().encode(s) {
                Ok(p) => p,
                Err(e) => {
                    failure = Some(e.to_string());
                    break;
                }
            };
            let record = Produce::new(self.stats.clone(), Bytes::from(s.key()), payload);
            if let Err(e) = self.producer.send_in(record, Some(&group)).await {
                failure = Some(e.to_string());
                break;
            }
            written.with_label_values(&[s.window.name()]).inc();
        }
        {
            let mut in_flight = lock(&self.in_flight);
            in_flight.retain(|g| !g.is_done());
            in_flight.push(group.clone());
        }
        drop(guard);
        let Some(later) = later else { return };
        tokio::spawn(async move {
            let stored = group.wait().await.map_err(|e| e.to_string());
            match failure.map_or(stored, Err) {
                Ok(()) => later.finish(Vec::new()).await,
                Err(e) => {
                    error!(stage = STAGE, error = %e, "statistics not written: what they count is read again after a restart");
                    later.abandon(&e, Vec::new()).await;
                }
            }
        });
    }

    /// `partitions` are being taken away: drop their counts (not marked
    /// done, their next owner counts them) once the flushes in flight are
    /// stored, so that its restore reads them.
    fn revoke(&self, partitions: &[TopicPartition]) {
        let deadline = Instant::now() + SETTLE;
        let guard = loop {
            match self.flushing.try_lock() {
                Ok(g) => break Some(g),
                Err(_) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(1)),
                Err(_) => break None,
            }
        };
        {
            let mut st = lock(&self.state);
            for (topic, p) in partitions {
                st.agg.forget(&(Arc::from(topic.as_str()), *p));
            }
        }
        drop(guard);
        while lock(&self.in_flight).iter().any(|g| !g.is_done()) {
            if Instant::now() >= deadline {
                warn!(
                    stage = STAGE,
                    "partitions revoked while statistics were still being written"
                );
                break;
            }
            std::thread::sleep(Duration::from_millis(2));
        }
        info!(stage = STAGE, partitions = ?partitions, "statistics: partitions handed over");
    }
}

/// The stage's handler.
pub struct AnalyticsStage {
    shared: Arc<Shared>,
    inbound: Arc<str>,
    events: Arc<str>,
    /// The consumer's assignment, and the generation the follower of
    /// `sms.stats` was last caught up for.
    assignment: Option<(Arc<Rebalances>, u64)>,
}

impl AnalyticsStage {
    /// The stage over `bus` (needs a tokio runtime): on Kafka and the
    /// durable bus it reads `sms.stats` to its end first.
    pub async fn start(
        bus: &Bus,
        producer: &Producer,
        group: &str,
        topics: Topics,
        options: Options,
    ) -> Result<Self, BusError> {
        let restored = Arc::new(Restored::new(options.settings.grace_ms));
        let follower = match bus {
            // In memory: nothing outlives the process, which owns every partition.
            Bus::Embedded(_) => None,
            _ => {
                let r = restored.clone();
                let dlq = topics.dlq.clone();
                let apply = move |record: &Record, phase: Phase| {
                    if record.payload.is_empty() {
                        return None;
                    }
                    match schema::stats().decode(&record.payload) {
                        Ok(s) => {
                            r.apply(s);
                            None
                        }
                        Err(e) => unreadable(&dlq, record, phase, &e.to_string()),
                    }
                };
                Some(
                    follow(
                        bus,
                        producer,
                        group,
                        &topics.stats,
                        options.restore_timeout,
                        apply,
                    )
                    .await?,
                )
            }
        };
        let shared = Arc::new(Shared {
            state: Mutex::new(State {
                agg: Aggregator::new(options.settings),
                held: None,
                since_flush: 0,
            }),
            flushing: tokio::sync::Mutex::new(()),
            producer: producer.clone(),
            stats: topics.stats.clone(),
            restored,
            follower,
            restore_timeout: options.restore_timeout,
            in_flight: Mutex::new(Vec::new()),
        });
        let weak = Arc::downgrade(&shared);
        tokio::spawn(flush_every(weak, options.flush));
        Ok(AnalyticsStage {
            shared,
            inbound: topics.inbound,
            events: topics.events,
            assignment: None,
        })
    }

    /// Follow the stage consumer's assignment: catch up with `sms.stats`
    /// before counting partitions just given; drop the counts of
    /// partitions taken away.
    pub fn follow_assignment(mut self, rebalances: Arc<Rebalances>) -> Self {
        let weak = Arc::downgrade(&self.shared);
        rebalances.on_revoke(Arc::new(move |partitions| {
            if let Some(shared) = weak.upgrade() {
                shared.revoke(partitions);
            }
        }));
        self.assignment = Some((rebalances, 0));
        self
    }

    /// Write what is counted now (tests, benchmarks: the stage loop relies
    /// on the flush interval).
    pub async fn flush(&self) {
        self.shared.flush().await;
    }
}

/// Flush every `every`, for as long as the stage's handler lives.
async fn flush_every(shared: Weak<Shared>, every: Duration) {
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let Some(shared) = shared.upgrade() else {
            return;
        };
        shared.flush().await;
    }
}

/// A record decoded by the topic it came from.
enum Decoded {
    Inbound(InboundMessage),
    Routed(RoutedMessage),
    Event(DeliveryEvent),
}

impl Decoded {
    fn observe(&self) -> Observation<'_> {
        match self {
            Decoded::Inbound(m) => observe::inbound(m),
            Decoded::Routed(m) => observe::routed(m),
            Decoded::Event(e) => observe::event(e),
        }
    }
}

impl AnalyticsStage {
    fn decode(&self, record: &Record) -> Result<Decoded, schema::DecodeError> {
        let p = &record.payload;
        Ok(if record.topic == self.inbound {
            Decoded::Inbound(schema::inbound().decode(p)?)
        } else if record.topic == self.events {
            Decoded::Event(schema::event().decode(p)?)
        } else {
            Decoded::Routed(schema::routed().decode(p)?)
        })
    }
}

impl Handler for AnalyticsStage {
    async fn handle(&mut self, record: &Record, out: &mut Output) -> Result<(), HandleError> {
        if let Some((rebalances, seen)) = &mut self.assignment {
            let generation = rebalances.generation();
            if generation != *seen {
                if let Some(f) = &self.shared.follower {
                    f.catch_up(self.shared.restore_timeout)
                        .await
                        .map_err(HandleError::Unavailable)?;
                }
                *seen = generation;
            }
            if rebalances.epoch(&record.topic, record.partition).is_none() {
                // Read before its partition went elsewhere: the next owner counts it.
                return Ok(());
            }
        }
        let m = metrics();
        let decoded = match self.decode(record) {
            Ok(d) => d,
            Err(e) => {
                // Not dead-lettered: a replay would write it back to a
                // topic other stages read too. Counted and logged.
                warn!(stage = STAGE, topic = %record.topic, partition = record.partition, offset = record.offset, error = %e, "record not counted: it cannot be read");
                m.errors.with_label_values(&[STAGE, "decode"]).inc();
                return Ok(());
            }
        };
        let o = decoded.observe();
        let source: Source = (record.topic.clone(), record.partition);
        let flush = {
            let mut st = lock(&self.shared.state);
            if !st.agg.has(&source) {
                let (stream_time, open) = self.shared.restored.of(&record.topic, record.partition);
                st.agg.restore(&source, stream_time, open);
            }
            let done = st.agg.record(&source, record.offset, &o);
            if done.counted {
                count(&o);
            }
            for w in &done.late {
                m.analytics_late
                    .with_label_values(&[&record.topic, w.name()])
                    .inc();
                warn!(stage = STAGE, topic = %record.topic, partition = record.partition, offset = record.offset, at = o.at, window = w.name(), "late event: its window is closed, not counted");
            }
            if st.held.is_none() {
                st.held = Some(out.later(record, &self.shared.producer));
            }
            st.since_flush += 1;
            st.since_flush >= FLUSH_RECORDS
        };
        if flush {
            self.shared.flush().await;
        }
        Ok(())
    }
}

/// The Prometheus series of one counted record.
fn count(o: &Observation<'_>) {
    let Some(backend) = o.backend else { return };
    let m = metrics();
    m.analytics_messages
        .with_label_values(&[backend, o.direction, o.status])
        .inc();
    for (phase, ms) in [
        ("accepted_to_sent", o.delta.accepted_to_sent),
        ("sent_to_delivered", o.delta.sent_to_delivered),
    ] {
        if let Some(ms) = ms {
            m.analytics_latency
                .with_label_values(&[backend, phase])
                .observe(ms.max(0) as f64 / 1000.0);
        }
    }
}
