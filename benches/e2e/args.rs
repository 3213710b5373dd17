//! The command line: which buses and parts to run, how big.

use clap::{Parser, ValueEnum};

#[derive(Parser, Debug)]
#[command(about = "End-to-end benchmark of smsflow")]
pub struct Args {
    /// Smoke run: small counts, well under a minute (also what `cargo test --benches` runs).
    #[arg(long)]
    pub quick: bool,
    /// Buses to run on.
    #[arg(long, value_delimiter = ',', default_value = "embedded,durable,kafka")]
    pub bus: Vec<BusKind>,
    /// Use this Kafka cluster instead of starting tansu (`host:port`).
    #[arg(long)]
    pub brokers: Option<String>,
    /// Parts to run.
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "pipeline,ceiling,http,latency"
    )]
    pub part: Vec<Part>,
    /// Messages per pipeline and ceiling run. Default 1,000,000 (20,000 with --quick).
    #[arg(long)]
    pub messages: Option<u64>,
    /// Rounds of the pipeline and ceiling parts, interleaved (pipeline,
    /// ceiling, pipeline, ...), each on a fresh broker. Default 3 (1 with --quick).
    #[arg(long)]
    pub rounds: Option<usize>,
    /// Also run the pipeline unchained: echo and the outgoing router as stages of their own.
    #[arg(long)]
    pub unchained: bool,
    /// Messages the generator keeps in flight (produced, not yet at the sink).
    #[arg(long, default_value_t = 20_000)]
    pub window: usize,
    /// Seconds of `wrk` for the HTTP part; seconds at 1,000/s for the latency part.
    #[arg(long)]
    pub seconds: Option<u64>,
    /// Open connections of `wrk` in the HTTP part, one run each (`--connections 64,256`).
    #[arg(long, value_delimiter = ',', default_value = "64,256")]
    pub connections: Vec<u32>,
    /// librdkafka settings for the pipeline's clients (`key=value`, repeatable),
    /// as `kafka.config` in a pipeline file: `--set linger.ms=1`.
    #[arg(long = "set", value_parser = parse_setting)]
    pub settings: Vec<(String, String)>,
    /// Passed by `cargo bench`; without it this is a test run (quick).
    #[arg(long, hide = true)]
    pub bench: bool,
}

fn parse_setting(s: &str) -> Result<(String, String), String> {
    s.split_once('=')
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .ok_or_else(|| format!("{s:?}: expected key=value"))
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum BusKind {
    /// The embedded bus in memory.
    Embedded,
    /// The embedded bus on disk (a fresh temporary `data_dir`).
    Durable,
    Kafka,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Part {
    Pipeline,
    Ceiling,
    Http,
    Latency,
}
