//! A bulk campaign survives its processes being killed, on a real broker
//! (tansu): every stage of the pipeline runs as its own `smsflow run
//! --stage` process, two of `campaign` and two of the `http` backend whose
//! sinks POST to a provider stub. A campaign to a generated CSV audience
//! (variables, two languages, defaults, national and international
//! numbers) is started through the admin API of one process; while it
//! runs, a `campaign` replica is SIGKILLed at 5 random points of its
//! progress (the one holding the campaign's audience partition, as its
//! `/metrics` tell) and a sink replica once or twice, each started again
//! with the same arguments, as a Deployment restarts a crashed container.
//! The restart waits out the group's 6 s session timeout (8 s by default):
//! on tansu 0.6.0 a member that joins while a killed one still holds its
//! partitions was seen to leave a partition of the bulk lane to no one for
//! more than 5 minutes (its committed offset still, its records waiting, no
//! replica reporting it), and `SMSFLOW_CAMPAIGN_FAULTS_RESTART_AFTER=0`
//! shows it now and then. Every second the test samples where records wait
//! (the campaign group on the audience, the sinks' bulk group on the bulk
//! lane) and prints the partitions that stood still 5 s or more.
//!
//! Counted at the stub once the campaign's page says every recipient was
//! reached: each recipient got exactly one request, with its own text in
//! its language and the message id derived from the campaign and its
//! number; no request went to a number outside the audience; the campaign
//! is `completed`. A message whose sink died between recording `sending`
//! and recording the provider's answer is reported `failed` ("outcome
//! unknown") on `sms.events` and never sent again: counted apart, not as
//! lost (campaign kills cause none; a sink kill can, for the few messages
//! it had in flight). The pipeline's chunks are 100 recipients (1 s of
//! walking at the test's pace): see `pipeline.yaml` for why.
//!
//! Knobs (environment): `SMSFLOW_CAMPAIGN_FAULTS_RECIPIENTS` (3000),
//! `SMSFLOW_CAMPAIGN_FAULTS_KILLS` (campaign kills, 5),
//! `SMSFLOW_CAMPAIGN_FAULTS_SINK_KILLS` (2), `SMSFLOW_CAMPAIGN_FAULTS_RATE`
//! (the campaign's messages/s, 100), `SMSFLOW_CAMPAIGN_FAULTS_SEED` (the
//! kill points; random when unset, printed), `SMSFLOW_CAMPAIGN_FAULTS_WAIT`
//! (seconds the campaign may take after the last kill, 300),
//! `SMSFLOW_CAMPAIGN_FAULTS_RESTART_AFTER` (seconds between a kill and the
//! start, 8), `SMSFLOW_CAMPAIGN_LOG` (the processes' `RUST_LOG`, `info`),
//! `SMSFLOW_CAMPAIGN_FAULTS_KEEP=1` (keep every process's log, also when
//! the test passes).

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use serde_json::json;

#[path = "../common/mod.rs"]
mod common;
// Shared with tests/campaign_lanes/: each uses part of them.
#[allow(dead_code)]
mod fleet;
#[path = "../chaos/lag.rs"]
mod lag;
#[allow(dead_code)]
mod stub;
mod tally;
#[allow(dead_code)]
mod world;

use fleet::{Fleet, BACKEND};
use stub::Stub;
use tally::{all_right, count, Counts};
use world::{Admin, Audience};

const CAMPAIGN: &str = "faults";
const STAGES: [&str; 5] = ["router-in", "app:echo", "router-out", "campaign", BACKEND];

fn knob(name: &str, default: u64) -> u64 {
    match std::env::var(name) {
        Ok(v) => v
            .parse()
            .unwrap_or_else(|_| panic!("{name}={v:?}: expected a whole number")),
        Err(_) => default,
    }
}

/// Which stage a kill is for.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Target {
    Campaign,
    Sink,
}

/// A kill at a point of the campaign's progress.
struct Kill {
    /// When this many recipients got their message.
    after: usize,
    target: Target,
}

/// The kills, at random points between 5 % and 85 % of the recipients.
fn schedule(n: usize, campaign: u64, sink: u64, seed: u64) -> Vec<Kill> {
    let mut rng = fastrand::Rng::with_seed(seed);
    let mut kills: Vec<Kill> = (0..campaign)
        .map(|_| Target::Campaign)
        .chain((0..sink).map(|_| Target::Sink))
        .map(|target| Kill {
            after: n * (5 + rng.usize(..80)) / 100,
            target,
        })
        .collect();
    kills.sort_by_key(|k| k.after);
    kills
}

/// Recipients of the campaign the stub got at least one request for.
fn reached(stub: &Stub) -> usize {
    stub.with(|requests| {
        requests
            .iter()
            .filter(|r| r.campaign.as_deref() == Some(CAMPAIGN))
            .map(|r| r.identity.as_str())
            .collect::<BTreeSet<&str>>()
            .len()
    })
}

/// The campaign replicas whose `/metrics` report the campaign's audience
/// partition as assigned to them (librdkafka's statistics, every 5 s).
async fn owners(fleet: &Fleet, audience_topic: &str) -> Vec<usize> {
    let partition = smsflow::bus::partition_for_key(CAMPAIGN.as_bytes(), 6);
    let wanted = [
        "smsflow_consumer_lag{".to_owned(),
        "stage=\"campaign\"".to_owned(),
        format!("topic=\"{audience_topic}\""),
        format!("partition=\"{partition}\""),
    ];
    let client = reqwest::Client::new();
    let mut owners = Vec::new();
    for i in fleet.of("campaign") {
        let url = format!("http://127.0.0.1:{}/metrics", fleet.replicas[i].port + 1);
        let Ok(res) = client.get(url).timeout(Duration::from_secs(2)).send().await else {
            continue;
        };
        let text = res.text().await.unwrap_or_default();
        if text
            .lines()
            .any(|l| wanted.iter().all(|w| l.contains(w.as_str())))
        {
            owners.push(i);
        }
    }
    owners
}

/// The campaign replica holding the campaign's audience, once exactly one
/// reports it (waiting up to 10 s for the statistics to catch up with a
/// rebalance).
async fn owner(fleet: &Fleet, audience_topic: &str) -> Result<usize, usize> {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let found = owners(fleet, audience_topic).await;
        match found[..] {
            [one] => return Ok(one),
            _ if Instant::now() > deadline => return Err(found.len()),
            _ => tokio::time::sleep(Duration::from_millis(250)).await,
        }
    }
}

/// The campaign's requests per 5 s since `t0`, as the stub got them.
fn timeline(stub: &Stub, t0: Instant) -> String {
    let mut per: BTreeMap<u64, usize> = BTreeMap::new();
    stub.with(|requests| {
        for r in requests.iter().filter(|r| r.campaign.is_some()) {
            *per.entry((r.at - t0).as_secs() / 5).or_default() += 1;
        }
    });
    let last = per.keys().max().copied().unwrap_or(0);
    let steps: Vec<String> = (0..=last)
        .map(|s| per.get(&s).copied().unwrap_or(0).to_string())
        .collect();
    format!(
        "campaign requests per 5 s from the start: {}",
        steps.join(" ")
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn campaign_and_sink_replicas_killed_send_every_recipient_one_message() {
    require_tools!(common::Tool::Tansu);
    let n = knob("SMSFLOW_CAMPAIGN_FAULTS_RECIPIENTS", 3000) as usize;
    let rate = knob("SMSFLOW_CAMPAIGN_FAULTS_RATE", 100);
    let seed = knob("SMSFLOW_CAMPAIGN_FAULTS_SEED", fastrand::u64(..1_000_000));
    let wait = Duration::from_secs(knob("SMSFLOW_CAMPAIGN_FAULTS_WAIT", 300));
    let pause = Duration::from_secs(knob("SMSFLOW_CAMPAIGN_FAULTS_RESTART_AFTER", 8));
    let kills = schedule(
        n,
        knob("SMSFLOW_CAMPAIGN_FAULTS_KILLS", 5),
        knob("SMSFLOW_CAMPAIGN_FAULTS_SINK_KILLS", 2),
        seed,
    );
    assert!(n > 0 && rate > 0, "recipients and rate must be above 0");
    let t0 = Instant::now();
    let at = || format!("{:6.1}s", t0.elapsed().as_secs_f64());

    let broker = common::broker::Broker::start();
    let stub = Stub::start().await;
    let dir = tempfile::tempdir().unwrap();
    let env = vec![
        ("BROKERS".to_owned(), broker.brokers()),
        ("PROVIDER_URL".to_owned(), stub.url.clone()),
    ];
    let yaml = std::fs::read_to_string(common::root().join("tests/campaign_faults/pipeline.yaml"))
        .expect("tests/campaign_faults/pipeline.yaml");
    let (file, p) = world::pipeline(dir.path(), &yaml, &env);
    assert_eq!(p.topics.partitions, 6, "owner() counts on 6 partitions");
    let mut fleet = Fleet::new(&file, dir.path(), env);
    tokio::task::block_in_place(|| {
        fleet.scale_up(&STAGES);
        fleet.scale_up(&["campaign", BACKEND]);
    });
    assert!(
        fleet.failures.is_empty(),
        "processes did not start: {:?}",
        fleet.failures
    );
    println!("{}: {} processes up", at(), fleet.replicas.len());
    // Where the campaign's messages wait, sampled every second.
    let g = &p.kafka.group;
    let lag = lag::Lag::start(
        &broker.brokers(),
        vec![
            (
                "campaign".into(),
                format!("{g}.campaign"),
                p.topics.audience.clone(),
            ),
            (
                "bulk lane".into(),
                format!("{g}.{BACKEND}.bulk"),
                p.topics.bulk("gateway"),
            ),
        ],
        p.topics.partitions,
        t0,
    );
    // The admin API of a process that is never killed.
    let admin = Admin::of_port(fleet.replicas[fleet.of("router-in")[0]].port);

    let audience = Audience::new(n);
    let campaign = json!({
        "id": CAMPAIGN,
        "name": "Faults",
        "backend": "gateway",
        "texts": world::texts(),
        "defaults": {"name": "friend"},
        "messages_per_second": rate,
    });
    let started = Instant::now();
    let (status, answer) = admin
        .post(
            "/api/campaigns",
            json!({"campaign": campaign, "csv": audience.csv, "file": "faults.csv"}),
        )
        .await;
    assert_eq!(status, 201, "the campaign did not start: {answer}");
    assert_eq!(answer["preview"]["to_send"], n, "{:#}", answer["preview"]);
    assert_eq!(answer["preview"]["invalid"], 0, "{:#}", answer["preview"]);
    println!(
        "{}: campaign {CAMPAIGN:?} started: {n} recipients at {rate}/s; kill points (seed {seed}): {:?}",
        at(),
        kills
            .iter()
            .map(|k| format!("{:?}@{}", k.target, k.after))
            .collect::<Vec<_>>()
    );

    // The kills, each when the stub has seen that many recipients.
    let mut rng = fastrand::Rng::with_seed(seed ^ 0x5eed);
    let mut stood_still = None;
    'kills: for kill in &kills {
        let deadline = Instant::now() + wait;
        while reached(&stub) < kill.after {
            if Instant::now() > deadline {
                stood_still = Some(reached(&stub));
                break 'kills;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let (i, how) = match kill.target {
            Target::Campaign => match owner(&fleet, &p.topics.audience).await {
                Ok(i) => (i, "holds the audience".to_owned()),
                Err(reporting) => {
                    let of = fleet.of("campaign");
                    let how = format!("at random: {reporting} replicas report the audience");
                    (of[rng.usize(..of.len())], how)
                }
            },
            Target::Sink => {
                let of = fleet.of(BACKEND);
                (of[rng.usize(..of.len())], "at random".to_owned())
            }
        };
        let what = format!(
            "kill -9 {} ({how}) at {} recipients",
            fleet.replicas[i].instance,
            reached(&stub)
        );
        println!("{}: {what}", at());
        let t = Instant::now();
        match tokio::task::block_in_place(|| fleet.kill_and_restart(i, pause)) {
            true => println!(
                "        started again after {:.1}s",
                t.elapsed().as_secs_f64()
            ),
            false => break,
        }
    }

    // Until the campaign's page says every recipient was reached.
    println!("{}: kills done; waiting for the campaign to complete", at());
    let wait_now = match stood_still {
        Some(_) => Duration::ZERO,
        None => wait,
    };
    let (view, complete) = admin
        .campaign_until(CAMPAIGN, wait_now, |v| {
            let p = &v["progress"];
            v["campaign"]["state"] == "completed" && p["queued"] == 0 && p["reached"] == n
        })
        .await;
    let duration = started.elapsed();
    // Late repeats would show now.
    tokio::time::sleep(Duration::from_secs(5)).await;
    let events = world::events(&p).await;
    let unknown_ids: BTreeSet<String> = events
        .iter()
        .filter(|e| {
            e.campaign_id.as_deref() == Some(CAMPAIGN)
                && e.error
                    .as_deref()
                    .is_some_and(|why| why.starts_with("outcome unknown"))
        })
        .map(|e| e.message_id.clone())
        .collect();
    let c = count(&audience, &stub, &unknown_ids);
    for line in tokio::task::block_in_place(|| lag.finish()) {
        println!("stood still: {line}");
    }
    let progress = &view["progress"];
    println!("campaign as its page shows it: {progress:#}");
    println!("{}", timeline(&stub, t0));
    println!(
        "campaign faults summary: {n} recipients at {rate}/s, {} campaign kills, {} sink kills, {:.1}s from start to completed; {} requests; lost {}, duplicated {} ({} numbers), outcome unknown {} (+{} delivered anyway), wrong text {}, wrong id {}, strays {}; page: state {}, sent {}, failed {}, suppressed {}",
        kills.iter().filter(|k| k.target == Target::Campaign).count(),
        kills.iter().filter(|k| k.target == Target::Sink).count(),
        duration.as_secs_f64(),
        c.requests,
        c.lost.len(),
        c.duplicated,
        c.twice.len(),
        c.unknown.len(),
        c.unknown_delivered,
        c.wrong_text.len(),
        c.wrong_key,
        c.strays,
        view["campaign"]["state"],
        progress["sent"],
        progress["failed"],
        progress["suppressed"],
    );
    let keep = knob("SMSFLOW_CAMPAIGN_FAULTS_KEEP", 0) != 0;
    if !(complete && all_right(&c) && fleet.failures.is_empty()) {
        report(&fleet, &stub, &c, &events, t0);
    }
    if keep || !(complete && all_right(&c) && fleet.failures.is_empty()) {
        println!("every process's log is kept in {}", dir.keep().display());
    }
    let failures: Vec<String> = fleet.failures.iter().map(|f| f.0.clone()).collect();
    drop(fleet);
    drop(broker);
    assert!(
        failures.is_empty(),
        "replicas failed to start again: {failures:?}"
    );
    assert_eq!(
        stood_still, None,
        "the campaign stood still at that many recipients before a kill, for {wait:?}"
    );
    assert!(
        complete,
        "the campaign did not complete within {wait:?}: {view:#}"
    );
    assert!(all_right(&c), "{c:#?}");
    // What the page counts agrees with the stub.
    let sent = progress["sent"].as_u64().unwrap_or(0) + progress["delivered"].as_u64().unwrap_or(0);
    assert_eq!(
        (
            sent,
            progress["failed"].as_u64(),
            progress["suppressed"].as_u64()
        ),
        (
            (n - c.unknown.len() - c.unknown_delivered) as u64,
            Some((c.unknown.len() + c.unknown_delivered) as u64),
            Some(0)
        ),
        "the page's counts against the stub's: {progress:#}"
    );
}

/// What went wrong, with what tells why.
fn report(
    fleet: &Fleet,
    stub: &Stub,
    c: &Counts,
    events: &[smsflow::message::DeliveryEvent],
    t0: Instant,
) {
    for (what, log) in &fleet.failures {
        println!("--- failure: {what} ---");
        println!("{}", fleet::tail(log, 30));
    }
    for (phone, text) in &c.wrong_text {
        println!("wrong text to {phone}: {text:?}");
    }
    println!("lost (first 10): {:?}", &c.lost[..c.lost.len().min(10)]);
    // Each number sent twice: when, under which key, and its events.
    let mut by_id: BTreeMap<&str, Vec<String>> = BTreeMap::new();
    for e in events {
        by_id
            .entry(e.message_id.as_str())
            .or_default()
            .push(format!(
                "{}{}",
                e.status.name(),
                e.error
                    .as_deref()
                    .map(|w| format!(" ({w})"))
                    .unwrap_or_default()
            ));
    }
    for phone in c.twice.iter().take(10) {
        let id = smsflow::message::campaign_message_id(CAMPAIGN, phone);
        let copies: Vec<String> = stub.with(|requests| {
            requests
                .iter()
                .filter(|r| r.identity == *phone && r.campaign.as_deref() == Some(CAMPAIGN))
                .map(|r| format!("{:.1}s key {}", (r.at - t0).as_secs_f64(), r.key))
                .collect()
        });
        println!(
            "sent twice: {phone} (id {id}): {}; events: {:?}",
            copies.join(", "),
            by_id.get(id.as_str())
        );
    }
    if !c.lost.is_empty() || c.duplicated > 0 {
        for (instance, log) in &fleet.logs {
            if instance.starts_with("campaign") || instance.starts_with("backend") {
                println!("--- {} ---", log.display());
                println!("{}", fleet::tail(log, 15));
            }
        }
    }
}
