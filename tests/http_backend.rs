//! The generic HTTP backend on the embedded bus: RapidSMS's inbound form, and
//! a sink that POSTs JSON with an idempotency key, retries what is transient
//! and reports each outcome on `sms.events`.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use axum::{Json, Router};
use serde_json::{json, Value};
use smsflow::config::KafkaMode;
use smsflow::message::DeliveryStatus;
use smsflow::schema;
use smsflow::topology::Topology;

mod common;

/// The gateway's webhook secret (`receive.secret`) in these tests.
const SECRET: &str = "gateway-secret-0123456789abcdef";

/// A client that sends [`SECRET`] as the gateway would, in a header.
fn gateway_client() -> reqwest::Client {
    let mut headers = reqwest::header::HeaderMap::new();
    headers.insert("X-Smsflow-Secret", SECRET.parse().unwrap());
    reqwest::Client::builder()
        .default_headers(headers)
        .build()
        .unwrap()
}

/// A provider that fails the first try of "flaky" texts (503) and rejects
/// "reject" texts (400).
#[derive(Default)]
struct Provider {
    requests: Vec<(String, Value)>,
}

async fn send(
    State(p): State<Arc<Mutex<Provider>>>,
    headers: HeaderMap,
    Json(body): Json<Value>,
) -> (StatusCode, Json<Value>) {
    let key = headers
        .get("idempotency-key")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    let mut p = p.lock().unwrap();
    let tries = p.requests.iter().filter(|(k, _)| *k == key).count();
    p.requests.push((key, body.clone()));
    match body["text"].as_str().unwrap_or_default() {
        "flaky" if tries == 0 => (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(json!({"error": "busy"})),
        ),
        "reject" => (
            StatusCode::BAD_REQUEST,
            Json(json!({"error": "bad number"})),
        ),
        _ => (StatusCode::OK, Json(json!({"id": format!("prov-{tries}")}))),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn generic_http_backend_in_and_out() {
    let provider = Arc::new(Mutex::new(Provider::default()));
    let app = Router::new()
        .route("/send", post(send))
        .with_state(provider.clone());
    let url = format!("http://{}/send", common::serve(app).await);

    let yaml = format!(
        "http:\n  listen: ${{SMSFLOW_LISTEN}}\nbackends:\n  - type: http\n    name: gw\n    url: {url}\n    send: {{backoff: 10ms}}\n    receive: {{secret: {SECRET}}}\nroutes:\n  - app: echo\napps:\n  - type: echo\n"
    );
    let running = common::start_embedded(&yaml).await;
    let base = format!("http://{}", running.http_addr().unwrap());
    let mut events = running
        .bus()
        .consumer("test.events", &["sms.events"])
        .unwrap();
    let client = gateway_client();

    // Inbound: GET with a query, POST with a form; RapidSMS answers "OK".
    for (i, text) in ["echo hello", "echo flaky", "echo reject"]
        .iter()
        .enumerate()
    {
        let res = if i % 2 == 0 {
            client
                .get(format!("{base}/backend/gw/"))
                .query(&[("identity", "+15550300"), ("text", text)])
                .send()
                .await
                .unwrap()
        } else {
            client
                .post(format!("{base}/backend/gw/"))
                .form(&[("identity", "+15550300"), ("text", text)])
                .send()
                .await
                .unwrap()
        };
        assert_eq!(res.status(), 200);
        assert_eq!(res.text().await.unwrap(), "OK");
        // One at a time, so the outcomes come in this order.
        let r = tokio::time::timeout(Duration::from_secs(20), events.recv())
            .await
            .unwrap()
            .unwrap();
        let e = schema::event().decode(&r.payload).unwrap();
        match *text {
            "echo hello" => assert_eq!(
                (e.status, e.provider_id.as_deref()),
                (DeliveryStatus::Sent, Some("prov-0"))
            ),
            "echo flaky" => assert_eq!(
                (e.status, e.provider_id.as_deref()),
                (DeliveryStatus::Sent, Some("prov-1"))
            ),
            _ => {
                assert_eq!(e.status, DeliveryStatus::Failed);
                assert!(
                    e.error.as_deref().unwrap_or_default().contains("400"),
                    "{e:?}"
                );
            }
        }
    }
    {
        let p = provider.lock().unwrap();
        let (key, body) = &p.requests[0];
        assert_eq!(body["text"], "hello");
        assert_eq!(body["identity"], "+15550300");
        assert_eq!(&body["id"], key, "the idempotency key is the message id");
        assert_eq!(body["encoding"], "gsm7");
        assert_eq!(
            p.requests.len(),
            4,
            "hello once, flaky twice (503 then 200), reject once"
        );
    }

    // Bad requests name the field.
    for (query, field) in [
        (vec![("text", "hi")], "identity"),
        (vec![("identity", "+1555")], "text"),
        (vec![("identity", "x"), ("text", "hi")], "identity"),
    ] {
        let res = client
            .get(format!("{base}/backend/gw/"))
            .query(&query)
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 400);
        assert_eq!(res.json::<Value>().await.unwrap()["field"], field);
    }
    assert_eq!(
        client
            .get(format!("{base}/backend/nope/"))
            .send()
            .await
            .unwrap()
            .status(),
        404
    );

    let started = Instant::now();
    running.shutdown().await.unwrap();
    assert!(started.elapsed() < Duration::from_secs(30));
}

/// The discard backend (the load-test pipeline's): the same GET inbound,
/// and a sink that hands each message to its hook instead of a provider.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn discard_backend_takes_inbound_and_sends_nothing() {
    let text = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/pipelines/loadtest.yaml"
    ))
    .unwrap();
    let mut p = common::pipeline_from(&text, KafkaMode::Embedded);
    p.http.listen = "127.0.0.1:0".parse().unwrap();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let hook_seen = seen.clone();
    let running = Topology::new(p)
        .unwrap()
        .with_send_hook(
            "load",
            Arc::new(move |m: &smsflow::message::OutboundMessage| {
                hook_seen
                    .lock()
                    .unwrap()
                    .push((m.connection.key(), m.text.clone()))
            }),
        )
        .start(None, true)
        .await
        .unwrap();
    let base = format!("http://{}/backend/load/", running.http_addr().unwrap());
    let client = reqwest::Client::new();
    let ok = client
        .get(&base)
        .query(&[("identity", "+15550123"), ("text", "echo discard me")])
        .send()
        .await
        .unwrap();
    assert_eq!(ok.status(), 200);
    let bad = client
        .get(&base)
        .query(&[("identity", "not a number"), ("text", "echo x")])
        .send()
        .await
        .unwrap();
    assert_eq!(bad.status(), 400);
    let deadline = Instant::now() + Duration::from_secs(20);
    while seen.lock().unwrap().is_empty() {
        assert!(Instant::now() < deadline, "the sink never saw the reply");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    running.shutdown().await.unwrap();
    assert_eq!(
        *seen.lock().unwrap(),
        vec![("load:+15550123".to_owned(), "discard me".to_owned())]
    );
    // The source counts what it accepted, the sink what it read: once each.
    let received = |stage| {
        smsflow::metrics::metrics()
            .received
            .with_label_values(&[stage])
            .get()
    };
    assert_eq!((received("source:load"), received("backend:load")), (1, 1));
}

/// `method: get` with a URL template, RapidSMS's configurable parameter
/// names inbound, and delivery reports on `/backend/<name>/status`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn generic_http_url_template_parameter_names_and_reports() {
    let seen: Arc<Mutex<Vec<String>>> = Arc::default();
    let app = Router::new()
        .route(
            "/send",
            axum::routing::get(
                |State(s): State<Arc<Mutex<Vec<String>>>>, uri: axum::http::Uri| async move {
                    s.lock()
                        .unwrap()
                        .push(uri.query().unwrap_or_default().to_owned());
                    "queued"
                },
            ),
        )
        .with_state(seen.clone());
    let gw = common::serve(app).await;

    let yaml = format!(
        "http:\n  listen: ${{SMSFLOW_LISTEN}}\nbackends:\n  - type: http\n    name: gw\n    url: 'http://{gw}/send?to={{identity}}&text={{text}}&ref={{id}}&enc={{encoding}}&n={{segments}}'\n    method: get\n    params: {{identity: phone, text: message, id: msgid}}\n    receive: {{secret: {SECRET}}}\nroutes:\n  - app: echo\napps:\n  - type: echo\n"
    );
    let running = common::start_embedded(&yaml).await;
    let base = format!("http://{}/backend/gw/", running.http_addr().unwrap());
    let mut events = running
        .bus()
        .consumer("test.events", &["sms.events"])
        .unwrap();
    let client = gateway_client();
    let res = client
        .get(&base)
        .query(&[
            ("phone", "+15550300"),
            ("message", "echo a&b = ñ 😀"),
            ("msgid", "g-1"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(
        (res.status().as_u16(), res.text().await.unwrap().as_str()),
        (200, "OK")
    );
    let sent = common::next_event(&mut events).await;
    assert_eq!(sent.status, DeliveryStatus::Sent);
    let query = seen.lock().unwrap()[0].clone();
    assert_eq!(
        query,
        format!(
            "to=%2B15550300&text=a%26b%20%3D%20%C3%B1%20%F0%9F%98%80&ref={}&enc=ucs2&n=1",
            sent.message_id.replace('-', "%2D")
        )
    );

    // The gateway reports delivery, by our id.
    let res = client
        .post(format!("{base}status"))
        .form(&[("id", sent.message_id.as_str()), ("status", "delivered")])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let delivered = common::next_event(&mut events).await;
    assert_eq!(
        (
            delivered.message_id.as_str(),
            delivered.status,
            delivered.connection.identity.as_str()
        ),
        (sent.message_id.as_str(), DeliveryStatus::Delivered, "")
    );

    // Bad input names the field: the configured names, a bad status.
    let long_text = "x".repeat(4001);
    let long_id = "i".repeat(257);
    let long_phone = format!("+1555{}", " ".repeat(64));
    for (form, status, field) in [
        (vec![("identity", "+1555"), ("text", "hi")], 400, "identity"),
        (vec![("phone", "+1555"), ("message", "")], 400, "text"),
        // Over the limits: named by the configured parameter names.
        (
            vec![("phone", "+1555"), ("message", &long_text)],
            413,
            "message",
        ),
        (
            vec![("phone", "+1555"), ("message", "hi"), ("msgid", &long_id)],
            400,
            "msgid",
        ),
        (
            vec![("phone", &long_phone), ("message", "hi")],
            400,
            "phone",
        ),
    ] {
        let res = client.post(&base).form(&form).send().await.unwrap();
        assert_eq!(res.status(), status, "{form:?}");
        let body = res.json::<Value>().await.unwrap();
        assert_eq!(body["field"], field, "{body}");
    }
    let res = client
        .get(format!("{base}status"))
        .query(&[("id", "x"), ("status", "lost")])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 400);
    assert_eq!(res.json::<Value>().await.unwrap()["field"], "status");
    assert_eq!(client.put(&base).send().await.unwrap().status(), 405);

    running.shutdown().await.unwrap();
}

/// Forged requests to the generic HTTP backend (before: 200, even from an
/// `<img>` tag): 401 without the secret, 403 with a wrong one, on the
/// inbound URL and the status URL, and nothing reaches `sms.inbound` or
/// `sms.events`; a forged "failed" report leaves the real message sent.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forged_requests_are_refused_and_store_nothing() {
    let app = Router::new().route("/send", post(|| async { Json(json!({"id": "p-1"})) }));
    let url = format!("http://{}/send", common::serve(app).await);
    let yaml = format!(
        "http:\n  listen: ${{SMSFLOW_LISTEN}}\nbackends:\n  - type: http\n    name: gw\n    url: {url}\n    receive: {{secret: {SECRET}, max_text: 100}}\nroutes:\n  - app: echo\napps:\n  - type: echo\n"
    );
    let running = common::start_embedded(&yaml).await;
    let base = format!("http://{}/backend/gw/", running.http_addr().unwrap());
    let bus = running.bus();
    let mut inbound = bus.consumer("test.in", &["sms.inbound"]).unwrap();
    let mut events = bus.consumer("test.events", &["sms.events"]).unwrap();
    let anyone = reqwest::Client::new();
    let form = [("identity", "+15550400"), ("text", "echo forged")];

    // What an <img src=".../backend/gw/?identity=...&text=..."> sends.
    let img = anyone.get(&base).query(&form).send().await.unwrap();
    assert_eq!(img.status(), 401);
    let body = img.json::<Value>().await.unwrap();
    assert!(
        body["error"].as_str().unwrap().contains("X-Smsflow-Secret"),
        "{body}"
    );
    assert!(!body.to_string().contains(SECRET), "{body}");
    let wrong = anyone
        .post(format!("{base}?secret=not-the-secret"))
        .form(&form)
        .send()
        .await
        .unwrap();
    assert_eq!(wrong.status(), 403);
    let wrong = anyone
        .post(&base)
        .header("X-Smsflow-Secret", "not-the-secret")
        .form(&form)
        .send()
        .await
        .unwrap();
    assert_eq!(wrong.status(), 403);
    // The secret in the URL's query, also for a POST: stored, and first.
    let ok = anyone
        .post(format!("{base}?secret={SECRET}"))
        .form(&[("identity", "+15550400"), ("text", "echo real")])
        .send()
        .await
        .unwrap();
    assert_eq!(ok.status(), 200);
    assert_eq!(
        common::next(&mut inbound, schema::inbound()).await.text,
        "echo real"
    );
    let sent = common::next_event(&mut events).await;
    assert_eq!(sent.status, DeliveryStatus::Sent);

    // A forged report that the real message failed, with its identity (the same partition).
    let report = [
        ("id", sent.message_id.as_str()),
        ("status", "failed"),
        ("identity", "+15550400"),
    ];
    let forged = anyone
        .post(format!("{base}status"))
        .form(&report)
        .send()
        .await
        .unwrap();
    assert_eq!(forged.status(), 401);
    let forged = anyone
        .get(format!("{base}status"))
        .query(&report)
        .query(&[("secret", "not-the-secret")])
        .send()
        .await
        .unwrap();
    assert_eq!(forged.status(), 403);
    let real = gateway_client()
        .post(format!("{base}status"))
        .form(&[
            ("id", sent.message_id.as_str()),
            ("status", "delivered"),
            ("identity", "+15550400"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(real.status(), 200);
    let e = common::next_event(&mut events).await;
    assert_eq!(
        (e.message_id.as_str(), e.status),
        (sent.message_id.as_str(), DeliveryStatus::Delivered)
    );

    // Limits: a text over max_text is 413 naming it; an id over 256 bytes 400.
    let client = gateway_client();
    let res = client
        .post(&base)
        .form(&[("identity", "+15550400"), ("text", &"x".repeat(101))])
        .send()
        .await
        .unwrap();
    let (status, body) = common::json_answer(res).await;
    assert_eq!(
        (status, body["field"].as_str()),
        (413, Some("text")),
        "{body}"
    );
    assert!(
        body["error"].as_str().unwrap().contains("100 characters"),
        "{body}"
    );
    let res = client
        .post(&base)
        .form(&[
            ("identity", "+15550400"),
            ("text", "hi"),
            ("id", &"i".repeat(300)),
        ])
        .send()
        .await
        .unwrap();
    let (status, body) = common::json_answer(res).await;
    assert_eq!(
        (status, body["field"].as_str()),
        (400, Some("id")),
        "{body}"
    );
    let res = client
        .post(format!("{base}status"))
        .form(&[("id", "m".repeat(300).as_str()), ("status", "delivered")])
        .send()
        .await
        .unwrap();
    let (status, body) = common::json_answer(res).await;
    assert_eq!(
        (status, body["field"].as_str()),
        (400, Some("id")),
        "{body}"
    );
    // None of these was stored: the next inbound message is this one.
    let ok = client
        .get(&base)
        .query(&[("identity", "+15550400"), ("text", "after")])
        .send()
        .await
        .unwrap();
    assert_eq!(ok.status(), 200);
    assert_eq!(
        common::next(&mut inbound, schema::inbound()).await.text,
        "after"
    );
    running.shutdown().await.unwrap();
}
