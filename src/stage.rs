//! The loop every consuming stage runs: receive a record, hand it to the
//! stage's [`Handler`], produce what it returns, and mark the record done only
//! once all of that is acknowledged, in the order records were received.
//!
//! A record the handler rejects (bad input) or fails on (an app error, an
//! encode failure) goes to the dead-letter topic with headers saying where
//! it came from and why, so that `smsflow dlq replay` can redo it; either way
//! the stage goes on. A consumer error retrying cannot help with (refused
//! credentials, no authorization, a missing topic) stops the stage; others
//! are retried with back-off. Every wait ends when the stage is told to stop.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures::FutureExt;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tracing::{debug, error, warn};

use crate::bus::{AckGroup, BusError, Committer, Consumer, Produce, Producer, Rebalances, Record};
use crate::message::Connection;
use crate::metrics::metrics;
use crate::schema::Codec;

/// Why a handler could not process a record.
#[derive(Debug, thiserror::Error)]
pub enum HandleError {
    /// The record is bad (undecodable, invalid content): retrying cannot help;
    /// it goes to the dead-letter topic.
    #[error("{kind}: {message}")]
    Input { kind: &'static str, message: String },
    /// Processing failed for this record (an app error, an encode failure):
    /// no output; it goes to the dead-letter topic to be replayed once the
    /// cause is fixed.
    #[error("{kind}: {message}")]
    Failed { kind: &'static str, message: String },
    /// The stage cannot go on now (state it needs could not be read): it
    /// stops with this error and the record is not marked done, so that
    /// the process restarts and the record is read again.
    #[error("{0}")]
    Unavailable(BusError),
}

impl HandleError {
    /// The error kind, as counted in `smsflow_errors_total{kind}`.
    pub fn kind(&self) -> &'static str {
        match self {
            HandleError::Input { kind, .. } | HandleError::Failed { kind, .. } => kind,
            HandleError::Unavailable(_) => "unavailable",
        }
    }

    pub fn input(kind: &'static str, message: impl Into<String>) -> Self {
        HandleError::Input {
            kind,
            message: message.into(),
        }
    }
}

/// What a stage does with one record.
pub trait Handler: Send + 'static {
    /// Push the records to produce for `record` into `out`. Async for the
    /// stages that call out; the others never await. A handler that finishes
    /// the record in another task (a backend sink waiting on its provider)
    /// takes [`Output::later`].
    fn handle(
        &mut self,
        record: &Record,
        out: &mut Output,
    ) -> impl std::future::Future<Output = Result<(), HandleError>> + Send;
}

/// The records a handler produces for one input record: a `Vec` to push to
/// (through `Deref`), and optionally a [`Later`] that holds the input open
/// until another task has produced the rest.
#[derive(Default)]
pub struct Output {
    records: Vec<Produce>,
    later: Option<Arc<AckGroup>>,
    /// The stage loop this output belongs to (none outside one): where a
    /// [`Later`] dead-letters its record, and the signals that end its waits.
    stage: Option<Arc<StageShared>>,
}

/// What a stage's [`Later`]s share with its loop.
struct StageShared {
    ctx: StageContext,
    control: StageControl,
}

impl std::ops::Deref for Output {
    type Target = Vec<Produce>;
    fn deref(&self) -> &Vec<Produce> {
        &self.records
    }
}

impl std::ops::DerefMut for Output {
    fn deref_mut(&mut self) -> &mut Vec<Produce> {
        &mut self.records
    }
}

impl Output {
    /// The record is finished by another task: it is marked done only once
    /// that task called [`Later::finish`] and what it produced is
    /// acknowledged. Dropping the `Later` unfinished fails the stage, so the
    /// record is read again after a restart.
    pub fn later(&mut self, record: &Record, producer: &Producer) -> Later {
        let group = self.later.get_or_insert_with(AckGroup::new).clone();
        group.expect_one();
        Later {
            group,
            producer: producer.clone(),
            finished: false,
            record: record.clone(),
            stage: self.stage.clone(),
        }
    }

    /// Forget everything pushed so far (and any [`Later`] hold).
    pub fn clear(&mut self) {
        self.records.clear();
        self.later = None;
    }
}

/// The unfinished part of a record's output (see [`Output::later`]).
pub struct Later {
    group: Arc<AckGroup>,
    producer: Producer,
    finished: bool,
    /// The input record, to dead-letter it.
    record: Record,
    stage: Option<Arc<StageShared>>,
}

impl Later {
    /// Produce the record's remaining outputs; the input is marked done once
    /// they (and everything else it produced) are acknowledged.
    pub async fn finish(self, records: Vec<Produce>) {
        self.complete(records, Ok(())).await;
    }

    /// Produce one of the record's outputs now (a stage that paces what it
    /// writes); the input is marked done once this and the rest are
    /// acknowledged.
    pub async fn produce(&self, record: Produce) -> Result<(), BusError> {
        self.producer.send_in(record, Some(&self.group)).await
    }

    /// The record cannot be finished (its delivery event does not encode):
    /// produce `records` and the input's dead letter (`kind`, `message`), so
    /// that `smsflow dlq replay` redoes it once the cause is fixed. Outside a
    /// stage loop (no dead-letter topic) the input is left unfinished instead.
    pub async fn dead_letter(self, kind: &str, message: &str, mut records: Vec<Produce>) {
        let Some(stage) = self.stage.clone() else {
            let reason = format!("{kind}: {message}");
            return self
                .complete(records, Err(BusError::Interrupted(reason)))
                .await;
        };
        let m = metrics();
        m.errors.with_label_values(&[&stage.ctx.name, kind]).inc();
        m.dead_lettered.with_label_values(&[&stage.ctx.name]).inc();
        records.push(dead_letter(&stage.ctx, &self.record, kind, message));
        self.finish(records).await;
    }

    /// Shutdown came first: produce `records` (what is known so far, such
    /// as the sent-log's note that the message is to be tried again) and
    /// leave the input unfinished, so that it is read again after a restart.
    pub async fn abandon(self, reason: &str, records: Vec<Produce>) {
        let reason = BusError::Interrupted(reason.to_owned());
        self.complete(records, Err(reason)).await;
    }

    /// The record's partition was taken away before this was started: no
    /// output, not marked done; the partition's next owner reads it.
    pub async fn revoked(self) {
        self.complete(Vec::new(), Err(BusError::Revoked)).await;
    }

    /// The partition the record was read from.
    pub fn partition(&self) -> i32 {
        self.record.partition
    }

    /// Resolves once the stage is told to drain or stop: a wait on this
    /// record's behalf (back-off, rate limit) should end then. Never, outside
    /// a stage loop.
    pub async fn stopping(&self) {
        match &self.stage {
            Some(s) => stopping(&s.control).await,
            None => std::future::pending().await,
        }
    }

    async fn complete(mut self, records: Vec<Produce>, mut result: Result<(), BusError>) {
        for r in records {
            if let Err(e) = self.producer.send_in(r, Some(&self.group)).await {
                result = Err(e);
                break;
            }
        }
        self.finished = true;
        self.group.complete(result);
    }
}

impl Drop for Later {
    fn drop(&mut self) {
        if !self.finished {
            self.group.complete(Err(BusError::Closed));
        }
    }
}

/// Names and topics a stage loop needs.
#[derive(Clone)]
pub struct StageContext {
    pub name: Arc<str>,
    pub dlq: Arc<str>,
}

/// A record handled, waiting for its outputs' acknowledgements.
struct Pending {
    topic: Arc<str>,
    partition: i32,
    offset: i64,
    /// The assignment it was read under (see [`Rebalances::epoch`]).
    epoch: Option<u64>,
    acks: Option<Arc<AckGroup>>,
}

/// Signals a running stage receives.
#[derive(Clone, Default)]
pub struct StageControl {
    /// Finish what is available now, then stop (graceful shutdown).
    pub drain: CancellationToken,
    /// Draining reads on until the input is quiet (when the stages upstream
    /// run in this process and stop first). Otherwise (`--stage`) it stops
    /// reading at once: upstream never stops, and what is left is read by
    /// the partitions' next owner.
    pub drain_until_idle: bool,
    /// Stop now; unfinished records are read again after a restart.
    pub stop: CancellationToken,
}

/// Resolves once the stage is told to drain or to stop.
async fn stopping(control: &StageControl) {
    tokio::select! {
        _ = control.drain.cancelled() => {}
        _ = control.stop.cancelled() => {}
    }
}

/// The first pause after a consumer error; it doubles up to [`RECV_BACKOFF_MAX`].
const RECV_BACKOFF_MIN: Duration = Duration::from_millis(200);
const RECV_BACKOFF_MAX: Duration = Duration::from_secs(10);

/// Run a stage until drained or stopped. Returns an error when the bus
/// failed in a way the stage cannot carry on from (a fatal consumer error, a
/// failed produce), or when shutdown left a record unfinished: offsets of
/// unfinished records stay uncommitted, so a restart redoes them.
pub async fn run(
    ctx: StageContext,
    mut consumer: Consumer,
    producer: Producer,
    mut handler: impl Handler,
    control: StageControl,
) -> Result<(), BusError> {
    let m = metrics();
    let received = m.received.with_label_values(&[&ctx.name]);
    let latency = m.latency.with_label_values(&[&ctx.name]);
    m.up.with_label_values(&[&ctx.name]).set(1);

    // Acks are awaited in a second task so the stage keeps handling records
    // while earlier outputs are in flight; the channel bound is the window.
    let (pending_tx, pending_rx) = mpsc::channel::<Pending>(4096);
    consumer.ignore_headers();
    let committer = consumer.committer();
    let rebalances = consumer.rebalances();
    // Records handed to the acker and not yet marked done by it.
    let in_flight = Arc::new(AtomicUsize::new(0));
    let acker = tokio::spawn(mark_done(
        ctx.name.clone(),
        committer.clone(),
        rebalances.clone(),
        pending_rx,
        in_flight.clone(),
    ));

    let mut produced: std::collections::HashMap<Arc<str>, prometheus::IntCounter> =
        Default::default();
    let tracks_acks = producer.tracks_acks();
    let mut out = Output {
        stage: Some(Arc::new(StageShared {
            ctx: ctx.clone(),
            control: control.clone(),
        })),
        ..Output::default()
    };
    let mut backoff = RECV_BACKOFF_MIN;
    let mut result = Ok(());
    loop {
        // Yield now and then: under load the next record is always ready.
        tokio::task::consume_budget().await;
        // The common case under load, without registering for the signals.
        let ready = if control.stop.is_cancelled() || control.drain.is_cancelled() {
            None
        } else {
            consumer.recv().now_or_never()
        };
        let next = match ready {
            Some(r) => r,
            None => tokio::select! {
            biased;
            _ = control.stop.cancelled() => break,
            _ = control.drain.cancelled(), if !control.drain_until_idle => break,
            _ = control.drain.cancelled() => match consumer.recv_drain(Duration::from_millis(300)).await {
                Some(r) => r,
                None => break,
            },
            r = consumer.recv() => r,
            },
        };
        let record = match next {
            Ok(r) => r,
            Err(e) if e.fatal() => {
                // Refused credentials, no authorization, a missing topic:
                // librdkafka would retry forever while nothing gets through.
                error!(stage = %ctx.name, error = %e, "stopping the stage: the bus cannot be read");
                m.errors.with_label_values(&[&ctx.name, "bus"]).inc();
                result = Err(e);
                break;
            }
            Err(e) => {
                // librdkafka reports consumer errors (a broker going away, a
                // fetch failing) and recovers by itself; the group stays
                // joined. Count, pause (longer each time), go on.
                warn!(stage = %ctx.name, error = %e, retryable = e.retryable(), pause = ?backoff, "receive error; retrying");
                m.errors.with_label_values(&[&ctx.name, "bus"]).inc();
                tokio::select! {
                    _ = tokio::time::sleep(backoff) => {}
                    _ = stopping(&control) => break,
                }
                backoff = (backoff * 2).min(RECV_BACKOFF_MAX);
                continue;
            }
        };
        backoff = RECV_BACKOFF_MIN;
        received.inc();
        let started = Instant::now();
        out.clear();
        if let Err(e) = handler.handle(&record, &mut out).await {
            let (kind, message) = match &e {
                HandleError::Unavailable(cause) => {
                    error!(stage = %ctx.name, topic = %record.topic, partition = record.partition, offset = record.offset, error = %cause, "stopping the stage: it cannot go on");
                    m.errors.with_label_values(&[&ctx.name, e.kind()]).inc();
                    result = Err(cause.clone());
                    break;
                }
                HandleError::Input { kind, message } => {
                    warn!(stage = %ctx.name, topic = %record.topic, partition = record.partition, offset = record.offset, kind, %message, "bad record; dead-lettering it");
                    (*kind, message)
                }
                HandleError::Failed { kind, message } => {
                    error!(stage = %ctx.name, topic = %record.topic, partition = record.partition, offset = record.offset, kind, %message, "record failed; dead-lettering it for replay");
                    (*kind, message)
                }
            };
            m.errors.with_label_values(&[&ctx.name, kind]).inc();
            m.dead_lettered.with_label_values(&[&ctx.name]).inc();
            // Nothing it produced goes out: a replay redoes it all.
            out.clear();
            out.push(dead_letter(&ctx, &record, kind, message));
        }
        let acks = out
            .later
            .take()
            .or_else(|| (tracks_acks && !out.is_empty()).then(AckGroup::new));
        for p in out.records.drain(..) {
            produced
                .entry(p.topic.clone())
                .or_insert_with(|| m.produced.with_label_values(&[&ctx.name, &p.topic]))
                .inc();
            if let Err(e) = producer.send_in(p, acks.as_ref()).await {
                result = Err(e);
                break;
            }
        }
        if result.is_err() {
            break;
        }
        latency.observe(started.elapsed().as_secs_f64());
        // Already acknowledged (the embedded bus) and nothing earlier in
        // flight: mark it done here, in order, without a trip to the acker.
        if in_flight.load(Ordering::Acquire) == 0 && acks.as_ref().is_none_or(|a| a.is_done()) {
            if let Err(e) = committer.done(&record.topic, record.partition, record.offset) {
                result = Err(e);
                break;
            }
            continue;
        }
        in_flight.fetch_add(1, Ordering::AcqRel);
        let pending = Pending {
            epoch: rebalances.epoch(&record.topic, record.partition),
            topic: record.topic.clone(),
            partition: record.partition,
            offset: record.offset,
            acks,
        };
        if pending_tx.send(pending).await.is_err() {
            // The acker stopped: an acknowledgement failed. Stop consuming.
            break;
        }
    }
    drop(pending_tx);
    let acked = acker.await.unwrap_or(Err(BusError::Closed));
    m.up.with_label_values(&[&ctx.name]).set(0);
    let closed = consumer.close().await;
    debug!(stage = %ctx.name, "stage stopped");
    result.and(acked).and(closed)
}

/// Records the acker marks done in one call, at most.
const DONE_BATCH: usize = 1024;

async fn mark_done(
    stage: Arc<str>,
    committer: Committer,
    rebalances: Arc<Rebalances>,
    mut rx: mpsc::Receiver<Pending>,
    in_flight: Arc<AtomicUsize>,
) -> Result<(), BusError> {
    // The last finished offset per partition, stored once per burst: every
    // record that is waiting already, or DONE_BATCH of them, or what is
    // finished before a record that is not (a campaign chunk held for
    // minutes must not keep the chunks before it unstored).
    let mut last: Vec<(Arc<str>, i32, i64)> = Vec::new();
    while let Some(first) = rx.recv().await {
        let mut next = Some(first);
        let mut count = 0;
        while let Some(p) = next.take() {
            let acked = match &p.acks {
                Some(acks) => {
                    if !acks.is_done() && !last.is_empty() {
                        store(&committer, &last)?;
                        last.clear();
                    }
                    acks.wait().await
                }
                None => Ok(()),
            };
            count += 1;
            // Read under an assignment this member no longer holds (the
            // partition went elsewhere, maybe came back): its next owner
            // reads it; storing its offset now could skip a record.
            let current = rebalances.epoch(&p.topic, p.partition) == p.epoch;
            if matches!(acked, Err(BusError::Revoked)) || !current {
                debug!(%stage, topic = %p.topic, partition = p.partition, offset = p.offset, "partition revoked; left to its next owner");
                if count < DONE_BATCH {
                    next = rx.try_recv().ok();
                }
                continue;
            }
            if let Err(e) = acked {
                // Leave this offset (and every later one) unstored: a restart
                // redoes them.
                if let BusError::Interrupted(_) = e {
                    warn!(%stage, offset = p.offset, partition = p.partition, topic = %p.topic, error = %e, "shutdown left a record unfinished");
                } else {
                    // librdkafka already retried for message.timeout.ms.
                    error!(%stage, error = %e, "produce failed; stopping so that nothing is marked done unsent");
                    metrics()
                        .errors
                        .with_label_values(&[&stage, "produce"])
                        .inc();
                }
                store(&committer, &last)?;
                return Err(e);
            }
            match last
                .iter_mut()
                .find(|(t, part, _)| *part == p.partition && *t == p.topic)
            {
                Some(entry) => entry.2 = p.offset,
                None => last.push((p.topic, p.partition, p.offset)),
            }
            if count < DONE_BATCH {
                next = rx.try_recv().ok();
            }
        }
        store(&committer, &last)?;
        last.clear();
        in_flight.fetch_sub(count, Ordering::AcqRel);
    }
    Ok(())
}

fn store(committer: &Committer, last: &[(Arc<str>, i32, i64)]) -> Result<(), BusError> {
    if last.is_empty() {
        return Ok(());
    }
    let records: Vec<(&str, i32, i64)> = last.iter().map(|(t, p, o)| (&**t, *p, *o)).collect();
    committer.done_many(&records)
}

/// The dead-letter record: the original key and bytes, and why.
pub fn dead_letter(ctx: &StageContext, record: &Record, kind: &str, message: &str) -> Produce {
    let source = Origin {
        topic: &record.topic,
        position: Some((record.partition, record.offset)),
    };
    dead_letter_value(
        &ctx.dlq,
        &ctx.name,
        record.key.clone().unwrap_or_default(),
        record.payload.clone(),
        source,
        kind,
        message,
    )
}

/// Where a dead letter belongs: the topic `smsflow dlq replay` writes it
/// back to, and the record's place there when it was read from it.
pub struct Origin<'a> {
    pub topic: &'a str,
    pub position: Option<(i32, i64)>,
}

/// A dead-letter record for `payload`, which `stage` could not process.
pub fn dead_letter_value(
    dlq: &Arc<str>,
    stage: &str,
    key: Bytes,
    payload: Bytes,
    source: Origin<'_>,
    kind: &str,
    message: &str,
) -> Produce {
    let mut p = Produce::new(dlq.clone(), key, payload);
    let h = |v: &str| Bytes::copy_from_slice(v.as_bytes());
    p.headers = vec![
        ("smsflow.stage".into(), h(stage)),
        ("smsflow.error.kind".into(), h(kind)),
        ("smsflow.error.message".into(), h(message)),
        ("smsflow.source.topic".into(), h(source.topic)),
    ];
    if let Some((partition, offset)) = source.position {
        p.headers.extend([
            ("smsflow.source.partition".into(), h(&partition.to_string())),
            ("smsflow.source.offset".into(), h(&offset.to_string())),
        ]);
    }
    p
}

/// Decode a record's payload; a failure is the record's fault (dead letter).
pub fn decode<T>(codec: &Codec<T>, record: &Record) -> Result<T, HandleError>
where
    T: serde::Serialize + serde::de::DeserializeOwned,
{
    codec
        .decode(&record.payload)
        .map_err(|e| HandleError::input("decode", e.to_string()))
}

/// Encode `value` as a record for `topic`, keyed by its connection.
pub fn encode<T>(
    codec: &Codec<T>,
    topic: &Arc<str>,
    connection: &Connection,
    value: &T,
) -> Result<Produce, HandleError>
where
    T: serde::Serialize + serde::de::DeserializeOwned,
{
    let payload = codec.encode(value).map_err(|e| HandleError::Failed {
        kind: "encode",
        message: e.to_string(),
    })?;
    Ok(Produce::new(
        topic.clone(),
        Bytes::from(connection.key()),
        payload,
    ))
}
