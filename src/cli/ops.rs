//! Operator commands: inject an inbound message (`smsflow send`), read a
//! topic (`smsflow tail`), and ask the running pipeline (through its HTTP
//! API, [`crate::cli::client`]) for a message's status, send a message, read a
//! poll's results, import contacts.

use std::sync::Arc;

use anyhow::{bail, Context};
use bytes::Bytes;
use serde_json::json;

use crate::backends::check_identity;
use crate::bus::{kafka::KafkaBus, Produce};
use crate::cli::client::Api;
use crate::config::{KafkaMode, Pipeline};
use crate::message::{Connection, InboundMessage};
use crate::schema;

/// Inject a message from `from` on `backend` (the pipeline's first when
/// `None`); returns its id.
///
/// On Kafka it is written to the inbound topic directly. The embedded bus
/// lives inside `smsflow run`, so there it is posted to the running
/// process's message tester API (`http.listen`).
pub async fn send(
    p: &Pipeline,
    backend: Option<&str>,
    from: &str,
    text: &str,
) -> anyhow::Result<String> {
    let backend = match backend {
        Some(b) => b,
        None => p
            .backends
            .first()
            .map(|b| b.name())
            .context("the pipeline has no backend")?,
    };
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
            let body = Api::new(p, None)
                .post_json(
                    "/api/tester/messages",
                    &json!({ "identity": from, "text": text, "backend": backend }),
                )
                .await
                .with_context(|| {
                    format!("the {:?} bus lives inside `smsflow run`", p.kafka.mode)
                })?;
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
        crate::outln!(
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

/// `smsflow status`: where message (or send) `id` stands, one line per recipient.
pub async fn status(api: &Api, id: &str) -> anyhow::Result<String> {
    let r = api.get(&format!("/api/status/{}", encode_path(id))).await?;
    let counts: Vec<String> = r["counts"]
        .as_object()
        .map(|m| m.iter().map(|(k, v)| format!("{k} {v}")).collect())
        .unwrap_or_default();
    let recipients = r["recipients"].as_array().cloned().unwrap_or_default();
    let mut out = format!(
        "{} {} ({} recipient{}): {}\n",
        r["kind"].as_str().unwrap_or("message"),
        id,
        recipients.len(),
        if recipients.len() == 1 { "" } else { "s" },
        counts.join(", ")
    );
    for m in recipients {
        let at = m["at"]
            .as_i64()
            .and_then(|ms| u64::try_from(ms).ok())
            .map(|ms| {
                humantime::format_rfc3339_millis(
                    std::time::UNIX_EPOCH + std::time::Duration::from_millis(ms),
                )
                .to_string()
            })
            .unwrap_or_default();
        out.push_str(&format!(
            "  {}  {} via {}  {}  {}{}\n",
            m["message_id"].as_str().unwrap_or_default(),
            m["connection"]["identity"].as_str().unwrap_or_default(),
            m["connection"]["backend"].as_str().unwrap_or_default(),
            m["status"].as_str().unwrap_or_default(),
            at,
            m["error"]
                .as_str()
                .map(|e| format!("  ({e})"))
                .unwrap_or_default(),
        ));
    }
    Ok(out)
}

/// `smsflow message`: send `text` (messaging); returns the confirmation and the send id.
pub async fn message(
    api: &Api,
    text: &str,
    to: &crate::apps::messaging::Recipients,
) -> anyhow::Result<String> {
    let mut body = serde_json::to_value(to)?;
    body["text"] = json!(text);
    let r = api.post_json("/api/messages", &body).await?;
    Ok(format!(
        "{}\nsend id: {} (smsflow status FILE {})\n",
        r["confirmation"].as_str().unwrap_or_default(),
        r["send_id"].as_str().unwrap_or_default(),
        r["send_id"].as_str().unwrap_or_default(),
    ))
}

/// `smsflow poll`: a poll's question and results.
pub async fn poll(api: &Api, name: &str) -> anyhow::Result<String> {
    let r = api
        .get(&format!("/api/polls/{}", encode_path(name)))
        .await?;
    let mut out = format!(
        "{}: {}\n",
        r["poll"].as_str().unwrap_or(name),
        r["question"].as_str().unwrap_or_default()
    );
    for c in r["choices"].as_array().cloned().unwrap_or_default() {
        out.push_str(&format!(
            "  {:<12} {}\n",
            c[0].as_str().unwrap_or_default(),
            c[1].as_u64().unwrap_or(0)
        ));
    }
    out.push_str(&format!(
        "  {:<12} {}\n",
        "total",
        r["total"].as_u64().unwrap_or(0)
    ));
    Ok(out)
}

/// `smsflow contacts import`: import a CSV file; the report, and whether every line was good.
pub async fn import_contacts(api: &Api, csv: String) -> anyhow::Result<(String, bool)> {
    let r = api
        .post_text("/api/contacts/import", "text/csv", csv)
        .await?;
    let errors = r["errors"].as_array().cloned().unwrap_or_default();
    let added = r["added"].as_u64().unwrap_or(0);
    let mut out = format!(
        "Added {added} contact{}, updated {}\n",
        if added == 1 { "" } else { "s" },
        r["updated"].as_u64().unwrap_or(0)
    );
    for e in &errors {
        out.push_str(&format!(
            "line {}: {}\n",
            e["line"].as_u64().unwrap_or(0),
            e["reason"].as_str().unwrap_or_default()
        ));
    }
    Ok((out, errors.is_empty()))
}

fn encode_path(segment: &str) -> String {
    percent_encoding::utf8_percent_encode(segment, percent_encoding::NON_ALPHANUMERIC).to_string()
}
