//! Conversations first, on a real broker (tansu): while a campaign sends at
//! the provider's rate limit (the backend's `send.rate`, which replies and
//! the campaign share), phones keep sending `ping`, and each `pong` reaches
//! the provider within 2 s (p99, the goal) — the reply does not
//! queue behind the campaign's backlog, because the campaign's messages go
//! through the backend's bulk lane (`sms.send.<backend>.bulk`, its own
//! consumer), and a waiting reply always goes before a bulk message.
//!
//! Every stage of the pipeline runs as its own `smsflow run --stage`
//! process; the sink POSTs to a provider stub that notes when each request
//! came. A ping is one POST to the backend's inbound webhook from a number
//! of its own, every half second; its latency is from the start of that
//! POST to the stub receiving the `pong`. The campaign must keep sending
//! meanwhile (at least a quarter of the rate limit).
//!
//! Knobs (environment): `SMSFLOW_CAMPAIGN_LANES_PINGS` (100, at least 40),
//! `SMSFLOW_CAMPAIGN_LANES_RATE` (the provider's limit, messages/s, 20),
//! `SMSFLOW_CAMPAIGN_LANES_RECIPIENTS` (2000: enough to outlast the pings
//! at that rate).

use std::time::{Duration, Instant};

use serde_json::json;

#[path = "../common/mod.rs"]
mod common;
#[allow(dead_code)]
#[path = "../campaign_faults/fleet.rs"]
mod fleet;
// Shared with the other campaign test: each uses part of them.
#[allow(dead_code)]
#[path = "../campaign_faults/stub.rs"]
mod stub;
#[allow(dead_code)]
#[path = "../campaign_faults/world.rs"]
mod world;

use fleet::{Fleet, BACKEND};
use stub::Stub;
use world::{quantile, Admin, Audience};

const CAMPAIGN: &str = "lanes";
const STAGES: [&str; 5] = ["router-in", "app:ping", "router-out", "campaign", BACKEND];
/// Between two pings.
const EVERY: Duration = Duration::from_millis(500);
/// The goal for a reply during a campaign, at the 99th percentile.
const GOAL: Duration = Duration::from_secs(2);

fn knob(name: &str, default: u64) -> u64 {
    match std::env::var(name) {
        Ok(v) => v
            .parse()
            .unwrap_or_else(|_| panic!("{name}={v:?}: expected a whole number")),
        Err(_) => default,
    }
}

/// One ping: its number, when its POST began, how the webhook answered.
struct Ping {
    phone: String,
    sent: Instant,
    status: Result<u16, String>,
}

/// The number of the `k`-th ping.
fn phone(k: usize) -> String {
    format!("+1555020{k:04}")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reply_during_a_campaign_at_the_rate_limit_takes_under_two_seconds() {
    require_tools!(common::Tool::Tansu);
    let pings = knob("SMSFLOW_CAMPAIGN_LANES_PINGS", 100) as usize;
    let rate = knob("SMSFLOW_CAMPAIGN_LANES_RATE", 20);
    let n = knob("SMSFLOW_CAMPAIGN_LANES_RECIPIENTS", 2000) as usize;
    assert!(pings >= 40, "SMSFLOW_CAMPAIGN_LANES_PINGS: at least 40");
    assert!(rate > 0, "SMSFLOW_CAMPAIGN_LANES_RATE: above 0");
    let t0 = Instant::now();
    let at = || format!("{:6.1}s", t0.elapsed().as_secs_f64());

    let broker = common::broker::Broker::start();
    let stub = Stub::start().await;
    let dir = tempfile::tempdir().unwrap();
    let env = vec![
        ("BROKERS".to_owned(), broker.brokers()),
        ("PROVIDER_URL".to_owned(), stub.url.clone()),
    ];
    let yaml = std::fs::read_to_string(common::root().join("tests/campaign_lanes/pipeline.yaml"))
        .expect("tests/campaign_lanes/pipeline.yaml")
        .replacen("rate: 20\n", &format!("rate: {rate}\n"), 1);
    let (file, p) = world::pipeline(dir.path(), &yaml, &env);
    let backend = p.backends.iter().find(|b| b.name() == "gateway").unwrap();
    assert_eq!(backend.sending().and_then(|s| s.rate), Some(rate as f64));
    let mut fleet = Fleet::new(&file, dir.path(), env);
    tokio::task::block_in_place(|| fleet.scale_up(&STAGES));
    assert!(
        fleet.failures.is_empty(),
        "processes did not start: {:?}",
        fleet.failures
    );
    println!("{}: {} processes up", at(), fleet.replicas.len());
    let admin = Admin::of_port(fleet.replicas[fleet.of("router-in")[0]].port);
    let webhook = format!("{}/backend/gateway/", fleet.base_url(BACKEND));

    // A campaign with no pace of its own: the provider's limit is its pace.
    let audience = Audience::new(n);
    let campaign = json!({
        "id": CAMPAIGN,
        "name": "Lanes",
        "backend": "gateway",
        "texts": world::texts(),
        "defaults": {"name": "friend"},
    });
    let (status, answer) = admin
        .post(
            "/api/campaigns",
            json!({"campaign": campaign, "csv": audience.csv}),
        )
        .await;
    assert_eq!(status, 201, "the campaign did not start: {answer}");
    // Under way at the provider's rate before the first ping.
    let deadline = Instant::now() + Duration::from_secs(60);
    while stub.of_campaign(CAMPAIGN) < 2 * rate as usize {
        assert!(
            Instant::now() < deadline,
            "the campaign did not get going: {} sent in 60 s",
            stub.of_campaign(CAMPAIGN)
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    println!(
        "{}: campaign sending ({} so far); {pings} pings, one every {EVERY:?}",
        at(),
        stub.of_campaign(CAMPAIGN)
    );

    // The pings, each from a number of its own, on a fixed schedule.
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap();
    let first = Instant::now();
    let mut tasks = Vec::with_capacity(pings);
    for k in 0..pings {
        tokio::time::sleep_until((first + EVERY * k as u32).into()).await;
        let (client, url) = (client.clone(), webhook.clone());
        tasks.push(tokio::spawn(async move {
            let phone = phone(k);
            let sent = Instant::now();
            let status = client
                .post(url)
                .form(&[("identity", phone.as_str()), ("text", "ping")])
                .send()
                .await
                .map(|r| r.status().as_u16())
                .map_err(|e| e.to_string());
            Ping {
                phone,
                sent,
                status,
            }
        }));
    }
    let mut sent = Vec::with_capacity(pings);
    for t in tasks {
        sent.push(t.await.unwrap());
    }
    let last = Instant::now();
    // Every pong, or 30 s.
    let deadline = Instant::now() + Duration::from_secs(30);
    let pong = |ping: &Ping| {
        stub.with(|requests| {
            requests
                .iter()
                .find(|r| r.identity == ping.phone && r.campaign.is_none())
                .map(|r| (r.at.saturating_duration_since(ping.sent), r.text.clone()))
        })
    };
    while sent.iter().any(|s| pong(s).is_none()) && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    let window = last - first;
    let during = stub.with(|requests| {
        requests
            .iter()
            .filter(|r| r.campaign.is_some() && r.at >= first && r.at <= last)
            .count()
    });
    let all_during = stub.with(|requests| {
        requests
            .iter()
            .filter(|r| r.at >= first && r.at <= last)
            .count()
    });
    let refused: Vec<String> = sent
        .iter()
        .filter(|s| s.status != Ok(200))
        .map(|s| format!("{}: {:?}", s.phone, s.status))
        .collect();
    let mut latencies = Vec::new();
    let mut unanswered = Vec::new();
    let mut wrong = Vec::new();
    for s in &sent {
        match pong(s) {
            Some((latency, text)) => {
                latencies.push(latency);
                if text != "pong" {
                    wrong.push(format!("{}: {text:?}", s.phone));
                }
            }
            None => unanswered.push(s.phone.clone()),
        }
    }
    latencies.sort();
    let (status, view) = admin
        .post(&format!("/api/campaigns/{CAMPAIGN}/cancel"), json!({}))
        .await;
    let secs = |d: Duration| d.as_secs_f64();
    println!(
        "campaign lanes summary: provider limit {rate}/s; {} pings over {:.1}s: {} answered, {} refused, {} unanswered; reply latency p50 {:.2}s, p90 {:.2}s, p99 {:.2}s, max {:.2}s (goal p99 ≤ {:.0}s); meanwhile the campaign sent {during} ({:.1}/s) and the provider got {all_during} requests in all ({:.1}/s); campaign after the cancel: {} sent of {n}",
        sent.len(),
        secs(window),
        latencies.len(),
        refused.len(),
        unanswered.len(),
        secs(quantile(&latencies, 0.5)),
        secs(quantile(&latencies, 0.9)),
        secs(quantile(&latencies, 0.99)),
        secs(quantile(&latencies, 1.0)),
        secs(GOAL),
        during as f64 / secs(window),
        all_during as f64 / secs(window),
        view["progress"]["sent"],
    );
    drop(fleet);
    drop(broker);
    assert!(refused.is_empty(), "pings not taken: {refused:?}");
    assert!(
        unanswered.is_empty(),
        "pings never answered: {unanswered:?}"
    );
    assert!(wrong.is_empty(), "answers that are not pong: {wrong:?}");
    assert!(
        quantile(&latencies, 0.99) <= GOAL,
        "replies during the campaign took longer than {GOAL:?} at the 99th percentile: {:?}",
        &latencies[latencies.len().saturating_sub(5)..]
    );
    assert!(
        during as f64 >= secs(window) * rate as f64 / 4.0,
        "the campaign did not keep sending during the pings: {during} in {:.1}s at a limit of {rate}/s",
        secs(window)
    );
    assert_eq!(status, 200, "the cancel: {view}");
    assert_eq!(view["campaign"]["state"], "cancelled", "{view:#}");
}

/// The percentile is by nearest rank: of 100 latencies one slow one is not
/// the 99th percentile, two are.
#[test]
fn the_99th_percentile_of_100_tolerates_one_outlier_only() {
    let mut v: Vec<Duration> = (0..100).map(|_| Duration::from_millis(300)).collect();
    v[99] = Duration::from_secs(9);
    assert_eq!(quantile(&v, 0.99), Duration::from_millis(300));
    v[98] = Duration::from_secs(5);
    v.sort();
    assert_eq!(quantile(&v, 0.99), Duration::from_secs(5));
    assert_eq!(quantile(&v, 0.5), Duration::from_millis(300));
    assert_eq!(quantile(&[], 0.99), Duration::ZERO);
}
