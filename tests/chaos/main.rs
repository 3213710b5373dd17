//! Chaos at scale, on a real broker (tansu): every stage of an echo
//! pipeline (router-in, app:echo, router-out, backend:gateway) runs as
//! three `smsflow run --stage` processes, each with its own ports (and no
//! instance id: tansu 0.6.0 mishandles static members). A steady load of inbound messages goes
//! to the gateway replicas' webhooks; the sinks POST the replies to a
//! provider stub. Meanwhile:
//!
//! - a random replica is SIGKILLed every few seconds and started again with
//!   the same name and ports (a Deployment's container restart);
//! - a stage is scaled 3 → 1 → 3 (SIGTERM down, new ids up);
//! - every replica of every stage is replaced, one at a time per stage (a rolling
//!   restart: the new one up, then SIGTERM to the old one, which must exit
//!   0 within the pipeline's `shutdown_timeout` + 10 s).
//!
//! Counted at the stub once the load stopped and the pipeline drained:
//! every message accepted (`200 OK`) gets exactly one reply. A reply the
//! sink reported failed "outcome unknown" on `sms.events` (it died between
//! recording `sending` and calling the provider, and does not resend) is
//! counted apart, not as lost. The longest gap in one partition's replies
//! after each kill is printed, not asserted (timing), with each stage's
//! partitions whose committed offset stood still (sampled from the broker).
//!
//! Knobs (environment): `SMSFLOW_CHAOS_SECONDS` (the kill phase, 30),
//! `SMSFLOW_CHAOS_KILLS` (6), `SMSFLOW_CHAOS_RATE` (messages/s, 200),
//! `SMSFLOW_CHAOS_REPLICAS` (per stage, 3), `SMSFLOW_CHAOS_SCALE` (stages to
//! scale, comma-separated, `backend:gateway`; empty for none),
//! `SMSFLOW_CHAOS_ROLLING` (0 skips the rolling restart),
//! `SMSFLOW_CHAOS_DRAIN_SECONDS` (the longest wait for replies after the
//! load, 120), `SMSFLOW_CHAOS_KAFKA_CONFIG` (`key=value,...` added to the
//! pipeline's `kafka.config`, e.g. `consumer.session.timeout.ms=6000`).

use std::collections::{BTreeSet, HashMap};
use std::path::Path;
use std::time::{Duration, Instant};

#[path = "../common/mod.rs"]
mod common;
mod lag;
mod replicas;
mod stub;
mod tally;

use replicas::{Fleet, BACKEND};
use stub::{Load, Sent, Stub};

const STAGES: [&str; 4] = ["router-in", "app:echo", "router-out", BACKEND];

/// The knobs, from the environment.
struct Settings {
    seconds: u64,
    kills: u64,
    rate: u64,
    replicas: usize,
    scale: Vec<String>,
    rolling: bool,
    drain: Duration,
    kafka: Vec<(String, String)>,
}

fn knob(name: &str, default: u64) -> u64 {
    match std::env::var(name) {
        Ok(v) => v
            .parse()
            .unwrap_or_else(|_| panic!("{name}={v:?}: expected a whole number")),
        Err(_) => default,
    }
}

impl Settings {
    fn from_env() -> Settings {
        let scale = std::env::var("SMSFLOW_CHAOS_SCALE").unwrap_or_else(|_| BACKEND.into());
        let scale: Vec<String> = scale
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
            .collect();
        for s in &scale {
            assert!(
                STAGES.contains(&s.as_str()),
                "SMSFLOW_CHAOS_SCALE: no stage {s:?}; the stages are {STAGES:?}"
            );
        }
        let kafka = std::env::var("SMSFLOW_CHAOS_KAFKA_CONFIG").unwrap_or_default();
        let kafka = kafka
            .split(',')
            .filter(|kv| !kv.trim().is_empty())
            .map(|kv| match kv.split_once('=') {
                Some((k, v)) => (k.trim().to_owned(), v.trim().to_owned()),
                None => panic!("SMSFLOW_CHAOS_KAFKA_CONFIG: {kv:?} is not key=value"),
            })
            .collect();
        let s = Settings {
            seconds: knob("SMSFLOW_CHAOS_SECONDS", 30),
            kills: knob("SMSFLOW_CHAOS_KILLS", 6),
            rate: knob("SMSFLOW_CHAOS_RATE", 200),
            replicas: knob("SMSFLOW_CHAOS_REPLICAS", 3) as usize,
            scale,
            rolling: knob("SMSFLOW_CHAOS_ROLLING", 1) != 0,
            drain: Duration::from_secs(knob("SMSFLOW_CHAOS_DRAIN_SECONDS", 120)),
            kafka,
        };
        assert!(s.rate > 0, "SMSFLOW_CHAOS_RATE must be above 0");
        assert!(s.replicas > 0, "SMSFLOW_CHAOS_REPLICAS must be above 0");
        s
    }
}

/// The pipeline file with `extra` settings under `kafka.config`.
fn write_pipeline(dir: &Path, extra: &[(String, String)]) -> std::path::PathBuf {
    let template = std::fs::read_to_string(common::root().join("tests/chaos/pipeline.yaml"))
        .expect("tests/chaos/pipeline.yaml");
    let lines: String = extra
        .iter()
        .map(|(k, v)| format!("    {k}: '{v}'\n"))
        .collect();
    let text = match lines.is_empty() {
        true => template,
        false => template.replacen(
            "  producer:\n",
            &format!("  config:\n{lines}  producer:\n"),
            1,
        ),
    };
    let file = dir.join("chaos.yaml");
    std::fs::write(&file, text).unwrap();
    file
}

/// Something the chaos did, when.
struct Event {
    at: Duration,
    what: String,
    kill: bool,
}

/// What the chaos phase hands back.
struct Chaos {
    fleet: Fleet,
    events: Vec<Event>,
    scale_changes: usize,
    rolled: usize,
    /// The slowest exit after SIGTERM.
    slowest_exit: Duration,
}

/// Kills, scale changes, the rolling restart: in a thread of its own (it
/// waits on processes), while the load runs.
fn chaos(mut fleet: Fleet, s: &Settings, t0: Instant, grace: Duration) -> Chaos {
    let mut events = Vec::new();
    let mut note = |what: String, kill: bool| {
        println!("chaos {:6.1}s: {what}", t0.elapsed().as_secs_f64());
        events.push(Event {
            at: t0.elapsed(),
            what,
            kill,
        });
    };
    std::thread::sleep(Duration::from_secs(5));
    // A random replica SIGKILLed every few seconds, restarted as it was.
    let every = Duration::from_millis(s.seconds * 1000 / s.kills.max(1));
    let started = Instant::now();
    for k in 1..=s.kills {
        let due = started + every * k as u32;
        std::thread::sleep(due.saturating_duration_since(Instant::now()));
        let i = fastrand::usize(..fleet.replicas.len());
        let r = &fleet.replicas[i];
        note(format!("kill -9 {} ({})", r.instance, r.stage), true);
        let t = Instant::now();
        if fleet.kill_and_restart(i) {
            println!("        restarted in {:.1}s", t.elapsed().as_secs_f64());
        }
    }
    std::thread::sleep(
        (started + Duration::from_secs(s.seconds)).saturating_duration_since(Instant::now()),
    );
    // Scale 3 → 1 → 3: SIGTERM down, new ids up.
    let mut scale_changes = 0;
    let mut slowest_exit = Duration::ZERO;
    for stage in &s.scale {
        for target in [1, s.replicas] {
            std::thread::sleep(Duration::from_secs(3));
            let now = fleet.of(stage).len();
            if now == target {
                continue;
            }
            note(format!("scale {stage} {now} → {target}"), false);
            scale_changes += 1;
            let t = Instant::now();
            if target < now {
                let going: Vec<String> = fleet.of(stage)[target..]
                    .iter()
                    .map(|&i| fleet.replicas[i].instance.clone())
                    .collect();
                slowest_exit = slowest_exit.max(fleet.terminate(&going, grace));
            } else {
                let stages: Vec<&str> = (now..target).map(|_| stage.as_str()).collect();
                fleet.scale_up(&stages);
            }
            println!("        done in {:.1}s", t.elapsed().as_secs_f64());
        }
    }
    // Rolling restart, every stage at once (as when every Deployment's
    // pod template changes), one replica at a time in each: a new one up,
    // then SIGTERM to an old one.
    let mut rolled = 0;
    if s.rolling {
        std::thread::sleep(Duration::from_secs(3));
        note("rolling restart".into(), false);
        let mut old: Vec<Vec<String>> = STAGES
            .iter()
            .map(|stage| {
                let of = fleet.of(stage);
                of.iter()
                    .map(|&i| fleet.replicas[i].instance.clone())
                    .collect()
            })
            .collect();
        while old.iter().any(|o| !o.is_empty()) {
            let t = Instant::now();
            let stages: Vec<&str> = STAGES
                .iter()
                .zip(&old)
                .filter(|(_, o)| !o.is_empty())
                .map(|(s, _)| *s)
                .collect();
            fleet.scale_up(&stages);
            let going: Vec<String> = old.iter_mut().filter_map(Vec::pop).collect();
            let up = t.elapsed();
            let exit = fleet.terminate(&going, grace);
            slowest_exit = slowest_exit.max(exit);
            rolled += going.len();
            println!(
                "        replaced {}: new ones up in {:.1}s, old ones exited in {:.1}s",
                going.join(", "),
                up.as_secs_f64(),
                exit.as_secs_f64()
            );
        }
        note(format!("rolling restart done: {rolled} replaced"), false);
    }
    std::thread::sleep(Duration::from_secs(3));
    Chaos {
        fleet,
        events,
        scale_changes,
        rolled,
        slowest_exit,
    }
}

/// Wait until every accepted message got a reply (or its sink reported its
/// outcome unknown), or `drain` passed; then a few seconds more for late
/// repeats.
async fn drain(
    stub: &Stub,
    outcomes: &HashMap<u64, Sent>,
    p: &smsflow::config::Pipeline,
    drain: Duration,
) {
    let accepted: BTreeSet<u64> = outcomes
        .iter()
        .filter(|(_, s)| matches!(s, Sent::Accepted(_)))
        .map(|(seq, _)| *seq)
        .collect();
    let deadline = Instant::now() + drain;
    let (mut last_count, mut last_change) = (0, Instant::now());
    loop {
        let replied: BTreeSet<u64> = stub.with(|r| r.iter().filter_map(|r| r.seq).collect());
        let missing: Vec<u64> = accepted.difference(&replied).copied().collect();
        if missing.is_empty() || Instant::now() > deadline {
            break;
        }
        let count = stub.count();
        if count != last_count {
            (last_count, last_change) = (count, Instant::now());
        } else if last_change.elapsed() > Duration::from_secs(15) {
            // Quiet: are the rest all reported "outcome unknown"?
            let unknown = tally::outcome_unknown(p).await;
            if missing.iter().all(|s| unknown.contains(s)) {
                break;
            }
            last_change = Instant::now();
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    tokio::time::sleep(Duration::from_secs(5)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replicas_killed_scaled_and_rolled_lose_and_duplicate_no_reply() {
    require_tools!(common::Tool::Tansu);
    let s = Settings::from_env();
    let t0 = Instant::now();
    let broker = common::broker::Broker::start();
    let dir = tempfile::tempdir().unwrap();
    let file = write_pipeline(dir.path(), &s.kafka);
    let partitions = 6; // the pipeline's topics.partitions, checked below
    let stub = Stub::start(t0, partitions).await;
    let env = vec![
        ("BROKERS".to_owned(), broker.brokers()),
        ("PROVIDER_URL".to_owned(), stub.url.clone()),
    ];
    let lookup = |k: &str| match k {
        "LISTEN" => Some("127.0.0.1:0".to_owned()),
        _ => env.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone()),
    };
    let text = std::fs::read_to_string(&file).unwrap();
    let p = smsflow::topology::load_str_in(&text, &lookup, dir.path())
        .unwrap_or_else(|e| panic!("the chaos pipeline: {e:?}"));
    assert_eq!(p.topics.partitions, partitions);
    // The drain deadline, the producer's 5 s flush after it, and a margin.
    let grace = p.shutdown_timeout + Duration::from_secs(10);

    let mut fleet = Fleet::new(&file, dir.path(), env.clone());
    tokio::task::block_in_place(|| {
        for _ in 0..s.replicas {
            fleet.scale_up(&STAGES);
        }
    });
    let processes = fleet.replicas.len();
    println!(
        "chaos {:6.1}s: {processes} processes up ({} per stage), load at {}/s",
        t0.elapsed().as_secs_f64(),
        s.replicas,
        s.rate
    );
    let t = &p.topics;
    let inputs = [
        t.inbound.clone(),
        t.app("echo"),
        t.outbound.clone(),
        t.send("gateway"),
    ];
    let groups = STAGES
        .iter()
        .zip(inputs)
        .map(|(stage, topic)| {
            let group = format!("{}.{stage}", p.kafka.group);
            (stage.to_string(), group, topic)
        })
        .collect();
    let lag = lag::Lag::start(&broker.brokers(), groups, partitions, t0);
    let load = Load::start(fleet.endpoints.clone(), s.rate, 200, t0);
    let settings = Settings::from_env();
    let chaos = tokio::task::spawn_blocking(move || chaos(fleet, &settings, t0, grace))
        .await
        .unwrap();
    let outcomes = load.finish().await;
    println!(
        "chaos {:6.1}s: load stopped after {} messages; draining",
        t0.elapsed().as_secs_f64(),
        outcomes.len()
    );
    drain(&stub, &outcomes, &p, s.drain).await;
    for line in tokio::task::block_in_place(|| lag.finish()) {
        println!("stood still: {line}");
    }
    let unknown = tally::outcome_unknown(&p).await;
    let c = stub.with(|replies| tally::count(&outcomes, replies, &unknown));

    // The stall after each kill.
    let mut worst_gap = Duration::ZERO;
    let mut worst_slowest = Duration::ZERO;
    let kills: Vec<&Event> = chaos.events.iter().filter(|e| e.kill).collect();
    for (k, e) in kills.iter().enumerate() {
        let next = chaos
            .events
            .iter()
            .map(|n| n.at)
            .find(|at| *at > e.at)
            .unwrap_or(e.at + Duration::from_secs(10));
        let window = (next - e.at).min(Duration::from_secs(10));
        let st = stub.with(|replies| tally::stall(e.at, window, &outcomes, replies));
        worst_gap = worst_gap.max(st.gap);
        worst_slowest = worst_slowest.max(st.slowest);
        println!(
            "kill {} at {:.1}s, {}: longest gap in one partition's replies {:.1}s (partition {}); slowest reply to a message accepted in the next {:.0}s: {:.1}s",
            k + 1,
            e.at.as_secs_f64(),
            e.what,
            st.gap.as_secs_f64(),
            st.partition,
            window.as_secs_f64(),
            st.slowest.as_secs_f64()
        );
    }
    let lat = stub.with(|replies| tally::latencies(&outcomes, replies));
    let pct = |q: f64| {
        lat.get(((lat.len() as f64 * q) as usize).min(lat.len().saturating_sub(1)))
            .copied()
            .unwrap_or_default()
            .as_secs_f64()
    };
    println!(
        "reply latency: median {:.2}s, p99 {:.1}s, max {:.1}s; {} replies took over 10 s",
        pct(0.5),
        pct(0.99),
        pct(1.0),
        lat.iter().filter(|d| d.as_secs() >= 10).count()
    );
    stub.with(|replies| {
        for line in tally::timeline(&outcomes, replies) {
            println!("{line}");
        }
    });
    // Ambiguous POSTs, by the 10 s in which they happened.
    let mut when: std::collections::BTreeMap<u64, usize> = Default::default();
    for o in outcomes.values() {
        if let Sent::Ambiguous(at, _) = o {
            *when.entry(at.as_secs() / 10 * 10).or_default() += 1;
        }
    }
    if !when.is_empty() {
        println!("ambiguous POSTs by time (s → count): {when:?}");
    }

    let failed_exits = chaos.fleet.failures.len();
    println!(
        "chaos summary: {processes} processes ({} per stage), {} kills, {} scale changes, {} rolled, slowest SIGTERM exit {:.1}s (grace {:.0}s), {} failed starts/exits, {} unclean exits while the broker did not answer; {} inbound sent: {} accepted, {} ambiguous ({} replied), {} rejected, {} refused; {} replies; lost {}, sent twice {} ({} same idempotency key), outcome unknown {} (+{} delivered anyway); after a kill: longest gap in a partition's replies {:.1}s, slowest reply {:.1}s",
        s.replicas,
        kills.len(),
        chaos.scale_changes,
        chaos.rolled,
        chaos.slowest_exit.as_secs_f64(),
        grace.as_secs_f64(),
        failed_exits,
        chaos.fleet.broker_stalls.len(),
        c.sent,
        c.accepted,
        c.ambiguous,
        c.ambiguous_replied,
        c.rejected,
        c.refused,
        c.replies,
        c.lost.len(),
        c.sent_twice,
        c.same_key,
        c.unknown.len(),
        c.unknown_delivered,
        worst_gap.as_secs_f64(),
        worst_slowest.as_secs_f64(),
    );

    // Why POSTs were not simply accepted (the first of each kind).
    let mut reasons: HashMap<String, usize> = HashMap::new();
    for why in outcomes.values().filter_map(Sent::reason) {
        let kind: String = why.chars().take(200).collect();
        *reasons.entry(kind).or_default() += 1;
    }
    for (why, n) in &reasons {
        println!("not accepted outright: {n} × {why}");
    }

    let ok = c.lost.is_empty()
        && c.sent_twice == 0
        && c.rejected == 0
        && c.strays == 0
        && failed_exits == 0;
    if !ok {
        report(&stub, &chaos.fleet, &c, &p, &outcomes).await;
        let kept = dir.keep();
        println!("every process's log is kept in {}", kept.display());
    }
    drop(chaos);
    drop(broker);
    assert!(
        c.accepted > 0 && c.replies > 0,
        "the load did not get through: {c:?}"
    );
    assert_eq!(
        failed_exits, 0,
        "replicas failed to start or to stop cleanly (logs above)"
    );
    assert_eq!(c.rejected, 0, "webhooks refused messages of this test");
    assert_eq!(c.strays, 0, "replies to messages this test never sent");
    assert_eq!(
        (c.lost.len(), c.sent_twice),
        (0, 0),
        "lost {:?}, sent twice {:?} (first few)",
        &c.lost[..c.lost.len().min(20)],
        &c.twice[..c.twice.len().min(20)]
    );
}

/// What went wrong, with the logs that tell why.
async fn report(
    stub: &Stub,
    fleet: &Fleet,
    c: &tally::Counts,
    p: &smsflow::config::Pipeline,
    outcomes: &HashMap<u64, Sent>,
) {
    for f in &fleet.failures {
        println!("--- failure: {} ---", f.what);
        println!("{}", replicas::tail(&f.log, 30));
    }
    if !c.lost.is_empty() {
        for (topic, n) in tally::where_lost(p, &c.lost).await {
            println!(
                "where lost: {n} of the {} lost messages are on {topic}",
                c.lost.len()
            );
        }
        for seq in c.lost.iter().take(5) {
            println!("lost: c{seq}, {:?}", outcomes[seq]);
        }
    }
    for seq in c.twice.iter().take(10) {
        let copies: Vec<String> = stub.with(|replies| {
            replies
                .iter()
                .filter(|r| r.seq == Some(*seq))
                .map(|r| {
                    format!(
                        "{:.1}s key {}",
                        r.at.as_secs_f64(),
                        &r.key[..8.min(r.key.len())]
                    )
                })
                .collect()
        });
        println!(
            "sent twice: c{seq} (accepted {:?}): {}",
            outcomes[seq],
            copies.join(", ")
        );
    }
    if !c.lost.is_empty() || c.sent_twice > 0 {
        // The sinks decide what is sent: their logs.
        for (instance, log) in &fleet.logs {
            if instance.starts_with(&BACKEND.replace(':', "-")) {
                println!("--- {} ---", log.display());
                println!("{}", replicas::tail(log, 12));
            }
        }
    }
}
