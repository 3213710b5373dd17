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
//! cargo bench --bench e2e -- --bus kafka --part pipeline,ceiling --messages 2000000
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
//! - `latency`: 1,000 messages/s offered through that HTTP ingress, latency
//!   from the request to the sink's send call.
//!
//! Run by `cargo test --benches` (no `--bench` argument), it does the quick
//! run as a smoke test: it fails when a message goes missing or a tool is not
//! there, never on a number.

#[path = "../tests/common/broker.rs"]
#[allow(dead_code)]
mod broker;
#[path = "../tests/common/tools.rs"]
#[allow(dead_code, unused_macros)]
mod tools;

use std::fmt::Write as _;
use std::path::PathBuf;
use std::process::Command;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{bail, ensure, Context};
use bytes::Bytes;
use clap::{Parser, ValueEnum};
use hdrhistogram::Histogram;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::producer::{BaseRecord, DefaultProducerContext, Producer as _, ThreadedProducer};
use rdkafka::Message as _;
use smsflow::backends::discard::SendHook;
use smsflow::bus::Produce;
use smsflow::config::{Chain, KafkaMode, Pipeline};
use smsflow::message::{Connection, InboundMessage, OutboundMessage};
use smsflow::schema;
use smsflow::topology::{Running, Topology};
use tokio::sync::{Notify, Semaphore};

/// Distinct phone numbers the load comes from.
const PHONES: u64 = 10_000;
/// Latencies are recorded up to this many microseconds (10 minutes).
const MAX_LATENCY_US: u64 = 600_000_000;
/// The discard backend of `pipelines/loadtest.yaml`.
const BACKEND: &str = "load";

#[derive(Parser, Debug)]
#[command(about = "End-to-end benchmark of smsflow")]
struct Args {
    /// Smoke run: small counts, well under a minute (also what `cargo test --benches` runs).
    #[arg(long)]
    quick: bool,
    /// Buses to run on.
    #[arg(long, value_delimiter = ',', default_value = "embedded,durable,kafka")]
    bus: Vec<BusKind>,
    /// Use this Kafka cluster instead of starting tansu (`host:port`).
    #[arg(long)]
    brokers: Option<String>,
    /// Parts to run.
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "pipeline,ceiling,http,latency"
    )]
    part: Vec<Part>,
    /// Messages per pipeline and ceiling run. Default 1,000,000 (20,000 with --quick).
    #[arg(long)]
    messages: Option<u64>,
    /// Also run the pipeline unchained: echo and the outgoing router as stages of their own.
    #[arg(long)]
    unchained: bool,
    /// Messages the generator keeps in flight (produced, not yet at the sink).
    #[arg(long, default_value_t = 20_000)]
    window: usize,
    /// Seconds of `wrk` for the HTTP part; seconds at 1,000/s for the latency part.
    #[arg(long)]
    seconds: Option<u64>,
    /// librdkafka settings for the pipeline's clients (`key=value`, repeatable),
    /// as `kafka.config` in a pipeline file: `--set linger.ms=1`.
    #[arg(long = "set", value_parser = parse_setting)]
    settings: Vec<(String, String)>,
    /// Passed by `cargo bench`; without it this is a test run (quick).
    #[arg(long, hide = true)]
    bench: bool,
}

fn parse_setting(s: &str) -> Result<(String, String), String> {
    s.split_once('=')
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .ok_or_else(|| format!("{s:?}: expected key=value"))
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum BusKind {
    /// The embedded bus in memory.
    Embedded,
    /// The embedded bus on disk (a fresh temporary `data_dir`).
    Durable,
    Kafka,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum Part {
    Pipeline,
    Ceiling,
    Http,
    Latency,
}

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

/// A broker for one run: the one given, or a fresh tansu.
struct RunBroker {
    brokers: String,
    tansu: Option<broker::Broker>,
}

impl RunBroker {
    fn start(args: &Args) -> RunBroker {
        match &args.brokers {
            Some(b) => RunBroker {
                brokers: b.clone(),
                tansu: None,
            },
            None => {
                let t = broker::Broker::start();
                RunBroker {
                    brokers: t.brokers(),
                    tansu: Some(t),
                }
            }
        }
    }

    /// The broker's CPU seconds so far (a tansu started here only).
    fn cpu(&self) -> Option<f64> {
        self.tansu.as_ref()?.pid().and_then(process_cpu)
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
        let mut pipeline_rate = None;
        if args.part.contains(&Part::Pipeline) {
            let broker = (bus == BusKind::Kafka).then(|| RunBroker::start(args));
            let (p, _dir) = loadtest(args, bus, broker.as_ref(), chained)?;
            let r = pipeline(p, n, args.window, broker.as_ref()).await?;
            pipeline_rate = Some(r.rate);
            report.line(format!("pipeline [{label}] {r}"));
        }
        if bus == BusKind::Kafka && args.part.contains(&Part::Ceiling) {
            let broker = RunBroker::start(args);
            let hops = if chained { 2 } else { 4 };
            let rate = ceiling(&broker.brokers, n, hops).await?;
            let mut line = format!(
                "ceiling [{label}] plain rdkafka over {hops} topics: {n} messages, {rate:.0} msg/s"
            );
            if let Some(p) = pipeline_rate {
                let _ = write!(line, "; pipeline = {:.0}% of it", 100.0 * p / rate);
            }
            report.line(line);
        }
    }
    if args.part.contains(&Part::Http) {
        let broker = (bus == BusKind::Kafka).then(|| RunBroker::start(args));
        let (p, _dir) = loadtest(args, bus, broker.as_ref(), true)?;
        let line = http_ingress(p, seconds).await?;
        report.line(format!("http [{bus:?}] {line}").to_lowercase());
    }
    if args.part.contains(&Part::Latency) {
        let broker = (bus == BusKind::Kafka).then(|| RunBroker::start(args));
        let (p, _dir) = loadtest(args, bus, broker.as_ref(), true)?;
        let line = moderate_latency(p, seconds).await?;
        report.line(format!("latency [{bus:?}] {line}").to_lowercase());
    }
    Ok(())
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

/// What the discard sink saw: how many, and the latency of the stamped ones.
struct Observed {
    epoch: Instant,
    seen: AtomicU64,
    /// Microseconds from the stamp (the text after `@`) to the sink.
    latency: Mutex<Histogram<u64>>,
    /// The generator's window: a permit back per message seen.
    window: Semaphore,
    target: AtomicU64,
    all_seen: Notify,
}

impl Observed {
    fn new(window: usize) -> Arc<Observed> {
        Arc::new(Observed {
            epoch: Instant::now(),
            seen: AtomicU64::new(0),
            latency: Mutex::new(
                Histogram::new_with_bounds(1, MAX_LATENCY_US, 3).expect("valid bounds"),
            ),
            window: Semaphore::new(window),
            target: AtomicU64::new(u64::MAX),
            all_seen: Notify::new(),
        })
    }

    fn micros(&self) -> u64 {
        self.epoch.elapsed().as_micros() as u64
    }

    /// The text of a stamped message: `echo @<micros now>`.
    fn stamp(&self) -> String {
        format!("echo @{}", self.micros())
    }

    fn hook(self: &Arc<Self>) -> SendHook {
        let me = self.clone();
        Arc::new(move |msg: &OutboundMessage| {
            if let Some(Ok(sent)) = msg.text.strip_prefix('@').map(str::parse::<u64>) {
                let us = me.micros().saturating_sub(sent);
                let mut h = me.latency.lock().unwrap_or_else(|p| p.into_inner());
                // Past the bounds (10 minutes) counts as the bound.
                h.saturating_record(us.clamp(1, MAX_LATENCY_US));
            }
            me.window.add_permits(1);
            if me.seen.fetch_add(1, Ordering::AcqRel) + 1 >= me.target.load(Ordering::Acquire) {
                me.all_seen.notify_one();
            }
        })
    }

    /// Wait until the sink saw `n` messages in all; error after `limit`.
    async fn wait_for(&self, n: u64, limit: Duration) -> anyhow::Result<()> {
        self.target.store(n, Ordering::Release);
        let deadline = tokio::time::Instant::now() + limit;
        while self.seen.load(Ordering::Acquire) < n {
            if tokio::time::timeout_at(deadline, self.all_seen.notified())
                .await
                .is_err()
            {
                bail!(
                    "the sink saw {} of {n} messages within {limit:?}",
                    self.seen.load(Ordering::Acquire)
                );
            }
        }
        Ok(())
    }

    fn percentiles(&self) -> String {
        let h = self.latency.lock().unwrap_or_else(|p| p.into_inner());
        let ms = |us: u64| us as f64 / 1000.0;
        format!(
            "p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms",
            ms(h.value_at_quantile(0.50)),
            ms(h.value_at_quantile(0.99)),
            ms(h.max())
        )
    }
}

async fn start(p: Pipeline, observed: &Arc<Observed>, http: bool) -> anyhow::Result<Running> {
    Topology::new(p)?
        .with_send_hook(BACKEND, observed.hook())
        .start(None, http)
        .await
}

struct PipelineResult {
    n: u64,
    secs: f64,
    rate: f64,
    latency: String,
    window: usize,
    peak_rss_mb: f64,
    rss_by_tenth: Vec<f64>,
    cpu_per_million: f64,
    broker_cpu_per_million: Option<f64>,
}

impl std::fmt::Display for PipelineResult {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} messages in {:.1} s: {:.0} msg/s; produce→sink {} (window {}); peak RSS {:.0} MB (by tenths: {}); CPU {:.1} s per million messages",
            self.n,
            self.secs,
            self.rate,
            self.latency,
            self.window,
            self.peak_rss_mb,
            self.rss_by_tenth
                .iter()
                .map(|m| format!("{m:.0}"))
                .collect::<Vec<_>>()
                .join(" "),
            self.cpu_per_million
        )?;
        if let Some(b) = self.broker_cpu_per_million {
            write!(f, " (+ broker {b:.1} s)")?;
        }
        Ok(())
    }
}

/// Generate `n` messages as fast as the pipeline takes them (at most
/// `window` in flight) and measure until the sink saw the last one.
async fn pipeline(
    p: Pipeline,
    n: u64,
    window: usize,
    broker: Option<&RunBroker>,
) -> anyhow::Result<PipelineResult> {
    let observed = Observed::new(window);
    let topic: Arc<str> = Arc::from(p.topics.inbound.as_str());
    let running = start(p, &observed, false).await?;
    // Warm up (connections, group joins) before measuring.
    let producer = running.bus().producer()?;
    for i in 0..100 {
        producer.send(inbound(&topic, i, "echo warm up")).await?;
    }
    observed.wait_for(100, Duration::from_secs(60)).await?;
    let base = observed.seen.load(Ordering::Acquire);

    let rss = RssSampler::start();
    let cpu0 = self_cpu();
    let broker_cpu0 = broker.and_then(RunBroker::cpu);
    let started = Instant::now();
    let mut rss_by_tenth = Vec::new();
    let gen_observed = observed.clone();
    let topic = topic.clone();
    let generator = tokio::spawn(async move {
        for i in 0..n {
            gen_observed
                .window
                .acquire()
                .await
                .expect("the window is never closed")
                .forget();
            let text = gen_observed.stamp();
            // Acknowledgements are not awaited one by one: the window
            // bounds what is in flight, and the sink's count proves delivery.
            producer.send(inbound(&topic, i, &text)).await?;
        }
        anyhow::Ok(())
    });
    for tenth in 1..=10u64 {
        let limit = Duration::from_secs(60 + n / 1000);
        observed.wait_for(base + n * tenth / 10, limit).await?;
        rss_by_tenth.push(rss.current_mb());
    }
    let secs = started.elapsed().as_secs_f64();
    generator.await??;
    let cpu = self_cpu() - cpu0;
    let broker_cpu = broker
        .and_then(RunBroker::cpu)
        .zip(broker_cpu0)
        .map(|(a, b)| a - b);
    let peak_rss_mb = rss.stop();
    running.shutdown().await?;
    let millions = n as f64 / 1e6;
    Ok(PipelineResult {
        n,
        secs,
        rate: n as f64 / secs,
        latency: observed.percentiles(),
        window,
        peak_rss_mb,
        rss_by_tenth,
        cpu_per_million: cpu / millions,
        broker_cpu_per_million: broker_cpu.map(|c| c / millions),
    })
}

/// The `i`-th generated message, from one of [`PHONES`] numbers.
fn inbound(topic: &Arc<str>, i: u64, text: &str) -> Produce {
    let msg = InboundMessage::new(Connection::new(BACKEND, phone(i)), text);
    let payload = schema::inbound()
        .encode(&msg)
        .expect("an InboundMessage always encodes");
    Produce::new(topic.clone(), Bytes::from(msg.connection.key()), payload)
}

fn phone(i: u64) -> String {
    format!("+1555{:07}", i % PHONES)
}

/// Plain rdkafka over `hops` topics: a producer writes `n` records (the
/// same keys and Avro payload size as the pipeline's) to the first topic,
/// a consume → produce relay per further topic, a consumer reads the last.
/// Returns messages per second, first produce to last consume.
async fn ceiling(brokers: &str, n: u64, hops: usize) -> anyhow::Result<f64> {
    let topics: Vec<String> = (0..hops).map(|i| format!("ceiling.{i}")).collect();
    let mut base = ClientConfig::new();
    // The settings smsflow's Kafka bus uses (src/bus/kafka.rs).
    base.set("bootstrap.servers", brokers)
        .set("fetch.wait.max.ms", "20");
    let admin: AdminClient<DefaultClientContext> = base.create()?;
    let new: Vec<NewTopic<'_>> = topics
        .iter()
        .map(|t| NewTopic::new(t, 8, TopicReplication::Fixed(1)))
        .collect();
    for r in admin
        .create_topics(
            &new,
            &AdminOptions::new().operation_timeout(Some(Duration::from_secs(30))),
        )
        .await?
    {
        if let Err((t, code)) = r {
            ensure!(
                code == RDKafkaErrorCode::TopicAlreadyExists,
                "create {t}: {code}"
            );
        }
    }
    let producer_config = {
        let mut c = base.clone();
        c.set("linger.ms", "5").set("partitioner", "murmur2_random");
        c
    };
    let consumer_config = |group: &str| {
        let mut c = base.clone();
        c.set("group.id", group)
            .set("auto.offset.reset", "earliest")
            .set("partition.assignment.strategy", "cooperative-sticky");
        c
    };
    let stop = Arc::new(AtomicBool::new(false));
    let run = uuid::Uuid::new_v4().simple().to_string();
    let mut threads = Vec::new();
    for pair in topics.windows(2) {
        let consumer: BaseConsumer =
            consumer_config(&format!("{run}.relay.{}", pair[0])).create()?;
        consumer.subscribe(&[&pair[0]])?;
        let producer: ThreadedProducer<DefaultProducerContext> = producer_config.create()?;
        let to = pair[1].clone();
        let stop = stop.clone();
        threads.push(std::thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                let Some(Ok(m)) = consumer.poll(Duration::from_millis(100)) else {
                    continue;
                };
                let rec = BaseRecord::to(&to)
                    .key(m.key().unwrap_or_default())
                    .payload(m.payload().unwrap_or_default());
                if let Err(e) = send_waiting(&producer, rec) {
                    // The last consumer then comes up short and says so.
                    eprintln!("ceiling relay to {to}: {e}");
                    break;
                }
            }
            let _ = producer.flush(Duration::from_secs(10));
        }));
    }
    let last: BaseConsumer = consumer_config(&format!("{run}.last")).create()?;
    last.subscribe(&[topics.last().context("at least one hop")?.as_str()])?;
    // Join the groups before producing (the pipeline's stages joined before its clock started too).
    let join_deadline = Instant::now() + Duration::from_secs(30);
    while last.assignment()?.count() == 0 {
        ensure!(
            Instant::now() < join_deadline,
            "the ceiling consumer did not join"
        );
        last.poll(Duration::from_millis(100));
    }
    let payload = schema::inbound()
        .encode(&InboundMessage::new(
            Connection::new(BACKEND, phone(0)),
            "echo @1234567890",
        ))
        .expect("encodes");
    let keys: Vec<String> = (0..PHONES)
        .map(|i| format!("{BACKEND}:{}", phone(i)))
        .collect();
    let producer: ThreadedProducer<DefaultProducerContext> = producer_config.create()?;
    let first = topics[0].clone();
    let started = Instant::now();
    let gen = std::thread::spawn(move || {
        for i in 0..n {
            let rec = BaseRecord::to(&first)
                .key(keys[(i % PHONES) as usize].as_bytes())
                .payload(payload.as_slice());
            if let Err(e) = send_waiting(&producer, rec) {
                eprintln!("ceiling produce: {e}");
                break;
            }
        }
        let _ = producer.flush(Duration::from_secs(30));
    });
    let count = tokio::task::spawn_blocking(move || {
        let mut count = 0;
        let deadline = Instant::now() + Duration::from_secs(60 + n / 1000);
        while count < n && Instant::now() < deadline {
            if let Some(Ok(_)) = last.poll(Duration::from_millis(100)) {
                count += 1;
            }
        }
        count
    })
    .await?;
    let secs = started.elapsed().as_secs_f64();
    stop.store(true, Ordering::Relaxed);
    let _ = gen.join();
    for t in threads {
        let _ = t.join();
    }
    ensure!(
        count == n,
        "the ceiling run received {count} of {n} records"
    );
    Ok(n as f64 / secs)
}

/// Enqueue `rec`, waiting while librdkafka's queue is full.
fn send_waiting(
    producer: &ThreadedProducer<DefaultProducerContext>,
    mut rec: BaseRecord<'_, [u8], [u8]>,
) -> Result<(), KafkaError> {
    loop {
        match producer.send(rec) {
            Ok(()) => return Ok(()),
            Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), r)) => {
                rec = r;
                std::thread::sleep(Duration::from_millis(1));
            }
            Err((e, _)) => return Err(e),
        }
    }
}

/// `wrk` against the discard backend's GET inbound for `seconds`.
async fn http_ingress(p: Pipeline, seconds: u64) -> anyhow::Result<String> {
    let wrk = which("wrk").context(
        "wrk is not installed: `apt-get install wrk` (scripts/bench and scripts/test install it)",
    )?;
    let observed = Observed::new(usize::MAX >> 4);
    let running = start(p, &observed, true).await?;
    let addr = running
        .http_addr()
        .context("the HTTP server is not listening")?;
    let dir = tempfile::tempdir()?;
    let script = dir.path().join("inbound.lua");
    std::fs::write(
        &script,
        format!(
            r#"-- a different phone number per request, Kannel-style GET
local n = 0
request = function()
  n = n + 1
  return wrk.format("GET", string.format("/backend/{BACKEND}/?identity=%%2B1555%07d&text=echo+hi", n % {PHONES}))
end
"#
        ),
    )?;
    let out = tokio::process::Command::new(wrk)
        .args(["-t1", "-c64", &format!("-d{seconds}s"), "--latency", "-s"])
        .arg(&script)
        .arg(format!("http://{addr}/"))
        .output()
        .await?;
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    ensure!(
        out.status.success(),
        "wrk failed: {text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let field = |prefix: &str| -> Option<String> {
        text.lines()
            .map(str::trim)
            .find_map(|l| l.strip_prefix(prefix))
            .map(|v| v.trim().to_owned())
    };
    let rate: f64 = field("Requests/sec:")
        .and_then(|v| v.parse().ok())
        .with_context(|| format!("no Requests/sec in wrk's output:\n{text}"))?;
    let total: u64 = text
        .lines()
        .find_map(|l| {
            l.trim()
                .split_once(" requests in ")
                .map(|(n, _)| n.trim().parse().ok())
        })
        .flatten()
        .with_context(|| format!("no request count in wrk's output:\n{text}"))?;
    let refused: u64 = field("Non-2xx or 3xx responses:")
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    let p99 = field("99%").unwrap_or_default();
    // Every request answered OK must reach the sink.
    observed
        .wait_for(total - refused, Duration::from_secs(120))
        .await?;
    running.shutdown().await?;
    ensure!(
        refused == 0,
        "{refused} of {total} requests were refused:\n{text}"
    );
    Ok(format!(
        "wrk -t1 -c64 {seconds}s: {total} requests, {rate:.0} req/s, p99 {p99}, all {total} at the sink"
    ))
}

/// 1,000 messages per second through the HTTP ingress for `seconds`;
/// latency from sending the request to the sink's send call.
async fn moderate_latency(p: Pipeline, seconds: u64) -> anyhow::Result<String> {
    let observed = Observed::new(usize::MAX >> 4);
    let running = start(p, &observed, true).await?;
    let addr = running
        .http_addr()
        .context("the HTTP server is not listening")?;
    let client = reqwest::Client::new();
    let url = format!("http://{addr}/backend/{BACKEND}/");
    // Warm up: connections, group joins.
    for i in 0..50 {
        let phone = phone(i);
        let r = client
            .get(&url)
            .query(&[("identity", phone.as_str()), ("text", "echo warm up")])
            .send()
            .await?;
        ensure!(r.status().is_success(), "warm-up request: {}", r.status());
    }
    observed.wait_for(50, Duration::from_secs(60)).await?;
    observed
        .latency
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .reset();
    let n = seconds * 1000;
    let mut tick = tokio::time::interval(Duration::from_millis(1));
    let mut requests = tokio::task::JoinSet::new();
    for i in 0..n {
        tick.tick().await;
        let (client, url, text) = (client.clone(), url.clone(), observed.stamp());
        requests.spawn(async move {
            let phone = phone(i);
            client
                .get(&url)
                .query(&[("identity", phone.as_str()), ("text", text.as_str())])
                .send()
                .await
                .map(|r| r.status().is_success())
        });
    }
    let mut failed = 0;
    while let Some(r) = requests.join_next().await {
        if !matches!(r, Ok(Ok(true))) {
            failed += 1;
        }
    }
    ensure!(failed == 0, "{failed} of {n} requests failed");
    observed.wait_for(50 + n, Duration::from_secs(60)).await?;
    running.shutdown().await?;
    Ok(format!(
        "1000 msg/s for {seconds} s through HTTP: request→sink {}",
        observed.percentiles()
    ))
}

/// CPU seconds (user + system) of this process so far.
fn self_cpu() -> f64 {
    let mut usage = std::mem::MaybeUninit::<libc::rusage>::zeroed();
    // SAFETY: getrusage writes a whole rusage into the pointer it is given.
    let usage = unsafe {
        libc::getrusage(libc::RUSAGE_SELF, usage.as_mut_ptr());
        usage.assume_init()
    };
    let secs = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    secs(usage.ru_utime) + secs(usage.ru_stime)
}

/// CPU seconds (user + system) of process `pid` so far, from /proc.
fn process_cpu(pid: u32) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the command (which may hold spaces) start at state (3rd).
    let rest = &stat[stat.rfind(')')? + 2..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks: f64 = fields.get(11)?.parse::<f64>().ok()? + fields.get(12)?.parse::<f64>().ok()?;
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64;
    Some(ticks / hz)
}

/// Samples this process's resident memory every 20 ms.
struct RssSampler {
    peak_kb: Arc<AtomicU64>,
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

fn rss_kb() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("VmRSS:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        })
        .unwrap_or(0)
}

impl RssSampler {
    fn start() -> RssSampler {
        let peak_kb = Arc::new(AtomicU64::new(rss_kb()));
        let stop = Arc::new(AtomicBool::new(false));
        let (peak, halt) = (peak_kb.clone(), stop.clone());
        let thread = std::thread::spawn(move || {
            while !halt.load(Ordering::Relaxed) {
                peak.fetch_max(rss_kb(), Ordering::Relaxed);
                std::thread::sleep(Duration::from_millis(20));
            }
        });
        RssSampler {
            peak_kb,
            stop,
            thread: Some(thread),
        }
    }

    fn current_mb(&self) -> f64 {
        let now = rss_kb();
        self.peak_kb.fetch_max(now, Ordering::Relaxed);
        now as f64 / 1024.0
    }

    /// Stop sampling; the peak in MB.
    fn stop(mut self) -> f64 {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
        self.peak_kb.load(Ordering::Relaxed) as f64 / 1024.0
    }
}

fn which(program: &str) -> Option<PathBuf> {
    let out = Command::new("sh")
        .args(["-c", &format!("command -v {program}")])
        .output()
        .ok()?;
    out.status
        .success()
        .then(|| PathBuf::from(String::from_utf8_lossy(&out.stdout).trim()))
}

/// What `broker.rs` needs from its parent module in the tests.
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free loopback port")
}
