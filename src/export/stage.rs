//! The `export` stage: reads its topics as a member of `<group>.export`,
//! hands each record to the [`Exporter`], dead-letters poison, closes
//! files as they fill or age, and commits a partition's offsets only once
//! the file holding them is in place and in the manifest.
//!
//! It follows the group's assignment: a record is exported under the
//! assignment it was read under; a partition given to this member is
//! recovered from the directory first (whatever another member or an
//! earlier life exported counts); one taken away loses its open file,
//! whose records its next owner reads again from the committed offset.

use std::time::{Duration, Instant};

use tracing::{error, info, warn};

use super::manifest::Entry;
use super::metrics::{closed as count_closed, export_metrics};
use super::writer::{ExportError, Exporter, Pushed};
use crate::bus::{BusError, Committer, Consumer, Producer, Rebalances, Record};
use crate::metrics::metrics;
use crate::stage::{dead_letter, StageContext, StageControl};

/// How often open files are checked against `rotate_interval`.
const TICK: Duration = Duration::from_millis(500);

fn storage(e: ExportError) -> BusError {
    BusError::Storage(e.to_string())
}

/// Run `f` (which may write a file) off the async workers when the
/// runtime has several.
fn blocking<T>(f: impl FnOnce() -> T) -> T {
    match tokio::runtime::Handle::try_current().map(|h| h.runtime_flavor()) {
        Ok(tokio::runtime::RuntimeFlavor::MultiThread) => tokio::task::block_in_place(f),
        _ => f(),
    }
}

/// Commit the offsets of `closed` files whose partitions this member
/// still holds.
fn commit(
    committer: &Committer,
    rebalances: &Rebalances,
    closed: &mut Vec<Entry>,
) -> Result<(), BusError> {
    for e in closed.drain(..) {
        count_closed(&e);
        info!(file = %e.file, records = e.records, bytes = e.bytes, "export file closed");
        if rebalances.epoch(&e.topic, e.partition).is_some() {
            committer.done(&e.topic, e.partition, e.last_offset)?;
        }
    }
    Ok(())
}

/// Run the stage until drained or stopped.
pub async fn run(
    ctx: StageContext,
    mut consumer: Consumer,
    producer: Producer,
    mut exporter: Exporter,
    control: StageControl,
) -> Result<(), BusError> {
    let m = metrics();
    let received = m.received.with_label_values(&[&ctx.name]);
    m.up.with_label_values(&[&ctx.name]).set(1);
    let _ = export_metrics();
    consumer.ignore_headers();
    let committer = consumer.committer();
    let rebalances = consumer.rebalances();
    let mut closed = Vec::new();
    let mut tick = tokio::time::interval(TICK.min(exporter.settings().rotate_interval));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut result = Ok(());
    loop {
        let record: Record = tokio::select! {
            biased;
            _ = control.stop.cancelled() => break,
            _ = control.drain.cancelled() => {
                // Close what is open, so that a graceful stop leaves
                // nothing to read again.
                let r = blocking(|| exporter.close_all(&mut closed)).map_err(storage);
                result = r.and_then(|_| commit(&committer, &rebalances, &mut closed));
                break;
            }
            _ = tick.tick() => {
                let r = blocking(|| {
                    exporter.tick(Instant::now(), |t, p| rebalances.epoch(t, p), &mut closed)
                });
                if let Err(e) = r.map_err(storage).and_then(|_| commit(&committer, &rebalances, &mut closed)) {
                    result = Err(e);
                    break;
                }
                continue;
            }
            r = consumer.recv() => match r {
                Ok(r) => r,
                Err(e) if e.fatal() => {
                    error!(stage = %ctx.name, error = %e, "stopping the stage: the bus cannot be read");
                    result = Err(e);
                    break;
                }
                Err(e) => {
                    warn!(stage = %ctx.name, error = %e, "receive error; retrying");
                    m.errors.with_label_values(&[&ctx.name, "bus"]).inc();
                    tokio::time::sleep(Duration::from_millis(200)).await;
                    continue;
                }
            },
        };
        received.inc();
        // Read under an assignment this member no longer holds: its next
        // owner reads it.
        let Some(epoch) = rebalances.epoch(&record.topic, record.partition) else {
            continue;
        };
        let pushed = blocking(|| {
            exporter.push(
                &record.topic,
                record.partition,
                record.offset,
                Some(epoch),
                &record.payload,
                &mut closed,
            )
        });
        match pushed {
            Ok(Pushed::Poison(reason)) => {
                warn!(stage = %ctx.name, topic = %record.topic, partition = record.partition, offset = record.offset, %reason, "not an smsflow record; dead-lettering it");
                export_metrics()
                    .poison
                    .with_label_values(&[&record.topic])
                    .inc();
                m.errors.with_label_values(&[&ctx.name, "decode"]).inc();
                m.dead_lettered.with_label_values(&[&ctx.name]).inc();
                let letter = dead_letter(&ctx, &record, "decode", &reason);
                if let Err(e) = producer.send_and_wait(letter).await {
                    error!(stage = %ctx.name, error = %e, "cannot dead-letter a poison record; stopping");
                    result = Err(e);
                    break;
                }
            }
            Ok(Pushed::Buffered | Pushed::Skipped) => {}
            Err(e) => {
                error!(stage = %ctx.name, error = %e, "stopping the stage: cannot write the export");
                result = Err(storage(e));
                break;
            }
        }
        if let Err(e) = commit(&committer, &rebalances, &mut closed) {
            result = Err(e);
            break;
        }
    }
    let open = exporter.buffered();
    if open > 0 {
        info!(stage = %ctx.name, records = open, "stopping with records in open files; they are read again after a restart");
    }
    m.up.with_label_values(&[&ctx.name]).set(0);
    let closed_consumer = consumer.close().await;
    result.and(closed_consumer)
}

/// The partitions of an assignment that never changes (a one-off export
/// reading partitions it was given).
pub fn fixed_epoch(_: &str, _: i32) -> Option<u64> {
    Some(0)
}
