//! The apps' guarantees beyond what conversation scripts can show: a STOP
//! really suppresses (with a `suppressed` status), tables survive a restart
//! on a real broker, an unreadable contact record is dead-lettered without
//! stopping anything, and the message log has every recipient of a send.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use smsflow::apps::messaging::{self, Recipients};
use smsflow::backends::tester::Tester;
use smsflow::bus::Produce;
use smsflow::config::KafkaMode;
use smsflow::message::{derived_id, Connection, Direction};
use smsflow::state::messagelog::Query;
use smsflow::state::status::Report;
use smsflow::topology::{Running, Topology};

mod common;

const PIPELINE: &str = "
project: Clinic
http:
  listen: ${SMSFLOW_LISTEN}
backends:
  - type: tester
optout: {}
messagelog: {}
languages:
  available: [{code: en, name: English}, {code: fr, name: French}]
  texts:
    fr: {registration.registered: 'Merci, {name} !'}
routes:
  - app: echo
  - app: registration
  - app: vote
apps:
  - type: echo
  - type: registration
  - {name: vote, type: poll, question: Yes or no?, choices: ['yes', 'no']}
  - type: default
";

/// Wait until `check` holds (the tables are followed in the background).
async fn until<T>(what: &str, mut check: impl FnMut() -> Option<T>) -> T {
    for _ in 0..400 {
        if let Some(v) = check() {
            return v;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("timed out waiting for {what}");
}

async fn reply(
    tester: &Tester,
    rx: &mut tokio::sync::broadcast::Receiver<smsflow::message::OutboundMessage>,
    from: &str,
    text: &str,
) -> String {
    tester.receive(Some(from), Some(text)).await.unwrap();
    let m = tokio::time::timeout(Duration::from_secs(20), rx.recv())
        .await
        .unwrap_or_else(|_| panic!("no reply to {text:?}"))
        .unwrap();
    assert_eq!(m.connection.identity, from);
    m.text
}

fn status_of(running: &Running, id: &str) -> Option<Report> {
    // The embedded bus follows the events from the start: ready at once.
    futures::executor::block_on(running.tables().status())
        .unwrap()
        .report(id)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stop_suppresses_every_message_until_start() {
    let running = common::start_embedded(PIPELINE).await;
    let tester = running.tester(None).unwrap();
    let mut rx = tester.subscribe();
    let phone = "+15557770001";
    assert!(reply(&tester, &mut rx, phone, "STOP")
        .await
        .starts_with("You have been unsubscribed"));

    // An app's reply: dropped by the outgoing router, with a status.
    let echo = tester
        .receive(Some(phone), Some("echo still there?"))
        .await
        .unwrap();
    let reply_id = derived_id(&echo.id, "echo", 0);
    let r = until("the suppressed status", || {
        status_of(&running, &reply_id).filter(|r| r.recipients[0].status == "suppressed")
    })
    .await;
    assert_eq!(
        r.recipients[0].error.as_deref(),
        Some("+15557770001 opted out")
    );

    // A send from messaging too: counted, not sent.
    let t = running.tables();
    let to = Recipients {
        numbers: vec![phone.into(), "+15557770002".into()],
        ..Recipients::default()
    };
    let p = running_pipeline();
    let sent = messaging::send(t, &p, &producer(&running), "Clinic closed today", &to)
        .await
        .unwrap();
    assert_eq!(sent.confirmation, "Your message was sent to 2 recipients.");
    let other = tokio::time::timeout(Duration::from_secs(20), rx.recv())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (other.connection.identity.as_str(), other.text.as_str()),
        ("+15557770002", "Clinic closed today")
    );
    let r = until("both recipients' status", || {
        status_of(&running, &sent.send_id)
            .filter(|r| r.counts.values().sum::<usize>() == 2 && !r.counts.contains_key("queued"))
    })
    .await;
    assert_eq!(r.kind, "send");
    assert_eq!(r.counts.get("suppressed"), Some(&1));
    assert_eq!(r.counts.get("delivered"), Some(&1));
    assert!(rx.try_recv().is_err(), "nothing else reached a phone");

    assert!(reply(&tester, &mut rx, phone, "start")
        .await
        .starts_with("You have been subscribed again"));
    assert_eq!(reply(&tester, &mut rx, phone, "echo back").await, "back");
    assert!(t.optouts.list().is_empty());
    drop(tester);
    running.shutdown().await.unwrap();
}

fn running_pipeline() -> smsflow::config::Pipeline {
    common::pipeline_from(PIPELINE, KafkaMode::Embedded)
}

fn producer(running: &Running) -> smsflow::bus::Producer {
    running.bus().producer().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreadable_contact_record_is_dead_lettered_and_nothing_stops() {
    let running = common::start_embedded(PIPELINE).await;
    let tester = running.tester(None).unwrap();
    let mut rx = tester.subscribe();
    let mut dlq = running.bus().consumer("test.dlq", &["sms.dlq"]).unwrap();
    producer(&running)
        .send_and_wait(Produce::new(
            Arc::from("sms.contacts"),
            Bytes::from_static(b"c-1"),
            Bytes::from_static(b"{\"name\": \"not avro\"}"),
        ))
        .await
        .unwrap();
    let dead = tokio::time::timeout(Duration::from_secs(20), dlq.recv())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        dead.header("smsflow.source.topic"),
        Some(&b"sms.contacts"[..])
    );
    assert_eq!(
        dead.header("smsflow.stage"),
        Some(&b"table:sms.contacts"[..])
    );
    let why = String::from_utf8_lossy(dead.header("smsflow.error.message").unwrap()).to_string();
    assert!(why.contains("single-object"), "{why}");
    assert_eq!(&dead.payload[..], b"{\"name\": \"not avro\"}");

    // The contacts table and every stage carry on.
    assert_eq!(
        reply(&tester, &mut rx, "+15557770003", "join Grace").await,
        "Thank you for registering, Grace!"
    );
    assert_eq!(
        reply(&tester, &mut rx, "+15557770003", "lang fr").await,
        "I will speak to you in French."
    );
    assert_eq!(running.tables().contacts.len(), 1);
    drop(tester);
    running.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_message_log_has_every_recipient_and_the_contact() {
    let running = common::start_embedded(PIPELINE).await;
    let tester = running.tester(None).unwrap();
    let mut rx = tester.subscribe();
    assert_eq!(
        reply(&tester, &mut rx, "+15557770011", "join Ada").await,
        "Thank you for registering, Ada!"
    );
    let to = Recipients {
        numbers: vec![
            "+15557770011".into(),
            "+15557770012".into(),
            "+15557770013".into(),
        ],
        ..Recipients::default()
    };
    let sent = messaging::send(
        running.tables(),
        &running_pipeline(),
        &producer(&running),
        "Team meeting at 10",
        &to,
    )
    .await
    .unwrap();
    assert_eq!(sent.recipients, 3);
    let log = running.tables().log().await.unwrap().unwrap();
    let page = until("three logged recipients", || {
        let p = log.search(&Query {
            text: "team meeting".into(),
            ..Query::default()
        });
        (p.total == 3).then_some(p)
    })
    .await;
    assert!(page.entries.iter().all(|e| e.direction == Direction::Out));
    let ada = page
        .entries
        .iter()
        .find(|e| e.connection.identity == "+15557770011")
        .unwrap();
    assert_eq!(ada.contact_name, "Ada");
    let inbound = log.search(&Query {
        number: "5557770011".into(),
        direction: "in".into(),
        ..Query::default()
    });
    assert_eq!(inbound.entries[0].text, "join Ada");
    // The newest first: the thank-you came after the join.
    let all = log.search(&Query {
        number: "5557770011".into(),
        ..Query::default()
    });
    let texts: Vec<&str> = all.entries.iter().map(|e| e.text.as_str()).collect();
    assert_eq!(
        texts,
        vec![
            "Team meeting at 10",
            "Thank you for registering, Ada!",
            "join Ada"
        ]
    );
    drop(tester);
    running.shutdown().await.unwrap();
}

/// On Kafka every table is restored from its topic: a new process (after a
/// restart, or another replica) knows the contacts, their languages, who
/// opted out and the poll answers.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tables_survive_a_restart_on_a_real_broker() {
    require_tools!(common::Tool::Tansu);
    let broker = common::broker::Broker::start();
    let pipeline = || common::on_broker(running_pipeline(), &broker.brokers(), "apps-restart");
    let phone = "+15557770021";
    let echo_id;
    {
        let running = Topology::new(pipeline())
            .unwrap()
            .start(None, false)
            .await
            .unwrap();
        let tester = running.tester(None).unwrap();
        let mut rx = tester.subscribe();
        assert_eq!(
            reply(&tester, &mut rx, phone, "join Wanjiru").await,
            "Thank you for registering, Wanjiru!"
        );
        assert_eq!(
            reply(&tester, &mut rx, phone, "lang French").await,
            "I will speak to you in French."
        );
        assert_eq!(
            reply(&tester, &mut rx, phone, "vote yes").await,
            "Thank you, your answer yes was recorded."
        );
        assert!(reply(&tester, &mut rx, "+15557770022", "stop")
            .await
            .starts_with("You have been unsubscribed"));
        let echo = tester.receive(Some(phone), Some("echo hi")).await.unwrap();
        echo_id = derived_id(&echo.id, "echo", 0);
        rx.recv().await.unwrap();
        drop(tester);
        running.shutdown().await.unwrap();
    }
    let running = Topology::new(pipeline())
        .unwrap()
        .start(None, false)
        .await
        .unwrap();
    let t = running.tables();
    let contact = t
        .contacts
        .by_connection(&Connection::new("message_tester", phone))
        .expect("contact restored");
    assert_eq!(
        (contact.name.as_str(), contact.language.as_str()),
        ("Wanjiru", "fr")
    );
    assert!(t.optouts.is_stopped("+15557770022"));
    // Message status is read from the events at the first question.
    let status = t
        .status()
        .await
        .unwrap()
        .report(&echo_id)
        .expect("status restored");
    assert_eq!(status.recipients[0].status, "delivered");
    let tester = running.tester(None).unwrap();
    let mut rx = tester.subscribe();
    assert_eq!(
        reply(&tester, &mut rx, phone, "join Wanjiru K").await,
        "Merci, Wanjiru K !"
    );
    assert_eq!(
        reply(&tester, &mut rx, phone, "vote no").await,
        "Your answer was changed from yes to no."
    );
    let results = t
        .polls
        .results("vote", "Yes or no?", &["yes".into(), "no".into()]);
    assert_eq!(
        results.choices,
        vec![("yes".to_string(), 0), ("no".to_string(), 1)]
    );
    assert_eq!(t.contacts.len(), 1, "registering again renamed the contact");
    drop(tester);
    running.shutdown().await.unwrap();
}
