//! A pipeline ran; its next version (one reply text changed, an app
//! removed, an app added) is replayed over the same range.

use std::collections::BTreeMap;
use std::time::Duration;

use serde_json::Value;
use smsflow::topology::{load_file, Topology};

use super::*;

const V1_APPS: &str = "  - type: echo\n  - type: ping\n  - name: hours\n    type: autoresponder\n    keyword: hours\n    reply: Open 9 to 5.\n";
const V2_APPS: &str = "  - type: echo\n  - name: hours\n    type: autoresponder\n    keyword: hours\n    reply: Open 8 to 6.\n  - name: price\n    type: autoresponder\n    pattern: 'price\\s+(?P<item>\\w+)'\n    reply: \"Price of {item}: ask.\"\n";

/// `(change, inbound text, old text, new text)` of each reply, sorted.
fn details(report: &Value) -> Vec<(String, String, Value, Value)> {
    let mut v: Vec<_> = report["details"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| {
            (
                d["change"].as_str().unwrap().to_owned(),
                d["inbound_text"].as_str().unwrap().to_owned(),
                d["old_text"].clone(),
                d["new_text"].clone(),
            )
        })
        .collect();
    v.sort_by(|a, b| a.1.cmp(&b.1));
    v
}

fn counts(report: &Value) -> BTreeMap<&'static str, i64> {
    [
        "messages",
        "messages_unchanged",
        "replies_before",
        "replies_after",
        "identical",
        "changed",
        "new",
        "missing",
        "dead_letters",
    ]
    .into_iter()
    .map(|k| (k, report[k].as_i64().unwrap_or(-1)))
    .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_changed_pipeline_replayed_reports_each_difference_and_sends_nothing() {
    require_tools!(common::Tool::Tansu);
    let broker = common::broker::Broker::start();
    let brokers = broker.brokers();
    let (url, sent) = provider().await;
    let dir = tempfile::tempdir().unwrap();
    let v1 = pipeline(
        dir.path(),
        "v1.yaml",
        &brokers,
        &url,
        &["echo", "ping", "hours"],
        V1_APPS,
    );
    let v2 = pipeline(
        dir.path(),
        "v2.yaml",
        &brokers,
        &url,
        &["echo", "hours", "price"],
        V2_APPS,
    );

    // Version 1 runs and answers: echo, hours and ping (price: no route).
    let running = Topology::new(load_file(&v1).unwrap())
        .unwrap()
        .start(None, false)
        .await
        .unwrap();
    inbound(
        &brokers,
        &["echo hi", "hours", "ping", "price tea", "GARBAGE"],
    )
    .await;
    wait_sent(&sent, 3).await;
    // Later messages, a second apart in the cluster's timestamps.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let later = chrono::Utc::now().to_rfc3339();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    inbound(&brokers, &["echo later", "hours"]).await;
    wait_sent(&sent, 5).await;

    let v2 = v2.to_str().unwrap();
    let all = report(&[v2, "--from", "1h", "--id", "all", "--json"]).await;
    let want = BTreeMap::from([
        ("messages", 7),
        ("messages_unchanged", 2),
        ("replies_before", 5),
        ("replies_after", 5),
        ("identical", 2),
        ("changed", 2),
        ("new", 1),
        ("missing", 1),
        ("dead_letters", 1),
    ]);
    assert_eq!(counts(&all), want, "{all:#}");
    let old = |s: &str| Value::String(s.into());
    assert_eq!(
        details(&all),
        [
            ("identical".into(), "echo hi".into(), old("hi"), old("hi")),
            (
                "identical".into(),
                "echo later".into(),
                old("later"),
                old("later")
            ),
            (
                "changed".into(),
                "hours".into(),
                old("Open 9 to 5."),
                old("Open 8 to 6.")
            ),
            (
                "changed".into(),
                "hours".into(),
                old("Open 9 to 5."),
                old("Open 8 to 6.")
            ),
            ("missing".into(), "ping".into(), old("pong"), Value::Null),
            (
                "new".into(),
                "price tea".into(),
                Value::Null,
                old("Price of tea: ask.")
            ),
        ]
    );
    assert_eq!(all["dlq"][0]["stage"], "router-in", "{all:#}");
    assert_eq!(all["not_run"], Value::Array(vec![]));

    // A time range: only the two later messages.
    let late = report(&[v2, "--from", &later, "--id", "late", "--json"]).await;
    let want = BTreeMap::from([
        ("messages", 2),
        ("messages_unchanged", 1),
        ("replies_before", 2),
        ("replies_after", 2),
        ("identical", 1),
        ("changed", 1),
        ("new", 0),
        ("missing", 0),
        ("dead_letters", 0),
    ]);
    assert_eq!(counts(&late), want, "{late:#}");
    let texts: Vec<String> = details(&late).into_iter().map(|d| d.1).collect();
    assert_eq!(texts, ["echo later", "hours"]);
    // ... and the earlier ones: up to that time.
    let early = report(&[
        v2, "--from", "1h", "--to", &later, "--id", "early", "--json",
    ])
    .await;
    assert_eq!(early["messages"], 5, "{early:#}");

    // The text report names each difference.
    let out = replay(&[v2, "--from", "1h", "--id", "text"]).await;
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        text.contains("2 identical, 2 changed, 1 new, 1 missing"),
        "{text}"
    );
    assert!(
        text.contains("\"Open 9 to 5.\" → \"Open 8 to 6.\""),
        "{text}"
    );

    // An id is used once.
    let e = refused(&[v2, "--from", "1h", "--id", "all"]).await;
    assert!(
        e.contains("--id all: topic replay.all.sms.inbound exists already"),
        "{e}"
    );

    // Nothing reached the provider, nor the topics version 1 reads:
    // version 1 still runs and its sink would have sent anything written there.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let texts = sent.lock().unwrap().clone();
    assert_eq!(texts.len(), 5, "the provider was sent {texts:?}");
    running.shutdown().await.unwrap();

    // Deleting a replay removes its topics and groups, and no other's.
    let gone = report(&[v2, "--delete", "--id", "all", "--json"]).await;
    let topics: Vec<&str> = gone["topics"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t.as_str().unwrap())
        .collect();
    assert!(topics.contains(&"replay.all.sms.inbound"), "{gone}");
    assert!(
        topics.iter().all(|t| t.starts_with("replay.all.")),
        "{gone}"
    );
    assert!(
        gone["groups"]
            .as_array()
            .unwrap()
            .iter()
            .all(|g| g.as_str().unwrap().starts_with("replaytest.replay.all.")),
        "{gone}"
    );
    let e = refused(&[v2, "--delete", "--id", "all"]).await;
    assert!(e.contains("no topic replay.all.*"), "{e}");
    let again = report(&[v2, "--from", "1h", "--id", "all", "--json"]).await;
    assert_eq!(counts(&again), counts(&all), "{again:#}");
}
