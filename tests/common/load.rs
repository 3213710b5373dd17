//! A steady load of inbound messages straight onto the inbound topic (what a
//! backend source writes), for the real-broker tests.

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use smsflow::bus::kafka::KafkaBus;
use smsflow::bus::{AckGroup, Produce};
use smsflow::config::Pipeline;
use smsflow::message::{Connection, InboundMessage};
use smsflow::schema;

/// Produce `n` messages `echo <i>` on `backend` from `phones` numbers,
/// `per_second` at most; returns their ids once all are acknowledged.
pub async fn produce(
    p: &Pipeline,
    backend: &str,
    phones: usize,
    n: usize,
    per_second: u64,
) -> Vec<String> {
    let bus = KafkaBus::connect(&p.kafka, &[]).await.unwrap();
    let producer = bus.producer().unwrap();
    let topic: Arc<str> = Arc::from(p.topics.inbound.as_str());
    let mut ids = Vec::with_capacity(n);
    let acks = AckGroup::new();
    let started = Instant::now();
    for i in 0..n {
        let phone = format!("+1555{:06}", i % phones);
        let msg = InboundMessage::new(Connection::new(backend, phone), format!("echo {i}"));
        ids.push(msg.id.clone());
        let rec = Produce::new(
            topic.clone(),
            Bytes::from(msg.connection.key()),
            schema::inbound().encode(&msg).unwrap(),
        );
        producer.send(rec, &acks).await.unwrap();
        let due = started + Duration::from_millis(i as u64 * 1000 / per_second);
        tokio::time::sleep_until(due.into()).await;
    }
    acks.wait().await.unwrap();
    ids
}
