//! Two replicas of a sink that both hold a message (a partition owned twice
//! for a while, during a rebalance): the one whose `sending` claim the
//! sent-log holds first sends it. The replica that lost the claim no longer
//! finishes the message on trust: it waits for the first claimant's
//! outcome and repeats its event; if that replica died between its claim
//! and its request (no outcome in time), the message is reported failed
//! "outcome unknown"; if it left the message to `retry`, this replica sends
//! it.
//!
//! Before, the losing replica finished the message at once with nothing
//! sent: a claimant killed before its request left a message accepted,
//! never sent and never reported (the chaos test lost 1 of 13,857 so).
//!
//! The other replica is played by the test, writing its records to the
//! sent-log topic of a sink stage on a Kafka bus (librdkafka's mock
//! cluster), where the sink follows them as it follows real replicas'.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use smsflow::backends::sent::{Entry, State};
use smsflow::bus::Produce;
use smsflow::config::{Kafka, KafkaMode, Sending};
use smsflow::message::{DeliveryEvent, DeliveryStatus, OutboundMessage};

mod common;

use common::sink::{next_entry, Sink};

/// The token of the replica the test plays.
const OTHER: &str = "replica-a";

/// A sink whose second message waits 5 s for the rate limit, one try of
/// 1 s per message: another replica's outcome is awaited 11 s.
async fn sink() -> Sink {
    let sink = Sink::on(
        Kafka::with_mode(KafkaMode::Mock),
        Sending {
            rate: Some(0.2),
            timeout: Duration::from_secs(1),
            attempts: 1,
            ..Sending::default()
        },
    )
    .await;
    sink.gateway.accept.store(true, Ordering::SeqCst);
    sink
}

/// Write the other replica's sent-log record for `msg`.
async fn other_writes(sink: &Sink, msg: &OutboundMessage, state: State) {
    let entry = Entry {
        state,
        provider_id: (state == State::Sent).then(|| "theirs-1".to_owned()),
        by: Some(OTHER.to_owned()),
        ..Entry::sending(&msg.connection.identity)
    };
    sink.producer
        .send_and_wait(Produce::new(
            Arc::from("sms.send.gw.sent"),
            Bytes::from(msg.id.clone()),
            Bytes::from(serde_json::to_vec(&entry).unwrap()),
        ))
        .await
        .unwrap();
}

/// Run the duel: the sink sends a first message (taking the rate limit's
/// token), holds a second one waiting for the limit, and the other replica
/// claims that one meanwhile. Once the sink's own claim is written, the
/// other replica records `outcome` (or nothing). The second message's
/// event, and the provider's calls.
async fn duel(outcome: Option<State>) -> (DeliveryEvent, usize) {
    let sink = sink().await;
    let mut events = sink.bus.consumer("test.events", &["sms.events"]).unwrap();
    let mut log = sink
        .bus
        .consumer("test.sent", &["sms.send.gw.sent"])
        .unwrap();
    let (task, control) = sink.start();
    let first = sink.send("+15550301").await;
    let event = common::next_event(&mut events).await;
    assert_eq!(
        (event.message_id, event.status),
        (first.id, DeliveryStatus::Sent)
    );

    let second = sink.send("+15550302").await;
    // Read by the sink (new to it), now waiting ~4 s for the limit.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    other_writes(&sink, &second, State::Sending).await;
    // The sink's own claim, after the other's.
    loop {
        let entry = next_entry(&mut log).await;
        if entry.state == State::Sending && entry.by.as_deref() != Some(OTHER) {
            break;
        }
    }
    if let Some(state) = outcome {
        other_writes(&sink, &second, state).await;
    }
    let event = tokio::time::timeout(Duration::from_secs(40), async {
        loop {
            let e = common::next_event(&mut events).await;
            if e.message_id == second.id {
                return e;
            }
        }
    })
    .await
    .expect("the second message's event: it is not finished silently");
    control.drain.cancel();
    tokio::time::timeout(Duration::from_secs(10), task)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    (event, sink.gateway.calls.load(Ordering::SeqCst))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_first_claimants_outcome_is_repeated_not_sent_again() {
    let (event, calls) = duel(Some(State::Sent)).await;
    assert_eq!(event.status, DeliveryStatus::Sent, "{event:?}");
    assert_eq!(event.provider_id.as_deref(), Some("theirs-1"));
    assert_eq!(calls, 1, "sent by the other replica only");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_first_claimant_that_records_nothing_leaves_the_outcome_unknown() {
    let (event, calls) = duel(None).await;
    assert_eq!(event.status, DeliveryStatus::Failed, "{event:?}");
    let error = event.error.unwrap_or_default();
    assert!(
        error.starts_with("outcome unknown: the replica that claimed it first"),
        "{error}"
    );
    assert_eq!(calls, 1, "not sent here: the other may have sent it");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_message_the_first_claimant_left_to_retry_is_sent_here() {
    let (event, calls) = duel(Some(State::Retry)).await;
    assert_eq!(event.status, DeliveryStatus::Sent, "{event:?}");
    assert_eq!(event.provider_id.as_deref(), Some("gw-1"));
    assert_eq!(calls, 2, "sent here once");
}
