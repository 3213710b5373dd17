//! What every provider backend's sink and source do, whatever the provider
//! (shown with the generic HTTP backend and a fake gateway): rate limits,
//! bounded concurrency, at most one send per message id (also across a
//! restart, on a real broker), inbound repeats dropped, numbers normalised.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::State;
use axum::routing::post;
use axum::{Json, Router};
use bytes::Bytes;
use serde_json::{json, Value};
use smsflow::bus::{Consumer, Produce};
use smsflow::config::KafkaMode;
use smsflow::message::{Connection, DeliveryEvent, DeliveryStatus, OutboundMessage};
use smsflow::schema;
use smsflow::topology::{Running, Topology};

mod common;

/// A gateway that answers every request after `delay`, recording when each
/// arrived and how many were in flight at once.
#[derive(Default)]
struct Gateway {
    delay: Duration,
    requests: Vec<(Instant, Value)>,
    in_flight: usize,
    most_in_flight: usize,
}

async fn send(State(g): State<Arc<Mutex<Gateway>>>, Json(body): Json<Value>) -> Json<Value> {
    let delay = {
        let mut g = g.lock().unwrap();
        g.requests.push((Instant::now(), body.clone()));
        g.in_flight += 1;
        g.most_in_flight = g.most_in_flight.max(g.in_flight);
        g.delay
    };
    tokio::time::sleep(delay).await;
    let mut g = g.lock().unwrap();
    g.in_flight -= 1;
    Json(json!({ "id": format!("gw-{}", g.requests.len()) }))
}

async fn gateway(delay: Duration) -> (String, Arc<Mutex<Gateway>>) {
    let state = Arc::new(Mutex::new(Gateway {
        delay,
        ..Gateway::default()
    }));
    let app = Router::new()
        .route("/send", post(send))
        .with_state(state.clone());
    let url = format!("http://{}/send", common::serve(app).await);
    (url, state)
}

fn pipeline(url: &str, extra: &str) -> String {
    // The gateway's webhooks are on loopback here: no secret needed.
    let extra = if extra.contains("receive:") {
        extra.to_owned()
    } else {
        format!("{extra}    receive: {{insecure: true}}\n")
    };
    format!(
        "http:\n  listen: ${{SMSFLOW_LISTEN}}\nbackends:\n  - type: http\n    name: gw\n    url: {url}\n{extra}routes:\n  - app: echo\napps:\n  - type: echo\n"
    )
}

/// Write `msgs` straight to the sink's topic, as the outgoing router would.
async fn to_sink(running: &Running, msgs: &[OutboundMessage]) {
    let producer = running.bus().producer().unwrap();
    for m in msgs {
        producer
            .send_and_wait(Produce::new(
                Arc::from("sms.send.gw"),
                Bytes::from(m.connection.key()),
                schema::outbound().encode(m).unwrap(),
            ))
            .await
            .unwrap();
    }
}

fn outbound(n: usize, text: &str, segments: i32) -> Vec<OutboundMessage> {
    (0..n)
        .map(|i| {
            let mut m =
                OutboundMessage::new(Connection::new("gw", format!("+1555000{i:04}")), text);
            m.segments = segments;
            m
        })
        .collect()
}

async fn events(consumer: &mut Consumer, n: usize) -> Vec<DeliveryEvent> {
    let mut out = Vec::new();
    while out.len() < n {
        out.push(common::next_event(consumer).await);
    }
    out
}

/// Gaps between consecutive requests, in arrival order.
fn gaps(g: &Gateway) -> Vec<Duration> {
    g.requests
        .windows(2)
        .map(|w| w[1].0.duration_since(w[0].0))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rate_limits_space_messages_and_segments_and_drop_nothing() {
    let (url, gw) = gateway(Duration::ZERO).await;
    // 20 messages/s: requests at least 50 ms apart; a slow machine only
    // makes them later, never earlier.
    let running =
        common::start_embedded(&pipeline(&url, "    send: {rate: 20, concurrency: 4}\n")).await;
    let mut ev = running
        .bus()
        .consumer("test.events", &["sms.events"])
        .unwrap();
    to_sink(&running, &outbound(8, "hi", 1)).await;
    let got = events(&mut ev, 8).await;
    assert!(
        got.iter().all(|e| e.status == DeliveryStatus::Sent),
        "{got:?}"
    );
    for gap in gaps(&gw.lock().unwrap()) {
        assert!(
            gap >= Duration::from_millis(45),
            "requests {gap:?} apart at 20/s"
        );
    }
    running.shutdown().await.unwrap();

    // 10 segments/s and 3-segment messages: one message per 300 ms.
    let (url, gw) = gateway(Duration::ZERO).await;
    let running = common::start_embedded(&pipeline(&url, "    send: {segment_rate: 10}\n")).await;
    let mut ev = running
        .bus()
        .consumer("test.events", &["sms.events"])
        .unwrap();
    to_sink(&running, &outbound(4, "long", 3)).await;
    events(&mut ev, 4).await;
    for gap in gaps(&gw.lock().unwrap()) {
        assert!(
            gap >= Duration::from_millis(270),
            "3-segment messages {gap:?} apart at 10 segments/s"
        );
    }
    running.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrency_is_bounded_and_used() {
    let (url, gw) = gateway(Duration::from_millis(300)).await;
    let running = common::start_embedded(&pipeline(&url, "    send: {concurrency: 3}\n")).await;
    let mut ev = running
        .bus()
        .consumer("test.events", &["sms.events"])
        .unwrap();
    to_sink(&running, &outbound(12, "hi", 1)).await;
    let got = events(&mut ev, 12).await;
    assert!(got.iter().all(|e| e.status == DeliveryStatus::Sent));
    let (requests, most) = {
        let g = gw.lock().unwrap();
        (g.requests.len(), g.most_in_flight)
    };
    assert_eq!(requests, 12);
    assert_eq!(most, 3, "never more than 3 at once, and 3 used");
    running.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_message_id_is_sent_once_and_its_event_repeated() {
    let (url, gw) = gateway(Duration::ZERO).await;
    let running = common::start_embedded(&pipeline(&url, "")).await;
    let mut ev = running
        .bus()
        .consumer("test.events", &["sms.events"])
        .unwrap();
    let m = outbound(1, "once", 1);
    to_sink(&running, &m).await;
    let first = events(&mut ev, 1).await.remove(0);
    to_sink(&running, &m).await;
    let again = events(&mut ev, 1).await.remove(0);
    assert_eq!(gw.lock().unwrap().requests.len(), 1);
    assert_eq!(
        (first.status, first.provider_id.as_deref()),
        (DeliveryStatus::Sent, Some("gw-1"))
    );
    assert_eq!(again, first, "the repeat says the same, nothing is sent");
    running.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn inbound_repeats_are_dropped_and_numbers_normalised() {
    let (url, gw) = gateway(Duration::ZERO).await;
    let running = common::start_embedded(&pipeline(
        &url,
        "    receive: {country: TZ, dedupe_window: 1m, insecure: true}\n",
    ))
    .await;
    let base = format!("http://{}/backend/gw/", running.http_addr().unwrap());
    let mut inbound = running.bus().consumer("test.in", &["sms.inbound"]).unwrap();
    let mut ev = running
        .bus()
        .consumer("test.events", &["sms.events"])
        .unwrap();
    let client = reqwest::Client::new();
    for _ in 0..3 {
        let res = client
            .post(&base)
            .form(&[
                ("identity", "0712 345 678"),
                ("text", "echo karibu"),
                ("id", "gw-in-1"),
            ])
            .send()
            .await
            .unwrap();
        assert_eq!(
            (res.status().as_u16(), res.text().await.unwrap().as_str()),
            (200, "OK")
        );
    }
    let e = events(&mut ev, 1).await.remove(0);
    assert_eq!(e.connection.identity, "+255712345678");
    let r = inbound.recv().await.unwrap();
    let msg = schema::inbound().decode(&r.payload).unwrap();
    assert_eq!(msg.connection.identity, "+255712345678");
    assert_eq!(msg.fields["raw_identity"], "0712 345 678");
    assert_eq!(msg.external_id.as_deref(), Some("gw-in-1"));
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(
        inbound
            .recv_drain(Duration::from_millis(10))
            .await
            .is_none(),
        "stored once"
    );
    assert_eq!(gw.lock().unwrap().requests.len(), 1, "answered once");
    running.shutdown().await.unwrap();
}

/// On a real broker the sent-log outlives the process: a message read again
/// after a restart is not sent again, and one whose send was cut short is
/// reported failed (outcome unknown) rather than risk a duplicate.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_message_is_sent_twice_across_a_restart() {
    require_tools!(common::Tool::Tansu);
    let broker = common::broker::Broker::start();
    let (url, gw) = gateway(Duration::ZERO).await;
    let p = common::on_broker(
        common::pipeline_from(&pipeline(&url, ""), KafkaMode::Embedded),
        &broker.brokers(),
        "restart",
    );
    let sent = outbound(1, "before the restart", 1);
    let first = Topology::new(p.clone())
        .unwrap()
        .start(None, true)
        .await
        .unwrap();
    let mut ev = first
        .bus()
        .consumer("test.events", &["sms.events"])
        .unwrap();
    to_sink(&first, &sent).await;
    let before = events(&mut ev, 1).await.remove(0);
    assert_eq!(before.status, DeliveryStatus::Sent);
    drop(ev);
    first.shutdown().await.unwrap();

    // A send cut short by a crash: `sending` stored, no outcome.
    let cut = outbound(1, "cut short", 1);
    let producer = {
        let bus = smsflow::bus::Bus::connect(&p.kafka, &[]).await.unwrap();
        let producer = bus.producer().unwrap();
        producer
            .send_and_wait(Produce::new(
                Arc::from("sms.send.gw.sent"),
                Bytes::from(cut[0].id.clone()),
                Bytes::from(format!(
                    r#"{{"state":"sending","identity":"{}","at":1}}"#,
                    cut[0].connection.identity
                )),
            ))
            .await
            .unwrap();
        (bus, producer)
    };
    drop(producer);

    let second = Topology::new(p).unwrap().start(None, true).await.unwrap();
    let mut ev = second
        .bus()
        .consumer("test.events.2", &["sms.events"])
        .unwrap();
    events(&mut ev, 1).await; // the first run's event
    to_sink(&second, &sent).await;
    to_sink(&second, &cut).await;
    let got = events(&mut ev, 2).await;
    assert_eq!(got[0].message_id, sent[0].id);
    assert_eq!(
        (got[0].status, &got[0].provider_id),
        (DeliveryStatus::Sent, &before.provider_id)
    );
    assert_eq!(got[1].message_id, cut[0].id);
    assert_eq!(got[1].status, DeliveryStatus::Failed);
    assert!(
        got[1].error.as_deref().unwrap().contains("outcome unknown"),
        "{got:?}"
    );
    assert_eq!(
        gw.lock().unwrap().requests.len(),
        1,
        "only the first run's request"
    );
    second.shutdown().await.unwrap();
}

/// A provider that cannot be reached: retried, then `failed` with the reason,
/// and no credential of the URL in the event (nor in the logs).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_provider_fails_without_leaking_its_url() {
    let closed = common::free_port();
    let url = format!("http://127.0.0.1:{closed}/send?password=SECRET");
    let running =
        common::start_embedded(&pipeline(&url, "    send: {attempts: 2, backoff: 10ms}\n")).await;
    let mut ev = running
        .bus()
        .consumer("test.events", &["sms.events"])
        .unwrap();
    to_sink(&running, &outbound(1, "hi", 1)).await;
    let e = common::next_event(&mut ev).await;
    assert_eq!(e.status, DeliveryStatus::Failed);
    let error = e.error.unwrap_or_default();
    assert!(
        error.contains("gave up after 2 tries: cannot connect"),
        "{error}"
    );
    assert!(!error.contains("SECRET"), "{error}");
    running.shutdown().await.unwrap();
}
