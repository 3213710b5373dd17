//! smsflow's Kannel backend against a real Kannel 1.4.5 (Debian's kannel and
//! kannel-extras, started on loopback by tests/common/kannel/):
//! fakesmsc → bearerbox → smsbox get-url → smsflow (echo) → sendsms →
//! bearerbox → fakesmsc, with the delivery reports back as events.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::kannel::{self, reassemble, Kannel, Mo, Mt, MtKind, Sms};
use smsflow::config::KafkaMode;
use smsflow::message::{DeliveryEvent, DeliveryStatus, OutboundMessage};
use smsflow::schema;
use smsflow::topology::{Running, Topology};

mod common;

const PHONE: &str = "255700000001";
const SHORTCODE: &str = "15000";

/// Kannel with its get-url on `port`, and the pipeline smsflow runs there.
async fn kannel_and_pipeline(port: u16) -> (Arc<Kannel>, String) {
    let get_url = kannel::smsflow_get_url(port);
    let k = tokio::task::spawn_blocking(move || Kannel::start(&get_url))
        .await
        .unwrap();
    // Chosen now that Kannel holds its own ports: it could have taken the
    // default admin port (`port` + 1).
    let admin = common::free_port();
    let yaml = format!(
        "http:
  listen: 127.0.0.1:{port}
  admin: {{listen: 127.0.0.1:{admin}}}
  accept_timeout: 2s
backends:
  - type: kannel
    sendsms_url: {url}
    username: {user}
    password: {password}
    from: '{SHORTCODE}'
    receive: {{secret: {secret}}}
routes:
  - app: echo
apps:
  - type: echo
  - type: default
",
        url = k.sendsms_url(),
        user = k.username(),
        password = k.password(),
        secret = kannel::WEBHOOK_SECRET,
    );
    (Arc::new(k), yaml)
}

/// Send `mo` from the phone; the SMS (reassembled) it gets back.
async fn exchange(k: &Arc<Kannel>, mo: Mo) -> (Sms, Vec<Mt>) {
    let k = k.clone();
    tokio::task::spawn_blocking(move || {
        let mts = k.exchange(
            &mo,
            |mts| !reassemble(mts).is_empty(),
            Duration::from_secs(30),
        );
        let mut sms = reassemble(&mts);
        assert_eq!(sms.len(), 1, "{mts:#?}");
        (sms.remove(0), mts)
    })
    .await
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn echoes_through_a_real_kannel_arrive_intact_with_their_delivery_reports() {
    require_tools!(
        common::Tool::Bearerbox,
        common::Tool::Smsbox,
        common::Tool::Fakesmsc
    );
    let port = common::free_port();
    let (k, yaml) = kannel_and_pipeline(port).await;
    let running = Topology::new(common::pipeline_from(&yaml, KafkaMode::Embedded))
        .unwrap()
        .start(None, true)
        .await
        .unwrap();
    let bus = running.bus();
    let mut inbound = bus.consumer("test.in", &["sms.inbound"]).unwrap();
    let mut sent = bus.consumer("test.send", &["sms.send.kannel"]).unwrap();
    let mut events = bus.consumer("test.events", &["sms.events"]).unwrap();

    let long: String = "echo "
        .chars()
        .chain((0..).flat_map(|i| format!("w{i:03} ").chars().collect::<Vec<_>>()))
        .take(400)
        .collect();
    let spaced_long = format!(
        "echo two  spaces,\nnew lines\n\nand   runs of spaces {}",
        "ñ € ".repeat(40)
    );
    // (what the phone sends, as what kind of MO; the echo; its kind and parts)
    let cases: Vec<(Mo, &str, &str, MtKind, usize)> = vec![
        (
            Mo::ucs2(PHONE, SHORTCODE, "echo Habari, ñ € 😀"),
            "echo Habari, ñ € 😀",
            "Habari, ñ € 😀",
            MtKind::Ucs2,
            1,
        ),
        (
            Mo::text(PHONE, SHORTCODE, "echo two  spaces,   three and    four"),
            "echo two  spaces,   three and    four",
            "two  spaces,   three and    four",
            MtKind::Text,
            1,
        ),
        // 400 characters in: 395 out, GSM-7 in 3 concatenated parts.
        (
            Mo::text(PHONE, SHORTCODE, &long),
            &long,
            &long[5..],
            MtKind::Udh,
            3,
        ),
        // Newlines and runs of spaces, long enough to be concatenated (a
        // short text MT with a newline prints as two fakesmsc lines).
        (
            Mo::ucs2(PHONE, SHORTCODE, &spaced_long),
            &spaced_long,
            &spaced_long[5..],
            MtKind::Udh,
            2,
        ),
    ];

    let mut replies: Vec<OutboundMessage> = Vec::new();
    for (i, (mo, text_in, text_out, kind, parts)) in cases.into_iter().enumerate() {
        let (sms, mts) = exchange(&k, mo).await;
        assert_eq!(sms.text(), text_out, "case {i}: {mts:#?}");
        assert_eq!((sms.kind, sms.parts), (kind, parts), "case {i}: {mts:#?}");
        assert_eq!(
            (sms.sender.as_str(), sms.receiver.as_str()),
            (SHORTCODE, PHONE)
        );

        let m = common::next(&mut inbound, schema::inbound()).await;
        assert_eq!(m.text, text_in, "case {i}: what smsflow received");
        assert_eq!(m.connection.identity, PHONE);
        assert_eq!(m.fields["to"], SHORTCODE);
        assert_eq!(m.fields["smsc"], kannel::SMSC_ID);
        assert!(m.external_id.is_some(), "Kannel's %I");
        replies.push(common::next(&mut sent, schema::outbound()).await);
    }

    // Every reply: the sink's `sent` (sendsms answered 202), the SMSC's
    // acknowledgement (DLR 8, sent) and the handset's (DLR 1, delivered).
    let mut by_id: HashMap<String, Vec<DeliveryEvent>> = HashMap::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    while by_id.values().map(Vec::len).sum::<usize>() < 3 * replies.len() {
        assert!(Instant::now() < deadline, "events so far: {by_id:#?}");
        let e = common::next_event(&mut events).await;
        by_id.entry(e.message_id.clone()).or_default().push(e);
    }
    for r in &replies {
        let got = &by_id[&r.id];
        let mut statuses: Vec<(DeliveryStatus, String)> = got
            .iter()
            .map(|e| (e.status, e.provider_status.clone().unwrap_or_default()))
            .collect();
        statuses.sort_by(|a, b| a.1.cmp(&b.1));
        assert_eq!(
            statuses,
            [
                (DeliveryStatus::Delivered, "1".to_string()),
                (
                    DeliveryStatus::Sent,
                    "202 0: Accepted for delivery".to_string()
                ),
                (DeliveryStatus::Sent, "8 ACK/".to_string()),
            ],
            "{got:#?}"
        );
        assert!(got.iter().all(|e| e.connection.identity == PHONE));
    }
    running.shutdown().await.unwrap();
}

/// With the bus unreachable, smsflow answers smsbox 503 after its accept
/// timeout, never 200: Kannel records a failed request instead of a
/// message smsflow never stored (with `http-request-retry` set, Kannel
/// would try again; a copy stored late is dropped as a repeat of Kannel's id).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kannel_sees_a_failure_when_the_bus_is_down() {
    require_tools!(
        common::Tool::Tansu,
        common::Tool::Bearerbox,
        common::Tool::Smsbox,
        common::Tool::Fakesmsc
    );
    let broker = common::broker::Broker::start();
    let port = common::free_port();
    let (k, yaml) = kannel_and_pipeline(port).await;
    let p = common::on_broker(
        common::pipeline_from(&yaml, KafkaMode::Embedded),
        &broker.brokers(),
        "kannel-down",
    );
    let running: Running = Topology::new(p).unwrap().start(None, true).await.unwrap();
    // Up: a round trip works.
    let (sms, _) = exchange(&k, Mo::text(PHONE, SHORTCODE, "echo up")).await;
    assert_eq!(sms.text(), "up");

    // Unreachable: the process is stopped (SIGSTOP), its port still open.
    broker.pause();
    let k2 = k.clone();
    let access = tokio::task::spawn_blocking(move || {
        let phone = k2.fakesmsc(0.0, 1, &[Mo::text(PHONE, SHORTCODE, "echo while down")]);
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let log = std::fs::read_to_string(k2.smsbox_access_log()).unwrap_or_default();
            if log.contains("echo+while+down") {
                phone.stop();
                return log;
            }
            assert!(
                Instant::now() < deadline,
                "smsbox never logged the request:\n{}",
                k2.logs()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    })
    .await
    .unwrap();
    let line = access
        .lines()
        .find(|l| l.contains("echo+while+down"))
        .unwrap()
        .to_owned();
    assert!(!line.contains("reply: 200"), "{line}");
    assert!(line.contains("reply: 503"), "{line}");
    broker.resume();
    running.shutdown().await.unwrap();
}

/// smsflow's Kannel backend in front of a sendsms stub (no real Kannel: the
/// requests Kannel would make are made here, forged ones among them). The
/// stub answers `202 0: Accepted for delivery` and keeps each dlr-url.
struct Stubbed {
    running: Running,
    base: String,
    dlr_urls: Arc<std::sync::Mutex<Vec<String>>>,
    inbound: smsflow::bus::Consumer,
    events: smsflow::bus::Consumer,
}

async fn stubbed(receive: &str) -> Stubbed {
    use axum::extract::{Query, State};
    let dlr_urls = Arc::new(std::sync::Mutex::new(Vec::new()));
    let app = axum::Router::new()
        .route(
            "/cgi-bin/sendsms",
            axum::routing::get(
                |State(urls): State<Arc<std::sync::Mutex<Vec<String>>>>,
                 Query(q): Query<HashMap<String, String>>| async move {
                    urls.lock().unwrap().extend(q.get("dlr-url").cloned());
                    (axum::http::StatusCode::ACCEPTED, "0: Accepted for delivery")
                },
            ),
        )
        .with_state(dlr_urls.clone());
    let sendsms = common::serve(app).await;
    let yaml = format!(
        "http:
  listen: ${{SMSFLOW_LISTEN}}
backends:
  - type: kannel
    sendsms_url: http://{sendsms}/cgi-bin/sendsms
    username: u
    password: p
    from: '{SHORTCODE}'
    receive: {receive}
routes:
  - app: echo
apps:
  - type: echo
"
    );
    let running = common::start_embedded(&yaml).await;
    let base = format!("http://{}", running.http_addr().unwrap());
    let bus = running.bus();
    let inbound = bus.consumer("test.in", &["sms.inbound"]).unwrap();
    let events = bus.consumer("test.events", &["sms.events"]).unwrap();
    Stubbed {
        running,
        base,
        dlr_urls,
        inbound,
        events,
    }
}

/// A get-url request as smsbox makes it, with `extra` query parameters.
async fn get_url(base: &str, text: &str, extra: &[(&str, &str)]) -> (u16, serde_json::Value) {
    let mut q = vec![
        ("from", PHONE),
        ("to", SHORTCODE),
        ("text", text),
        ("charset", "UTF-8"),
        ("coding", "0"),
    ];
    q.extend_from_slice(extra);
    let res = reqwest::Client::new()
        .get(format!("{base}/backend/kannel/"))
        .query(&q)
        .send()
        .await
        .unwrap();
    common::json_answer(res).await
}

/// The before-answer of each forgery was 200, and the forged DLR turned the
/// real message `failed`: now each is 401 or 403, nothing reaches
/// `sms.inbound` or `sms.events`, and the message's next event is Kannel's
/// real report.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forged_get_url_and_dlr_requests_are_refused_and_store_nothing() {
    let secret = kannel::WEBHOOK_SECRET;
    let mut s = stubbed(&format!("{{secret: {secret}}}")).await;
    let client = reqwest::Client::new();

    // Forged MOs: no secret, a wrong one, a wrong header beside a right one.
    assert_eq!(get_url(&s.base, "echo forged", &[]).await.0, 401);
    assert_eq!(
        get_url(&s.base, "echo forged", &[("secret", "guess")])
            .await
            .0,
        403
    );
    let wrong_header = client
        .get(format!("{}/backend/kannel/", s.base))
        .query(&[("from", PHONE), ("text", "echo forged"), ("secret", secret)])
        .header("X-Smsflow-Secret", "guess")
        .send()
        .await
        .unwrap();
    assert_eq!(wrong_header.status(), 403);
    // The real one (the secret in the get-url, or in the header): stored,
    // and first on sms.inbound (same phone, same partition: the forged ones
    // would be before it).
    assert_eq!(
        get_url(&s.base, "echo real", &[("secret", secret)]).await.0,
        200
    );
    let m = common::next(&mut s.inbound, schema::inbound()).await;
    assert_eq!(m.text, "echo real");
    let by_header = client
        .get(format!("{}/backend/kannel/", s.base))
        .query(&[("from", PHONE), ("text", "by header")])
        .header("X-Smsflow-Secret", secret)
        .send()
        .await
        .unwrap();
    assert_eq!(by_header.status(), 200);
    assert_eq!(
        common::next(&mut s.inbound, schema::inbound()).await.text,
        "by header"
    );

    // The echo of "echo real" went to sendsms with a dlr-url that carries the secret.
    let sent = common::next_event(&mut s.events).await;
    assert_eq!(sent.status, DeliveryStatus::Sent);
    let dlr_url = s
        .dlr_urls
        .lock()
        .unwrap()
        .iter()
        .find(|u| u.contains(&sent.message_id.replace('-', "%2D")))
        .cloned()
        .expect("the reply's dlr-url");
    assert!(dlr_url.contains(&format!("&secret={secret}&")), "{dlr_url}");
    let filled = |status: &str| {
        dlr_url
            .replace("%d", status)
            .replace("%A", "")
            .replace("%p", PHONE)
            .replace("%T", "1795671509")
            .replace("%i", "fake")
    };
    // A forged "failed" DLR for this real message: without the secret, and with a wrong one.
    let forged = filled("2").replace(&format!("&secret={secret}"), "");
    assert_eq!(client.get(&forged).send().await.unwrap().status(), 401);
    let wrong = filled("2").replace(secret, "kannel-harness-secret-0123456788");
    assert_eq!(client.get(&wrong).send().await.unwrap().status(), 403);
    // Kannel's real report: the message's next event, delivered, not failed.
    assert_eq!(client.get(filled("1")).send().await.unwrap().status(), 200);
    let e = common::next_event(&mut s.events).await;
    assert_eq!(
        (e.message_id.as_str(), e.status),
        (sent.message_id.as_str(), DeliveryStatus::Delivered)
    );
    s.running.shutdown().await.unwrap();
}

/// A text over `receive.max_text` is 413 naming the limit, a Kannel id over
/// `max_id` 400 naming `id`, a number over `max_identity` 400 naming `from`;
/// none is stored (before: a 1.9 MB text was stored and echoed).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn over_long_input_is_refused_naming_the_limit() {
    let secret = kannel::WEBHOOK_SECRET;
    let mut s = stubbed(&format!("{{secret: {secret}, max_text: 500}}")).await;
    let long = "x".repeat(501);
    let (status, body) = get_url(&s.base, &long, &[("secret", secret)]).await;
    assert_eq!(status, 413, "{body}");
    assert_eq!(body["field"], "text");
    assert!(
        body["error"].as_str().unwrap().contains("500 characters"),
        "{body}"
    );
    // 500 characters of UCS-2 (1,000 bytes) are within it: the limit counts characters.
    let ucs2: Vec<u8> = "ñ"
        .repeat(500)
        .encode_utf16()
        .flat_map(u16::to_be_bytes)
        .collect();
    let raw = kannel::url_encode_all(&ucs2);
    let res = reqwest::Client::new()
        .get(format!(
            "{}/backend/kannel/?secret={secret}&from={PHONE}&charset=UTF-16BE&coding=2&text={raw}",
            s.base
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(
        common::next(&mut s.inbound, schema::inbound()).await.text,
        "ñ".repeat(500)
    );

    let (status, body) = get_url(
        &s.base,
        "hi",
        &[("secret", secret), ("id", &"i".repeat(257))],
    )
    .await;
    assert_eq!(
        (status, body["field"].as_str()),
        (400, Some("id")),
        "{body}"
    );
    assert!(
        body["error"].as_str().unwrap().contains("at most 256"),
        "{body}"
    );
    let long_from = format!("{PHONE}{}", " ".repeat(100));
    let res = reqwest::Client::new()
        .get(format!("{}/backend/kannel/", s.base))
        .query(&[("secret", secret), ("from", &long_from), ("text", "hi")])
        .send()
        .await
        .unwrap();
    let (status, body) = common::json_answer(res).await;
    assert_eq!(
        (status, body["field"].as_str()),
        (400, Some("from")),
        "{body}"
    );
    // A DLR with a 300-byte message id: 400 naming it.
    let res = reqwest::Client::new()
        .get(format!("{}/backend/kannel/dlr", s.base))
        .query(&[
            ("secret", secret),
            ("message_id", &"m".repeat(300)),
            ("status", "1"),
        ])
        .send()
        .await
        .unwrap();
    let (status, body) = common::json_answer(res).await;
    assert_eq!(
        (status, body["field"].as_str()),
        (400, Some("message_id")),
        "{body}"
    );
    // None of them was stored: the next message is this one.
    assert_eq!(
        get_url(&s.base, "after", &[("secret", secret)]).await.0,
        200
    );
    assert_eq!(
        common::next(&mut s.inbound, schema::inbound()).await.text,
        "after"
    );
    s.running.shutdown().await.unwrap();
}
