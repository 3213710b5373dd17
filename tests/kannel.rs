//! smsflow's Kannel backend against a real Kannel 1.4.5 (Debian's kannel and
//! kannel-extras, started on loopback by tests/common/kannel.rs):
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
    let get_url = format!(
        "http://127.0.0.1:{port}/backend/kannel/?{}",
        kannel::MO_QUERY
    );
    let k = tokio::task::spawn_blocking(move || Kannel::start(&get_url))
        .await
        .unwrap();
    let yaml = format!(
        "http:
  listen: 127.0.0.1:{port}
  accept_timeout: 2s
backends:
  - type: kannel
    sendsms_url: {url}
    username: {user}
    password: {password}
    from: '{SHORTCODE}'
routes:
  - app: echo
apps:
  - type: echo
  - type: default
",
        url = k.sendsms_url(),
        user = k.username(),
        password = k.password(),
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
