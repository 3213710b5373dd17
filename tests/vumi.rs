//! The Vumi backend on the embedded bus: RapidSMS's VumiBackend formats in
//! and out against a local stand-in for Vumi's HTTP API (basic auth, answers
//! with the message and its `message_id`), and Vumi's events.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use axum::{Json, Router};
use base64::Engine as _;
use serde_json::{json, Value};
use smsflow::message::{Connection, DeliveryStatus};
use smsflow::schema;

mod common;

/// `user:pass`, as HTTP basic auth sends it.
const AUTH: &str = "Basic dXNlcjpwYXNz";
const SORRY: &str = "Sorry, Vumi test could not understand your message.";
/// The basic auth Vumi sends with its posts to smsflow (`receive:`).
const HOOK_USER: &str = "vumi";
const HOOK_PASS: &str = "vumi-hook-password-0123";

/// A client that posts as Vumi does, with the webhooks' basic auth.
fn vumi_client() -> reqwest::Client {
    let mut headers = reqwest::header::HeaderMap::new();
    let token = base64::prelude::BASE64_STANDARD.encode(format!("{HOOK_USER}:{HOOK_PASS}"));
    headers.insert("authorization", format!("Basic {token}").parse().unwrap());
    reqwest::Client::builder()
        .default_headers(headers)
        .build()
        .unwrap()
}

#[derive(Debug, Clone)]
struct Request {
    authorization: Option<String>,
    content_type: Option<String>,
    body: Value,
}

async fn send(
    State(requests): State<Arc<Mutex<Vec<Request>>>>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> (StatusCode, Json<Value>) {
    let header = |n: &str| {
        headers
            .get(n)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    };
    let request = Request {
        authorization: header("authorization"),
        content_type: header("content-type"),
        body: serde_json::from_slice(&body).unwrap_or(Value::Null),
    };
    let n = {
        let mut r = requests.lock().unwrap();
        r.push(request.clone());
        r.len()
    };
    if request.authorization.as_deref() != Some(AUTH) {
        return (
            StatusCode::UNAUTHORIZED,
            Json(json!({"error": "unauthorized"})),
        );
    }
    // Vumi's HTTP API answers with the message it queued.
    let mut sent = request.body.clone();
    sent["message_id"] = json!(format!("vumi-out-{n}"));
    sent["message_type"] = json!("user_message");
    sent["message_version"] = json!("20110921");
    (StatusCode::OK, Json(sent))
}

async fn post_json(client: &reqwest::Client, url: &str, body: &str) -> (u16, Value) {
    // No content type: Vumi's body is JSON whatever it says.
    let res = client.post(url).body(body.to_owned()).send().await.unwrap();
    common::json_answer(res).await
}

/// A Vumi message as Vumi posts it to RapidSMS.
fn vumi_message(id: &str, content: Option<Value>) -> Value {
    let mut m = json!({
        "transport_name": "transport", "in_reply_to": null, "group": null,
        "from_addr": "+255712345678", "message_type": "user_message", "helper_metadata": {},
        "to_addr": "1234", "message_version": "20110921", "transport_type": "sms",
        "timestamp": "2024-05-01 10:00:00.000000", "transport_metadata": {},
        "session_event": null, "message_id": id
    });
    if let Some(c) = content {
        m["content"] = c;
    }
    m
}

fn vumi_event(event_type: &str, user_message_id: &str, extra: Value) -> Value {
    let mut e = json!({
        "message_type": "event", "message_version": "20110921", "event_id": format!("ev-{user_message_id}-{event_type}"),
        "event_type": event_type, "user_message_id": user_message_id,
        "timestamp": "2024-05-01 10:00:01.000000", "transport_name": "transport",
        "transport_metadata": {}, "helper_metadata": {}, "routing_metadata": {}
    });
    for (k, v) in extra.as_object().unwrap() {
        e[k] = v.clone();
    }
    e
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn vumi_messages_replies_and_events() {
    let requests = Arc::new(Mutex::new(Vec::<Request>::new()));
    let app = Router::new()
        .route("/send", post(send))
        .with_state(requests.clone());
    let url = format!("http://{}/send", common::serve(app).await);

    let yaml = format!(
        "project: Vumi test\nhttp:\n  listen: ${{SMSFLOW_LISTEN}}\nbackends:\n  - type: vumi\n    name: vm\n    sendsms_url: {url}\n    sendsms_user: user\n    sendsms_pass: pass\n    sendsms_params: {{transport_name: sms_out, priority: high}}\n    send: {{backoff: 10ms}}\n    receive: {{username: {HOOK_USER}, password: {HOOK_PASS}}}\nroutes:\n  - app: echo\napps:\n  - type: echo\n  - type: default\n"
    );
    let running = common::start_embedded(&yaml).await;
    let base = format!("http://{}/backend/vm", running.http_addr().unwrap());
    let mut events = running
        .bus()
        .consumer("test.events", &["sms.events"])
        .unwrap();
    let mut inbound = running
        .bus()
        .consumer("test.inbound", &["sms.inbound"])
        .unwrap();
    let client = vumi_client();

    // A message exactly as Vumi posts it (no content type): 200, empty body.
    let msg = vumi_message("vumi-in-1", Some(json!("echo Habari, ñ € 😀")));
    let (status, answer) = post_json(&client, &format!("{base}/"), &msg.to_string()).await;
    assert_eq!((status, answer), (200, Value::Null));
    let r = tokio::time::timeout(Duration::from_secs(20), inbound.recv())
        .await
        .unwrap()
        .unwrap();
    let m = schema::inbound().decode(&r.payload).unwrap();
    assert_eq!(m.text, "echo Habari, ñ € 😀");
    assert_eq!(m.connection, Connection::new("vm", "+255712345678"));
    assert_eq!(m.external_id.as_deref(), Some("vumi-in-1"));
    let fields: Vec<(&str, &str)> = m
        .fields
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    assert_eq!(
        fields,
        vec![
            ("from_addr", "+255712345678"),
            ("message_id", "vumi-in-1"),
            ("to_addr", "1234"),
            ("transport_name", "transport"),
            ("transport_type", "sms"),
        ]
    );

    // The echo reply: RapidSMS's payload, params merged, basic auth.
    let reply = common::next_event(&mut events).await;
    assert_eq!(reply.status, DeliveryStatus::Sent, "{reply:?}");
    assert_eq!(reply.connection, Connection::new("vm", "+255712345678"));
    assert_eq!(
        (
            reply.provider_id.as_deref(),
            reply.provider_status.as_deref()
        ),
        (Some("vumi-out-1"), Some("200"))
    );
    {
        let r = requests.lock().unwrap();
        assert_eq!(r.len(), 1);
        assert_eq!(r[0].authorization.as_deref(), Some(AUTH));
        assert_eq!(r[0].content_type.as_deref(), Some("application/json"));
        assert_eq!(
            r[0].body,
            json!({"transport_name": "sms_out", "priority": "high", "content": "Habari, ñ € 😀",
                   "to_addr": ["+255712345678"], "session_event": null,
                   "metadata": {"rapidsms_msg_id": reply.message_id}, "in_reply_to": "vumi-in-1"})
        );
    }

    // Empty, null and missing content are accepted, and reach the default app.
    for (id, content) in [
        ("vumi-in-2", Some(json!(""))),
        ("vumi-in-3", Some(Value::Null)),
        ("vumi-in-4", None),
    ] {
        let (status, answer) = post_json(
            &client,
            &format!("{base}/"),
            &vumi_message(id, content).to_string(),
        )
        .await;
        assert_eq!((status, answer), (200, Value::Null), "{id}");
    }
    let mut sorry = Vec::new();
    for _ in 0..3 {
        let e = common::next_event(&mut events).await;
        assert_eq!(e.status, DeliveryStatus::Sent, "{e:?}");
        sorry.push(e);
    }
    {
        let r = requests.lock().unwrap();
        let mut answered: Vec<&str> = r[1..]
            .iter()
            .map(|q| {
                assert_eq!(q.body["content"], SORRY);
                q.body["in_reply_to"].as_str().unwrap()
            })
            .collect();
        answered.sort();
        assert_eq!(answered, ["vumi-in-2", "vumi-in-3", "vumi-in-4"]);
    }
    let sorry_for = |pid: &str| {
        sorry
            .iter()
            .find(|e| e.provider_id.as_deref() == Some(pid))
            .unwrap()
            .message_id
            .clone()
    };

    // Events name Vumi's id of our message: found through the send's answer.
    for (path, event, id, status, provider_status, error) in [
        (
            "/event",
            vumi_event("ack", "vumi-out-1", json!({"sent_message_id": "smsc-1"})),
            reply.message_id.clone(),
            DeliveryStatus::Sent,
            "ack",
            None,
        ),
        (
            "/event",
            vumi_event(
                "delivery_report",
                "vumi-out-1",
                json!({"delivery_status": "pending"}),
            ),
            reply.message_id.clone(),
            DeliveryStatus::Queued,
            "delivery_report:pending",
            None,
        ),
        (
            "/event",
            vumi_event(
                "delivery_report",
                "vumi-out-1",
                json!({"delivery_status": "delivered"}),
            ),
            reply.message_id.clone(),
            DeliveryStatus::Delivered,
            "delivery_report:delivered",
            None,
        ),
        (
            "/event",
            vumi_event("nack", "vumi-out-2", json!({"nack_reason": "no route"})),
            sorry_for("vumi-out-2"),
            DeliveryStatus::Failed,
            "nack",
            Some("no route"),
        ),
        // Posted to the messages URL: still an event.
        (
            "/",
            vumi_event(
                "delivery_report",
                "vumi-out-3",
                json!({"delivery_status": "failed"}),
            ),
            sorry_for("vumi-out-3"),
            DeliveryStatus::Failed,
            "delivery_report:failed",
            Some("Vumi delivery report: failed"),
        ),
    ] {
        let (code, answer) = post_json(&client, &format!("{base}{path}"), &event.to_string()).await;
        assert_eq!((code, &answer), (200, &Value::Null), "{event}");
        let e = common::next_event(&mut events).await;
        assert_eq!(e.message_id, id, "{e:?}");
        assert_eq!(e.connection, Connection::new("vm", "+255712345678"));
        assert_eq!(e.status, status);
        assert_eq!(e.provider_status.as_deref(), Some(provider_status));
        assert_eq!(e.error.as_deref(), error);
    }

    // Bad input: 400 naming the field.
    let without = |key: &str| {
        let mut m = vumi_message("vumi-in-9", Some(json!("hi")));
        m.as_object_mut().unwrap().remove(key);
        m.to_string()
    };
    let with = |key: &str, v: Value| {
        let mut m = vumi_message("vumi-in-9", Some(json!("hi")));
        m[key] = v;
        m.to_string()
    };
    for (path, body, field) in [
        ("/", "{oops".to_owned(), "body"),
        ("/", "\"hi\"".to_owned(), "body"),
        ("/", without("message_id"), "message_id"),
        ("/", with("message_id", json!("")), "message_id"),
        ("/", without("from_addr"), "from_addr"),
        ("/", with("from_addr", json!("not a number")), "from_addr"),
        ("/", without("transport_type"), "transport_type"),
        ("/", with("content", json!({"x": 1})), "content"),
        ("/event", "{}".to_owned(), "event_type"),
        ("/event", r#"{"event_type": "ack"}"#.to_owned(), "user_message_id"),
        (
            "/event",
            r#"{"event_type": "delivery_report", "user_message_id": "x"}"#.to_owned(),
            "delivery_status",
        ),
        (
            "/event",
            r#"{"event_type": "delivery_report", "user_message_id": "x", "delivery_status": "lost"}"#
                .to_owned(),
            "delivery_status",
        ),
        (
            "/event",
            r#"{"event_type": "bounce", "user_message_id": "x"}"#.to_owned(),
            "event_type",
        ),
    ] {
        let (status, answer) = post_json(&client, &format!("{base}{path}"), &body).await;
        assert_eq!(status, 400, "{path} {body}: {answer}");
        assert_eq!(answer["field"], field, "{path} {body}: {answer}");
    }

    running.shutdown().await.unwrap();
}

/// Forged Vumi posts (before: 200): no basic auth is 401 asking for it, a
/// wrong password 403, on the messages URL and the events URL; nothing
/// reaches `sms.inbound` or `sms.events`, and a forged nack leaves the real
/// message's status alone. Over-long input is refused naming Vumi's field
/// (before: a 1.5 MB `message_id` was stored).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forged_posts_are_refused_and_over_long_fields_named() {
    let requests = Arc::new(Mutex::new(Vec::<Request>::new()));
    let app = Router::new()
        .route("/send", post(send))
        .with_state(requests.clone());
    let url = format!("http://{}/send", common::serve(app).await);
    let yaml = format!(
        "http:\n  listen: ${{SMSFLOW_LISTEN}}\nbackends:\n  - type: vumi\n    name: vm\n    sendsms_url: {url}\n    sendsms_user: user\n    sendsms_pass: pass\n    receive: {{username: {HOOK_USER}, password: {HOOK_PASS}, max_text: 200}}\nroutes:\n  - app: echo\napps:\n  - type: echo\n"
    );
    let running = common::start_embedded(&yaml).await;
    let base = format!("http://{}/backend/vm", running.http_addr().unwrap());
    let bus = running.bus();
    let mut inbound = bus.consumer("test.in", &["sms.inbound"]).unwrap();
    let mut events = bus.consumer("test.events", &["sms.events"]).unwrap();
    let anyone = reqwest::Client::new();
    let forged = vumi_message("forged-1", Some(json!("echo forged"))).to_string();

    let res = anyone
        .post(format!("{base}/"))
        .body(forged.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 401);
    assert_eq!(
        res.headers()["www-authenticate"],
        "Basic realm=\"smsflow webhooks\""
    );
    for (user, pass) in [(HOOK_USER, "wrong"), ("user", "pass"), (HOOK_USER, "")] {
        let res = anyone
            .post(format!("{base}/"))
            .basic_auth(user, Some(pass))
            .body(forged.clone())
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 403, "{user}:{pass}");
    }
    // The real one: the first on sms.inbound, and its echo is sent.
    let real = vumi_message("real-1", Some(json!("echo real"))).to_string();
    let (status, _) = post_json(&vumi_client(), &format!("{base}/"), &real).await;
    assert_eq!(status, 200);
    assert_eq!(
        common::next(&mut inbound, schema::inbound()).await.text,
        "echo real"
    );
    let sent = common::next_event(&mut events).await;
    assert_eq!(sent.status, DeliveryStatus::Sent);
    let vumi_id = sent.provider_id.clone().unwrap();

    // A forged nack for the real message, on both URLs: refused.
    let nack = vumi_event("nack", &vumi_id, json!({"nack_reason": "forged"})).to_string();
    for path in ["/event", "/"] {
        let res = anyone
            .post(format!("{base}{path}"))
            .body(nack.clone())
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 401, "{path}");
        let res = anyone
            .post(format!("{base}{path}"))
            .basic_auth(HOOK_USER, Some("wrong"))
            .body(nack.clone())
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 403, "{path}");
    }
    // The real delivery report is the message's next event.
    let delivered = vumi_event(
        "delivery_report",
        &vumi_id,
        json!({"delivery_status": "delivered"}),
    );
    let (status, _) = post_json(
        &vumi_client(),
        &format!("{base}/event"),
        &delivered.to_string(),
    )
    .await;
    assert_eq!(status, 200);
    let e = common::next_event(&mut events).await;
    assert_eq!(
        (e.message_id.as_str(), e.status),
        (sent.message_id.as_str(), DeliveryStatus::Delivered)
    );

    // Over-long input, with the right credentials: refused, naming Vumi's field.
    let client = vumi_client();
    // The issue's 1.5 MB message_id is over the request body limit first.
    let huge_id = vumi_message(&"m".repeat(1_500_000), Some(json!("hi"))).to_string();
    let long_id = vumi_message(&"m".repeat(300), Some(json!("hi"))).to_string();
    let long_text = vumi_message("long-1", Some(json!("x".repeat(201)))).to_string();
    let mut long_addr = vumi_message("long-2", Some(json!("hi")));
    long_addr["transport_name"] = json!("t".repeat(2000));
    let long_event = vumi_event("ack", &"v".repeat(300), json!({})).to_string();
    for (path, body, status, field) in [
        ("/", huge_id, 413, "body"),
        ("/", long_id, 400, "message_id"),
        ("/", long_text, 413, "content"),
        ("/", long_addr.to_string(), 400, "transport_name"),
        ("/event", long_event, 400, "user_message_id"),
    ] {
        let (code, answer) = post_json(&client, &format!("{base}{path}"), &body).await;
        assert_eq!(
            (code, answer["field"].as_str()),
            (status, Some(field)),
            "{answer}"
        );
    }
    // None was stored: the next inbound message is this one.
    let after = vumi_message("after-1", Some(json!("after"))).to_string();
    assert_eq!(post_json(&client, &format!("{base}/"), &after).await.0, 200);
    assert_eq!(
        common::next(&mut inbound, schema::inbound()).await.text,
        "after"
    );
    running.shutdown().await.unwrap();
}
