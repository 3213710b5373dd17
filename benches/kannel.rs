//! The round trip through a real Kannel 1.4.5 with smsflow as the
//! application, next to Kannel's own ceiling measured in the same run:
//!
//! - **ceiling**: `fakesmsc -i 0 -m N` → bearerbox → smsbox → a trivial
//!   reply service (tests/common/kannel/echo.rs `EchoApp`: answers each MO with
//!   one sendsms call, 32 at a time) → bearerbox → fakesmsc;
//! - **smsflow**: the same, with smsflow (embedded bus, the Kannel backend,
//!   the `ping` app chained into the router, `send.concurrency: 32`, no
//!   delivery reports, as the reply service asks none) as the application.
//!
//! Rates are messages per second from starting fakesmsc to the N-th reply
//! it prints. Rounds alternate (ceiling, smsflow, ceiling, ...) so that both
//! see the same machine.
//!
//! ```text
//! cargo bench --bench kannel                       # 5,000 messages, 2 rounds
//! cargo bench --bench kannel -- --messages 20000 --rounds 3
//! ```
//!
//! Run by `cargo test --benches` (no `--bench` argument) it does one small
//! round as a smoke test: it fails when a reply goes missing, never on a rate.

#[path = "../tests/common/kannel/mod.rs"]
#[allow(dead_code)]
mod kannel;
#[path = "../tests/common/tools.rs"]
#[allow(dead_code, unused_macros)]
mod tools;

/// What the harness expects of its parent module (tests/common/mod.rs).
fn root() -> std::path::PathBuf {
    std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

use std::time::Duration;

use anyhow::{ensure, Context};
use clap::Parser;
use kannel::{round_trip, Kannel, Mo, RoundTrip};
use smsflow::config::{self, KafkaMode};
use smsflow::topology::Topology;

#[derive(Parser, Debug)]
struct Args {
    /// Messages per round.
    #[arg(long, default_value_t = 5000)]
    messages: usize,
    /// Rounds of (ceiling, smsflow).
    #[arg(long, default_value_t = 2)]
    rounds: usize,
    /// Passed by `cargo bench`; without it (`cargo test --benches`) the run is a smoke test.
    #[arg(long)]
    bench: bool,
    /// A small single round (the default without `--bench`).
    #[arg(long)]
    quick: bool,
}

fn pipeline(port: u16, k: &Kannel) -> anyhow::Result<config::Pipeline> {
    // Chosen now that Kannel holds its own ports: it could have taken the
    // default admin port (`port` + 1).
    let admin = free_port();
    let yaml = format!(
        "http:
  listen: 127.0.0.1:{port}
  admin: {{listen: 127.0.0.1:{admin}}}
backends:
  - type: kannel
    sendsms_url: {url}
    username: {user}
    password: {password}
    from: '15000'
    dlr_mask: 0
    send: {{concurrency: 32}}
    receive: {{secret: {secret}}}
routes:
  - app: ping
apps:
  - type: ping
chain: true
",
        url = k.sendsms_url(),
        user = k.username(),
        password = k.password(),
        secret = kannel::WEBHOOK_SECRET,
    );
    let mut p =
        smsflow::topology::load_str(&yaml, &|_| None).map_err(|e| anyhow::anyhow!("{e:?}"))?;
    p.kafka = config::Kafka::with_mode(KafkaMode::Embedded);
    Ok(p)
}

fn smsflow_round(rt: &tokio::runtime::Runtime, n: usize) -> anyhow::Result<RoundTrip> {
    let port = free_port();
    let get_url = kannel::smsflow_get_url(port);
    let k = Kannel::start_with_log_level(&get_url, 2);
    let p = pipeline(port, &k)?;
    let running = rt
        .block_on(Topology::new(p)?.start(None, true))
        .context("start smsflow")?;
    let timeout = Duration::from_secs(60) + Duration::from_millis(50 * n as u64);
    let result = round_trip(&k, &Mo::text("255700000001", "15000", "ping"), n, timeout);
    rt.block_on(running.shutdown())?;
    ensure!(
        result.received >= n,
        "only {} of {n} replies came back through smsflow\n{}",
        result.received,
        k.logs()
    );
    Ok(result)
}

fn main() -> anyhow::Result<()> {
    let mut args = Args::parse();
    if !args.bench || args.quick {
        args.messages = args.messages.min(200);
        args.rounds = 1;
    }
    let rt = tokio::runtime::Runtime::new()?;
    let n = args.messages;
    println!("Kannel round trip, {n} messages per round (fakesmsc -i 0 → Kannel → app → Kannel → fakesmsc)");
    println!(
        "{:>5}  {:>14}  {:>14}  {:>6}",
        "round", "ceiling msg/s", "smsflow msg/s", "ratio"
    );
    let mut ratios = Vec::new();
    for round in 1..=args.rounds {
        let ceiling = kannel::ceiling_round_trip(n);
        let ours = smsflow_round(&rt, n)?;
        let ratio = ours.rate / ceiling.rate;
        ratios.push(ratio);
        println!(
            "{round:>5}  {:>14.0}  {:>14.0}  {:>5.0}%",
            ceiling.rate,
            ours.rate,
            ratio * 100.0
        );
    }
    ratios.sort_by(f64::total_cmp);
    println!(
        "smsflow reaches {:.0}% of Kannel's own round trip (median of {} rounds)",
        ratios[ratios.len() / 2] * 100.0,
        ratios.len()
    );
    Ok(())
}
