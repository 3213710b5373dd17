//! Operator commands: inject an inbound message (`smsflow send`) and read a
//! topic (`smsflow tail`).

use std::sync::Arc;

use anyhow::{bail, Context};
use bytes::Bytes;
use serde_json::json;

use crate::backends::check_identity;
use crate::bus::{kafka::KafkaBus, Produce};
use crate::config::{KafkaMode, Pipeline};
use crate::message::{Connection, InboundMessage};
use crate::schema;

/// Inject a message from `from` on `backend`; returns its id.
///
/// On Kafka it is written to the inbound topic directly. The embedded bus
/// lives inside `smsflow run`, so there it is posted to the running
/// process's message tester API (`http.listen`).
pub async fn send(p: &Pipeline, backend: &str, from: &str, text: &str) -> anyhow::Result<String> {
    let from = check_identity(from)?;
    if !p.backends.iter().any(|b| b.name() == backend) {
        bail!("no backend {backend:?} in the pipeline");
    }
    match p.kafka.mode {
        KafkaMode::Kafka => {
            let bus = KafkaBus::connect(&p.kafka, &[]).await?;
            let msg = InboundMessage::new(Connection::new(backend, from), text);
            let payload = schema::inbound().encode(&msg)?;
            let producer = bus.producer()?;
            producer
                .send_and_wait(Produce::new(
                    Arc::from(p.topics.inbound.as_str()),
                    Bytes::from(msg.connection.key()),
                    payload,
                ))
                .await?;
            Ok(msg.id)
        }
        KafkaMode::Embedded | KafkaMode::Mock => {
            let mut addr = p.http.listen;
            if addr.ip().is_unspecified() {
                addr.set_ip(std::net::Ipv4Addr::LOCALHOST.into());
            }
            let url = format!("http://{addr}/api/tester/messages");
            let res = reqwest::Client::new()
                .post(&url)
                .json(&json!({ "identity": from, "text": text, "backend": backend }))
                .send()
                .await
                .with_context(|| format!("the {:?} bus lives inside `smsflow run`; is it running? (posting to {url})", p.kafka.mode))?;
            let status = res.status();
            let body: serde_json::Value = res.json().await.unwrap_or_default();
            if !status.is_success() {
                bail!(
                    "{url} answered {status}: {}",
                    body["error"].as_str().unwrap_or("no reason given")
                );
            }
            Ok(body["id"].as_str().unwrap_or_default().to_owned())
        }
    }
}

/// Print the records of `topic` as JSON lines, decoded with the topic's schema.
pub async fn tail(
    p: &Pipeline,
    topic: &str,
    from_beginning: bool,
    count: Option<usize>,
) -> anyhow::Result<()> {
    if p.kafka.mode != KafkaMode::Kafka {
        bail!("tail reads from a Kafka cluster; with `kafka: {:?}` the bus lives inside `smsflow run` (use its message tester page, or a Kafka pipeline)", p.kafka.mode);
    }
    let bus = KafkaBus::connect(&p.kafka, &[]).await?;
    let group = format!("{}.tail.{}", p.kafka.group, crate::message::new_id());
    let mut consumer = bus.consumer_from(&group, &[topic], from_beginning)?;
    let t = &p.topics;
    let mut seen = 0;
    while count.is_none_or(|c| seen < c) {
        let r = consumer.recv().await?;
        let value = if topic == t.inbound {
            decoded(schema::inbound().decode(&r.payload))
        } else if topic.starts_with(&t.app_prefix) {
            decoded(schema::routed().decode(&r.payload))
        } else if topic == t.outbound || topic.starts_with(&t.send_prefix) {
            decoded(schema::outbound().decode(&r.payload))
        } else if topic == t.events {
            decoded(schema::event().decode(&r.payload))
        } else if topic == t.contacts {
            decoded(schema::contact().decode(&r.payload))
        } else {
            json!({ "bytes": r.payload.len(), "utf8": String::from_utf8_lossy(&r.payload) })
        };
        let headers: serde_json::Map<String, serde_json::Value> = r
            .headers
            .iter()
            .map(|(k, v)| (k.clone(), json!(String::from_utf8_lossy(v))))
            .collect();
        println!(
            "{}",
            json!({ "topic": r.topic.as_ref(), "partition": r.partition, "offset": r.offset, "key": r.key_str(), "headers": headers, "value": value })
        );
        seen += 1;
    }
    Ok(())
}

fn decoded<T: serde::Serialize>(r: Result<T, schema::DecodeError>) -> serde_json::Value {
    match r {
        Ok(v) => serde_json::to_value(v).unwrap_or_default(),
        Err(e) => json!({ "undecodable": e.to_string() }),
    }
}
