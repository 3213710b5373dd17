//! A generic HTTP gateway backend.
//!
//! Inbound (the source) is RapidSMS's generic HTTP backend: `GET` or `POST
//! /backend/<name>/` with `identity` and `text`, answered `200 OK` once the
//! message is on the bus (served by [`crate::http`]). Outbound (the sink,
//! [`HttpSink`]) POSTs each message as JSON to the configured URL:
//!
//! ```json
//! {"id": "...", "identity": "+15551234", "text": "hi", "in_response_to": "...",
//!  "encoding": "gsm7", "segments": 1, "campaign_id": null}
//! ```
//!
//! with the message id in an `Idempotency-Key` header. A 2xx answer is sent
//! (its JSON `id`, if any, becomes the provider id); 5xx, 408, 429 and
//! connection failures are retried with exponential backoff; any other answer
//! fails the message. Each id is sent at most once per sent-log.

use std::sync::Arc;
use std::time::Duration;

use serde_json::{json, Value};

use super::sent::SentLog;
use crate::bus::Record;
use crate::message::{DeliveryEvent, DeliveryStatus, OutboundMessage};
use crate::metrics::{metrics, observe_since};
use crate::schema;
use crate::stage::{decode, encode, HandleError, Handler, Output};

/// How the sink reaches the provider.
pub struct HttpSinkConfig {
    pub url: String,
    pub timeout: Duration,
    pub attempts: u32,
    pub backoff: Duration,
}

pub struct HttpSink {
    name: String,
    stage: String,
    client: reqwest::Client,
    config: HttpSinkConfig,
    events: Arc<str>,
    sent: SentLog,
    reply_latency: prometheus::Histogram,
}

impl HttpSink {
    pub fn new(name: &str, config: HttpSinkConfig, events: Arc<str>, sent: SentLog) -> Self {
        Self {
            name: name.to_owned(),
            stage: format!("backend:{name}"),
            client: reqwest::Client::new(),
            config,
            events,
            sent,
            reply_latency: metrics().reply_latency.with_label_values(&[name]),
        }
    }

    /// Hand `msg` to the provider: its id for the message, or why it failed.
    async fn deliver(&self, msg: &OutboundMessage) -> Result<Option<String>, String> {
        let body = json!({
            "id": msg.id,
            "identity": msg.connection.identity,
            "text": msg.text,
            "in_response_to": msg.in_response_to,
            "encoding": msg.encoding,
            "segments": msg.segments,
            "campaign_id": msg.campaign_id,
        });
        let mut wait = self.config.backoff;
        let mut last = String::new();
        for attempt in 1..=self.config.attempts {
            let sent = self
                .client
                .post(&self.config.url)
                .header("Idempotency-Key", &msg.id)
                .timeout(self.config.timeout)
                .json(&body)
                .send()
                .await;
            match sent {
                Ok(res) if res.status().is_success() => {
                    let answer: Value = res.json().await.unwrap_or(Value::Null);
                    return Ok(answer["id"].as_str().map(str::to_owned));
                }
                Ok(res) => {
                    let status = res.status();
                    let text = res.text().await.unwrap_or_default();
                    last = format!("{status}: {}", text.chars().take(200).collect::<String>());
                    let transient = status.is_server_error()
                        || status.as_u16() == 408
                        || status.as_u16() == 429;
                    if !transient {
                        return Err(last);
                    }
                }
                Err(e) => last = e.to_string(),
            }
            metrics()
                .errors
                .with_label_values(&[&self.stage, "provider_retry"])
                .inc();
            tracing::warn!(backend = %self.name, id = %msg.id, attempt, error = %last, "provider failed, retrying");
            if attempt < self.config.attempts {
                tokio::time::sleep(wait).await;
                wait = (wait * 2).min(Duration::from_secs(30));
            }
        }
        Err(format!(
            "gave up after {} tries: {last}",
            self.config.attempts
        ))
    }
}

impl Handler for HttpSink {
    async fn handle(&mut self, record: &Record, out: &mut Output) -> Result<(), HandleError> {
        let msg = decode(schema::outbound(), record)?;
        if msg.connection.backend != self.name {
            return Err(HandleError::input(
                "invalid",
                format!(
                    "message for backend {:?} on {}'s topic",
                    msg.connection.backend, self.name
                ),
            ));
        }
        if self.sent.contains(&msg.id) {
            metrics()
                .dropped
                .with_label_values(&[&self.stage, "duplicate"])
                .inc();
            return Ok(());
        }
        let (status, provider_id, error) = match self.deliver(&msg).await {
            Ok(provider_id) => {
                out.push(self.sent.record(&msg.id));
                observe_since(&self.reply_latency, msg.created_at);
                (DeliveryStatus::Sent, provider_id, None)
            }
            Err(why) => {
                metrics()
                    .errors
                    .with_label_values(&[&self.stage, "provider"])
                    .inc();
                tracing::error!(backend = %self.name, id = %msg.id, error = %why, "not delivered");
                (DeliveryStatus::Failed, None, Some(why))
            }
        };
        let event = DeliveryEvent {
            provider_id,
            error,
            ..DeliveryEvent::now(&msg, status)
        };
        out.push(encode(
            schema::event(),
            &self.events,
            &msg.connection,
            &event,
        )?);
        Ok(())
    }
}
