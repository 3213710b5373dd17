//! A campaign through the bus: a CSV audience of N recipients started as
//! operators start one (preview, definition, the audience frozen onto
//! `sms.campaigns.audience`), then expanded by the `campaign` stage —
//! rendered, segment-counted, Avro-encoded — and produced to the bulk lane,
//! where the discard backend takes every message. Timed per phase; rayon's
//! speed-up is the same run again in a child process with one rayon thread.
//!
//! ```text
//! cargo bench --bench campaign_bus                       # 1,000,000 recipients, embedded bus and tansu
//! cargo bench --bench campaign_bus -- --recipients 200000 --bus embedded
//! ```
//!
//! On tansu the `campaign` stage runs in a process of its own
//! (`smsflow run --stage campaign`), whose peak RSS is the figure for the
//! stage's memory. Run by `cargo test --benches` (no `--bench` argument),
//! it does 20,000 recipients on the embedded bus as a smoke test: it fails
//! when a recipient goes missing, never on a number.

#[path = "../tests/common/broker.rs"]
#[allow(dead_code)]
mod broker;
#[path = "../tests/common/tools.rs"]
#[allow(dead_code, unused_macros)]
mod tools;

use std::io::Write as _;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use smsflow::campaign::control::{self, NewCampaign};
use smsflow::config::{self, KafkaMode, Pipeline};
use smsflow::topology::{Running, Topology};

/// A free loopback port (for the broker).
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free loopback port")
}

const CHILD: &str = "SMSFLOW_BENCH_CHILD";

fn pipeline_yaml(stage_port: u16) -> String {
    format!(
        r#"
project: campaign bench
kafka: embedded
http:
  listen: 127.0.0.1:{stage_port}
backends:
  - type: discard
    name: bulk
    receive: {{insecure: true}}
campaigns:
  region: KE
  max_pending: 1000000000
  max_upload_bytes: 1000000000
  prices:
    bulk: {{segment: 0.01}}
languages:
  default: en
  available:
    - {{code: en, name: English}}
    - {{code: sw, name: Swahili}}
routes:
  - app: echo
apps:
  - type: echo
"#
    )
}

/// `n` recipients: KE numbers, a name (every 13th with a non-GSM letter),
/// a city, every 10th in Swahili.
fn audience(n: usize) -> Vec<u8> {
    let mut csv = Vec::with_capacity(n * 40);
    csv.extend_from_slice(b"phone,name,city,language\n");
    for i in 0..n {
        let name = if i % 13 == 0 { "Wanjiků" } else { "Wanjiru" };
        let language = if i % 10 == 0 { "sw" } else { "" };
        writeln!(csv, "07{:08},{name} {i},Nyeri,{language}", 10_000_000 + i).unwrap();
    }
    csv
}

fn campaign(id: &str) -> NewCampaign {
    NewCampaign {
        id: Some(id.into()),
        backend: "bulk".into(),
        texts: [
            (
                "en".to_string(),
                "Hello {name}, the {city} market opens at 8 on Saturday.".to_string(),
            ),
            (
                "sw".to_string(),
                "Habari {name}, soko la {city} linafunguliwa Jumamosi.".to_string(),
            ),
        ]
        .into(),
        ..NewCampaign::default()
    }
}

/// The peak resident set of process `pid` (VmHWM), in MB.
fn peak_rss(pid: &str) -> f64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        .map_or(0.0, |kb| kb / 1024.0)
}

struct Phases {
    freeze: Duration,
    released: Duration,
    sent: Duration,
}

/// Start the campaign through `running`'s operator and wait for every
/// recipient to be released, then sent; the time of each phase.
async fn run_campaign(running: &Running, n: usize, csv: &[u8]) -> Phases {
    let ctx = running.control();
    let started = Instant::now();
    let (c, preview) = control::start(
        &ctx,
        campaign("bench"),
        Some("bench.csv".into()),
        Some(csv),
        chrono::Utc::now(),
    )
    .await
    .unwrap_or_else(|e| panic!("the campaign did not start: {e}"));
    assert_eq!(preview.to_send as usize, n, "{preview:?}");
    let freeze = started.elapsed();
    let book = &ctx.tables.campaigns;
    let deadline = started + Duration::from_secs(600);
    let mut released = None;
    loop {
        let p = book.progress(&c.id);
        if released.is_none() && p.reached() as usize >= n {
            released = Some(started.elapsed());
        }
        if (p.sent + p.delivered) as usize >= n {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "not every recipient was sent to: {p:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    Phases {
        freeze,
        released: released.unwrap_or_else(|| started.elapsed()),
        sent: started.elapsed(),
    }
}

fn report(label: &str, n: usize, p: &Phases) -> f64 {
    let released = p.released.as_secs_f64();
    println!(
        "{label}: {n} recipients: preview + definition + audience frozen {:.2} s; all released to the bulk lane {:.2} s ({:.0} msgs/s); all at the sink {:.2} s",
        p.freeze.as_secs_f64(),
        released,
        n as f64 / released,
        p.sent.as_secs_f64()
    );
    released
}

async fn embedded(n: usize, csv: &[u8]) -> f64 {
    let mut p: Pipeline = smsflow::topology::load_str(&pipeline_yaml(0), &|_| None).unwrap();
    p.kafka = config::Kafka::with_mode(KafkaMode::Embedded);
    p.kafka.partition_capacity = 2_000_000;
    let running = Topology::new(p).unwrap().start(None, false).await.unwrap();
    let phases = run_campaign(&running, n, csv).await;
    let threads = rayon::current_num_threads();
    let secs = report(&format!("embedded, {threads} rayon thread(s)"), n, &phases);
    println!(
        "embedded: peak RSS of the whole pipeline (bus included) {:.0} MB",
        peak_rss("self")
    );
    running.shutdown().await.unwrap();
    secs
}

/// `smsflow run FILE --stage campaign` on the broker: the stage's own process.
fn stage_process(file: &std::path::Path) -> Child {
    Command::new(env!("CARGO_BIN_EXE_smsflow"))
        .args(["run"])
        .arg(file)
        .args(["--stage", "campaign"])
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("smsflow runs")
}

async fn on_tansu(n: usize, csv: &[u8]) {
    let tansu = broker::Broker::start();
    let dir = tempfile::tempdir().unwrap();
    // The campaign stage's consumer prefetches at most 16 MB of audience
    // (librdkafka's default is 64 MB), as docs/campaigns.md advises.
    let kafka = format!(
        "kafka: {{mode: kafka, brokers: \"{}\", consumer: {{queued.max.messages.kbytes: '16384'}}}}",
        tansu.brokers()
    );
    let yaml = pipeline_yaml(0).replace("kafka: embedded", &kafka);
    let file = dir.path().join("campaign.yaml");
    std::fs::write(
        &file,
        yaml.replace(
            "listen: 127.0.0.1:0",
            "listen: 127.0.0.1:0\n  admin: {listen: 127.0.0.1:0}",
        ),
    )
    .unwrap();
    let p = smsflow::topology::load_file(&file).unwrap();
    // This process: the operator's side (the tables, the producer) and the
    // sink; the campaign stage runs in its own.
    let running = Topology::new(p)
        .unwrap()
        .start(Some("backend:bulk"), false)
        .await
        .unwrap();
    let mut stage = stage_process(&file);
    tokio::time::sleep(Duration::from_secs(5)).await;
    let phases = run_campaign(&running, n, csv).await;
    report("tansu, the campaign stage in its own process", n, &phases);
    let pid = stage.id().to_string();
    println!(
        "tansu: peak RSS of the campaign stage's process {:.0} MB",
        peak_rss(&pid)
    );
    let _ = stage.kill();
    let _ = stage.wait();
    running.shutdown().await.unwrap();
}

fn arg(args: &[String], name: &str) -> Option<String> {
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1).cloned())
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    let bench = args.iter().any(|a| a == "--bench");
    let n: usize = arg(&args, "--recipients")
        .and_then(|v| v.parse().ok())
        .unwrap_or(if bench { 1_000_000 } else { 20_000 });
    let buses = arg(&args, "--bus").unwrap_or_else(|| {
        if bench {
            "embedded,kafka".into()
        } else {
            "embedded".into()
        }
    });
    let csv = audience(n);
    if std::env::var_os(CHILD).is_some() {
        embedded(n, &csv).await;
        return;
    }
    if buses.contains("embedded") {
        let full = embedded(n, &csv).await;
        if bench {
            // The same, one rayon thread, in a fresh process.
            let out = Command::new(std::env::current_exe().unwrap())
                .args(["--recipients", &n.to_string()])
                .env(CHILD, "1")
                .env("RAYON_NUM_THREADS", "1")
                .output()
                .expect("the one-thread run starts");
            let text = String::from_utf8_lossy(&out.stdout);
            print!("{text}");
            let one = text
                .lines()
                .find_map(|l| l.split("all released to the bulk lane ").nth(1))
                .and_then(|r| r.split(' ').next())
                .and_then(|s| s.parse::<f64>().ok());
            if let Some(one) = one {
                println!(
                    "rayon: {:.2}× faster to release with every core than with one thread",
                    one / full
                );
            }
        }
    }
    if buses.contains("kafka") {
        on_tansu(n, &csv).await;
    }
}
