//! End to end: a load generator → the whole `pipelines/loadtest.yaml`
//! pipeline (router in → echo → router out → discard sink), on the embedded
//! bus (in memory, and durable: `data_dir` in a temporary directory,
//! `fsync: always`) and on a real Kafka-compatible broker (tansu, started here on a free
//! loopback port, one fresh broker per run), and what the Kafka hops alone
//! cost on the same broker.
//!
//! ```text
//! cargo bench --bench e2e                    # everything, full size
//! cargo bench --bench e2e -- --quick         # a smoke run, well under a minute
//! cargo bench --bench e2e -- --bus kafka --part pipeline,ceiling --messages 300000 --rounds 5
//! cargo bench --bench e2e -- --bus embedded,durable --part pipeline
//! ```
//!
//! Parts (`--part`):
//! - `pipeline`: sustained messages/s, latency from the generator's produce
//!   call to the sink's send call (p50/p99/max), peak RSS and RSS as the run
//!   goes on, CPU seconds per million messages (this process; and the
//!   broker's, separately);
//! - `ceiling` (Kafka only): plain rdkafka, a producer → consume/produce
//!   relays → a consumer over the same topics, partitions, keys and payloads,
//!   and the pipeline as a fraction of it;
//! - `http`: the discard backend's GET inbound (`/backend/load/?identity=..&text=..`,
//!   answered only once the bus stored the message) under `wrk`;
//! - `latency`: 1,000 messages/s offered through that HTTP ingress (200
//!   with `--quick`), latency from the request to the sink's send call.
//!
//! Run by `cargo test --benches` (no `--bench` argument), it does the quick
//! run as a smoke test: it fails when a message goes missing or a tool is not
//! there, never on a number. (A debug build takes about 1,200 requests/s on
//! 2 cores, so the quick run offers 200 a second: 1,000 would be near what
//! it can take, and the ingress rightly refuses what it cannot.)
//!
//! The files: `args` (the command line), `run_broker` (tansu or `--brokers`),
//! `load` (the generator and what the sink saw), one file per part
//! (`pipeline`, `ceiling`, `http` for `http` and `latency`), `measure`
//! (CPU, RSS, tools).

mod args;
#[path = "../../tests/common/broker.rs"]
#[allow(dead_code)]
mod broker;
mod ceiling;
mod http;
mod load;
mod measure;
mod pipeline;
mod run_broker;
#[path = "../../tests/common/tools.rs"]
#[allow(dead_code, unused_macros)]
mod tools;

use std::fmt::Write as _;

/// The allocator the `smsflow` command uses, so the numbers are the command's.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

use clap::Parser;
use smsflow::config::{Chain, KafkaMode, Pipeline};

use args::{Args, BusKind, Part};
use ceiling::ceiling;
use http::{http_ingress, moderate_latency};
use pipeline::pipeline;
use run_broker::RunBroker;

fn main() -> anyhow::Result<()> {
    let mut args = Args::parse();
    if !args.bench {
        args.quick = true;
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let mut report = Report::default();
    for bus in args.bus.clone() {
        rt.block_on(run_bus(&args, bus, &mut report))?;
    }
    println!("\n{}", report.0);
    Ok(())
}

#[derive(Default)]
struct Report(String);

impl Report {
    fn line(&mut self, line: String) {
        println!("{line}");
        self.0.push_str(&line);
        self.0.push('\n');
    }
}

async fn run_bus(args: &Args, bus: BusKind, report: &mut Report) -> anyhow::Result<()> {
    let n = args
        .messages
        .unwrap_or(if args.quick { 20_000 } else { 1_000_000 });
    let seconds = args.seconds.unwrap_or(if args.quick { 3 } else { 15 });
    let chains: &[bool] = if args.unchained {
        &[true, false]
    } else {
        &[true]
    };
    for &chained in chains {
        let label = format!("{bus:?}{}", if chained { "" } else { ", unchained" }).to_lowercase();
        let rounds = args.rounds.unwrap_or(if args.quick { 1 } else { 3 }).max(1);
        let mut pipeline_rates = Vec::new();
        let mut ceiling_rates = Vec::new();
        // Interleaved, each measured run on a fresh broker (an empty store):
        // both see the same volume and the same broker state.
        for round in 1..=rounds {
            let mut pipeline_rate = None;
            if args.part.contains(&Part::Pipeline) {
                let broker = (bus == BusKind::Kafka).then(|| RunBroker::start(args));
                let (p, _dir) = loadtest(args, bus, broker.as_ref(), chained)?;
                let r = pipeline(p, n, args.window, broker.as_ref()).await?;
                pipeline_rate = Some(r.rate);
                pipeline_rates.push(r.rate);
                report.line(format!("pipeline [{label}] round {round}/{rounds}: {r}"));
            }
            if bus == BusKind::Kafka && args.part.contains(&Part::Ceiling) {
                let broker = RunBroker::start(args);
                let hops = if chained { 2 } else { 4 };
                let rate = ceiling(&broker.brokers, n, hops).await?;
                ceiling_rates.push(rate);
                let mut line = format!(
                    "ceiling [{label}] round {round}/{rounds}: plain rdkafka over {hops} topics: {n} messages, {rate:.0} msg/s"
                );
                if let Some(p) = pipeline_rate {
                    let _ = write!(line, "; pipeline = {:.0}% of it", 100.0 * p / rate);
                }
                report.line(line);
            }
        }
        let mut summary = Vec::new();
        if let Some(s) = Spread::of(&mut pipeline_rates) {
            summary.push(format!("pipeline {s}"));
        }
        if let Some(s) = Spread::of(&mut ceiling_rates) {
            summary.push(format!("ceiling {s}"));
        }
        if let (Some(p), Some(c)) = (
            Spread::of(&mut pipeline_rates),
            Spread::of(&mut ceiling_rates),
        ) {
            summary.push(format!(
                "pipeline = {:.0}% of the ceiling (ratio of the medians)",
                100.0 * p.median / c.median
            ));
        }
        if !summary.is_empty() {
            report.line(format!(
                "summary [{label}] over {rounds} round(s), msg/s median (min–max): {}",
                summary.join("; ")
            ));
        }
    }
    if args.part.contains(&Part::Http) {
        for &connections in &args.connections {
            let broker = (bus == BusKind::Kafka).then(|| RunBroker::start(args));
            let (p, _dir) = loadtest(args, bus, broker.as_ref(), true)?;
            let line = http_ingress(p, seconds, connections).await?;
            report.line(format!("http [{bus:?}] {line}").to_lowercase());
        }
    }
    if args.part.contains(&Part::Latency) {
        let broker = (bus == BusKind::Kafka).then(|| RunBroker::start(args));
        let (p, _dir) = loadtest(args, bus, broker.as_ref(), true)?;
        let rate = if args.quick { 200 } else { 1000 };
        let line = moderate_latency(p, seconds, rate).await?;
        report.line(format!("latency [{bus:?}] {line}").to_lowercase());
    }
    Ok(())
}

/// The median and the range of a few rates.
struct Spread {
    median: f64,
    min: f64,
    max: f64,
}

impl Spread {
    fn of(rates: &mut [f64]) -> Option<Spread> {
        if rates.is_empty() {
            return None;
        }
        rates.sort_by(f64::total_cmp);
        let mid = rates.len() / 2;
        let median = if rates.len().is_multiple_of(2) {
            (rates[mid - 1] + rates[mid]) / 2.0
        } else {
            rates[mid]
        };
        Some(Spread {
            median,
            min: rates[0],
            max: rates[rates.len() - 1],
        })
    }
}

impl std::fmt::Display for Spread {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:.0} ({:.0}–{:.0})", self.median, self.min, self.max)
    }
}

/// `pipelines/loadtest.yaml` on `bus` (and the durable bus's directory).
fn loadtest(
    args: &Args,
    bus: BusKind,
    broker: Option<&RunBroker>,
    chained: bool,
) -> anyhow::Result<(Pipeline, Option<tempfile::TempDir>)> {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/pipelines/loadtest.yaml");
    let mut p = smsflow::topology::load_file(std::path::Path::new(path))
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    p.http.listen = "127.0.0.1:0".parse()?;
    if !chained {
        p.chain = Chain::Every(false);
    }
    if let (BusKind::Kafka, Some(b)) = (bus, broker) {
        p.kafka.mode = KafkaMode::Kafka;
        p.kafka.brokers = Some(b.brokers.clone());
        p.kafka.group = format!("bench-{}", uuid::Uuid::new_v4().simple());
        p.kafka.config.extend(args.settings.iter().cloned());
    }
    // Removed when the caller drops it, after the run.
    let dir = (bus == BusKind::Durable)
        .then(tempfile::tempdir)
        .transpose()?;
    if let Some(d) = &dir {
        p.kafka.data_dir = Some(d.path().join("bus"));
    }
    Ok((p, dir))
}

/// What `broker.rs` needs from its parent module in the tests.
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free loopback port")
}
