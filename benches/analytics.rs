//! Analytics throughput, in one run, on the same records: N delivery events
//! (200,000 by default) on the in-process bus, each case reading all of
//! them with a consumer group of its own:
//!
//! - **read+discard**: receive and drop (the baseline);
//! - **parquet**, **avro-null**, **avro-deflate**: the `export` stage's
//!   work ([`smsflow::export::Exporter`]): decode check, buffer, and files
//!   written, synced, renamed and listed in the manifest
//!   (`flush_size` 100,000, one partition per 1/8 of the records);
//! - **stats**: the `analytics` stage's work per record: Avro decode, what
//!   the event counts ([`smsflow::analytics::observe`]), the minute, hour
//!   and day windows of each dimension value counted
//!   ([`smsflow::analytics::Aggregator`], one source per partition), and
//!   every 1,024 records the changed windows flushed and encoded as
//!   `sms.stats` records (not produced: the bus's cost is the baseline's).
//!   `benches/stats.rs` measures the stage on the embedded bus too.
//!
//! Each case prints records/s and its ratio to the baseline. Cases are a
//! list of named closures ([`cases`]).
//!
//! ```text
//! cargo bench --bench analytics                    # 200,000 events
//! cargo bench --bench analytics -- --records 1000000
//! ```
//!
//! Run by `cargo test --benches` (no `--bench` argument) it does a small
//! run as a smoke test: it fails when a count is wrong, never on a time.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::ensure;
use bytes::Bytes;
use clap::Parser;
use futures::future::BoxFuture;
use smsflow::analytics::aggregate::Source;
use smsflow::analytics::{observe, Aggregator, Settings as AggregatorSettings};
use smsflow::bus::{Bus, Consumer, Produce, TopicSpec};
use smsflow::config::{Kafka, KafkaMode};
use smsflow::export::{AvroCodec, Exporter, Format, Settings};
use smsflow::message::{Connection, DeliveryEvent, DeliveryStatus, StatsWindow};
use smsflow::schema;

#[derive(Parser, Debug)]
struct Args {
    /// Delivery events on the topic.
    #[arg(long, default_value_t = 200_000)]
    records: usize,
    /// Passed by `cargo bench`; without it (`cargo test --benches`) the run is a smoke test.
    #[arg(long)]
    bench: bool,
}

const TOPIC: &str = "sms.events";
const PARTITIONS: i32 = 8;

/// What a case did: records it handled.
type Run = BoxFuture<'static, anyhow::Result<u64>>;

/// A named case: given its consumer (a group of its own, every record
/// waiting), the record count and a scratch directory, handle them all.
struct Case {
    name: &'static str,
    run: Box<dyn Fn(Consumer, usize, std::path::PathBuf) -> Run>,
}

/// Receive `n` records, calling `each` on every one.
async fn receive(
    consumer: &mut Consumer,
    n: usize,
    mut each: impl FnMut(smsflow::bus::Record) -> anyhow::Result<()>,
) -> anyhow::Result<()> {
    for _ in 0..n {
        let r = tokio::time::timeout(Duration::from_secs(30), consumer.recv()).await??;
        each(r)?;
    }
    Ok(())
}

fn export_case(name: &'static str, format: Format, codec: AvroCodec) -> Case {
    Case {
        name,
        run: Box::new(move |mut consumer, n, dir| {
            Box::pin(async move {
                let mut x = Exporter::new(Settings {
                    dir: dir.clone(),
                    format,
                    avro_codec: codec,
                    flush_size: 100_000,
                    rotate_interval: Duration::from_secs(3600),
                });
                let mut closed = Vec::new();
                receive(&mut consumer, n, |r| {
                    x.push(
                        &r.topic,
                        r.partition,
                        r.offset,
                        Some(0),
                        &r.payload,
                        &mut closed,
                    )?;
                    Ok(())
                })
                .await?;
                x.close_all(&mut closed)?;
                let records: u64 = closed.iter().map(|e| e.records).sum();
                let bytes: u64 = closed.iter().map(|e| e.bytes).sum();
                println!(
                    "    {name}: {} files, {:.1} MB ({:.0} bytes/record)",
                    closed.len(),
                    bytes as f64 / 1e6,
                    bytes as f64 / records.max(1) as f64
                );
                Ok(records)
            })
        }),
    }
}

/// Every case, the baseline first.
fn cases() -> Vec<Case> {
    vec![
        Case {
            name: "read+discard",
            run: Box::new(|mut consumer, n, _| {
                Box::pin(async move {
                    let mut count = 0u64;
                    receive(&mut consumer, n, |r| {
                        std::hint::black_box(&r);
                        count += 1;
                        Ok(())
                    })
                    .await?;
                    Ok(count)
                })
            }),
        },
        export_case("parquet", Format::Parquet, AvroCodec::Null),
        export_case("avro-null", Format::Avro, AvroCodec::Null),
        export_case("avro-deflate", Format::Avro, AvroCodec::Deflate),
        Case {
            name: "stats",
            run: Box::new(|mut consumer, n, _| {
                Box::pin(async move {
                    let mut agg = Aggregator::new(AggregatorSettings {
                        windows: vec![StatsWindow::Minute, StatsWindow::Hour, StatsWindow::Day],
                        grace_ms: 300_000,
                    });
                    let mut sources: Vec<Source> = Vec::new();
                    let (mut count, mut written) = (0u64, 0u64);
                    receive(&mut consumer, n, |r| {
                        let e = schema::event().decode(&r.payload)?;
                        let source = match sources.iter().find(|s| s.1 == r.partition) {
                            Some(s) => s.clone(),
                            None => {
                                sources.push((r.topic.clone(), r.partition));
                                sources[sources.len() - 1].clone()
                            }
                        };
                        agg.record(&source, r.offset, &observe::event(&e));
                        count += 1;
                        if count.is_multiple_of(1024) {
                            for s in agg.flush(0) {
                                written += schema::stats().encode(&s)?.len() as u64;
                            }
                        }
                        Ok(())
                    })
                    .await?;
                    for s in agg.flush(0) {
                        written += schema::stats().encode(&s)?.len() as u64;
                    }
                    ensure!(written > 0, "no statistics written");
                    println!(
                        "    stats: {:.1} MB of sms.stats records",
                        written as f64 / 1e6
                    );
                    Ok(count)
                })
            }),
        },
    ]
}

fn event(i: usize) -> DeliveryEvent {
    let statuses = [
        DeliveryStatus::Sent,
        DeliveryStatus::Delivered,
        DeliveryStatus::Failed,
        DeliveryStatus::Queued,
    ];
    DeliveryEvent {
        message_id: format!("{:08x}-bench-{i}", i * 2_654_435_761 % (1 << 32)),
        connection: Connection::new("kannel", format!("+2547{:08}", i % 50_000)),
        status: statuses[i % 4],
        // A day of events, in order.
        at: 1_772_409_600_000 + (i as i64 * 86_400_000 / 1_000_000),
        provider_id: i.is_multiple_of(2).then(|| format!("kannel-{i}")),
        error: (i % 4 == 2).then(|| "rejected by the SMSC".to_owned()),
        provider_status: None,
        campaign_id: i.is_multiple_of(3).then(|| "spring-promo".to_owned()),
        segments: 1 + (i % 3) as i32,
        app: i.is_multiple_of(5).then(|| "echo".to_owned()),
        accepted_at: 1_772_409_600_000 + (i as i64 * 86_400_000 / 1_000_000) - 800,
        sent_at: 0,
        report: i % 4 == 1,
    }
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> anyhow::Result<()> {
    let mut args = Args::parse();
    if !args.bench {
        args.records = args.records.min(20_000);
    }
    let n = args.records;
    let mut kafka = Kafka::with_mode(KafkaMode::Embedded);
    kafka.partition_capacity = n;
    let topic = TopicSpec {
        name: TOPIC.into(),
        partitions: PARTITIONS,
        replication: 1,
        compacted: false,
        retention: None,
    };
    let bus = Bus::connect(&kafka, &[topic]).await?;
    let cases = cases();
    // Every group joins first: each gets every record.
    let mut consumers = Vec::new();
    for c in &cases {
        consumers.push(bus.consumer(&format!("bench.{}", c.name), &[TOPIC])?);
    }
    let producer = bus.producer()?;
    let topic: Arc<str> = Arc::from(TOPIC);
    let started = Instant::now();
    let mut bytes = 0;
    for i in 0..n {
        let e = event(i);
        let payload = schema::event().encode(&e)?;
        bytes += payload.len();
        producer
            .send(Produce::new(
                topic.clone(),
                Bytes::from(e.connection.key()),
                payload,
            ))
            .await?;
    }
    println!(
        "analytics: {n} delivery events ({:.0} bytes each) on {PARTITIONS} partitions, produced in {:.2} s; rayon threads: {}",
        bytes as f64 / n as f64,
        started.elapsed().as_secs_f64(),
        rayon::current_num_threads()
    );
    let dir = tempfile::tempdir()?;
    let mut baseline = None;
    for (case, consumer) in cases.iter().zip(consumers) {
        let out = dir.path().join(case.name);
        let started = Instant::now();
        let handled = (case.run)(consumer, n, out.clone()).await?;
        let took = started.elapsed().as_secs_f64();
        ensure!(
            handled == n as u64,
            "{}: {handled} records of {n}",
            case.name
        );
        let rate = n as f64 / took;
        let base = *baseline.get_or_insert(rate);
        println!(
            "{:<14} {:>7.3} s  {:>10.0} records/s  {:>5.2}x the time of read+discard",
            case.name,
            took,
            rate,
            base / rate
        );
        remove(&out);
    }
    Ok(())
}

fn remove(dir: &Path) {
    let _ = std::fs::remove_dir_all(dir);
}
