//! The HTTP server of the demo pipeline: the tester's JSON API answers and
//! rejects bad requests with a field name, and the operational endpoints.

use serde_json::{json, Value};
use smsflow::config::KafkaMode;
use smsflow::topology::Topology;

mod common;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tester_api_and_operational_endpoints() {
    let running = Topology::new(common::demo(KafkaMode::Embedded))
        .unwrap()
        .start(None, true)
        .await
        .unwrap();
    let base = format!("http://{}", running.admin_addr().unwrap());
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();

    for (i, (text, reply)) in [
        ("echo hi", "hi"),
        ("ping", "pong"),
        (
            "blah",
            "Sorry, smsflow demo could not understand your message.",
        ),
    ]
    .into_iter()
    .enumerate()
    {
        let res = client
            .post(format!("{base}/api/tester/messages"))
            .json(&json!({"identity": "+15551234", "text": text}))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 202);
        let id = res.json::<Value>().await.unwrap()["id"]
            .as_str()
            .unwrap()
            .to_owned();
        let messages = common::conversation(&client, &base, "+15551234", i + 1).await;
        let answer = messages
            .iter()
            .rev()
            .find(|m| m["direction"] == "out")
            .unwrap_or_else(|| panic!("no reply to {text}: {messages:?}"));
        assert_eq!(answer["text"], reply);
        assert!(messages
            .iter()
            .any(|m| m["id"] == id && m["direction"] == "in"));
    }

    let bad = [
        (json!({"text": "hi"}), "identity"),
        (json!({"identity": "+1555"}), "text"),
        (
            json!({"identity": "not a number", "text": "hi"}),
            "identity",
        ),
        (json!({"identity": "+1555", "text": ""}), "text"),
        (
            json!({"identity": "+1555", "text": "hi", "backend": "nope"}),
            "backend",
        ),
    ];
    for (body, field) in bad {
        let res = client
            .post(format!("{base}/api/tester/messages"))
            .json(&body)
            .send()
            .await
            .unwrap();
        assert!(
            res.status() == 400 || res.status() == 404,
            "{body}: {}",
            res.status()
        );
        let err: Value = res.json().await.unwrap();
        assert_eq!(err["field"], field, "{err}");
        assert!(err["error"].as_str().unwrap().len() > 10, "{err}");
    }
    let res = client
        .post(format!("{base}/api/tester/messages"))
        .header("content-type", "application/json")
        .body("{not json")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 400);
    assert!(res.json::<Value>().await.unwrap()["error"]
        .as_str()
        .unwrap()
        .contains("JSON"));

    assert_eq!(
        client
            .get(format!("{base}/healthz"))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    assert_eq!(
        client
            .get(format!("{base}/readyz"))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    let root = client.get(format!("{base}/")).send().await.unwrap();
    assert_eq!(root.headers()["location"], "/tester/");
    let page = client
        .get(format!("{base}/tester/"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(page.contains("Message tester"));
    let metrics = client
        .get(format!("{base}/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    for needle in [
        "smsflow_received_total{stage=\"router-in\"}",
        "smsflow_produced_total{stage=\"app:echo\",topic=\"sms.outbound\"}",
        "smsflow_stage_seconds_bucket{stage=\"router-out\"",
        "smsflow_reply_seconds_count{backend=\"message_tester\"}",
    ] {
        assert!(metrics.contains(needle), "{needle} missing from /metrics");
    }
    running.shutdown().await.unwrap();
}
