//! Backends: the provider side. Each backend is a *source* (accepts the
//! provider's inbound format, writes `sms.inbound`, answers only after the
//! bus acknowledged) and a *sink* (reads `sms.send.<name>`, delivers, writes
//! `sms.events`).

pub mod discard;
pub mod http;
pub mod sent;
pub mod tester;

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;

use crate::bus::{BusError, Produce, Producer};
use crate::message::{Connection, InboundMessage};
use crate::metrics::metrics;
use crate::schema;

/// Why a source refused an inbound message.
#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    /// The request is wrong: answer 400 naming the field.
    #[error("{field}: {message}")]
    Invalid {
        field: &'static str,
        message: String,
    },
    /// The bus could not store it: answer 503 so the provider retries.
    #[error("cannot store the message now: {0}")]
    Unavailable(#[from] BusError),
}

/// Check a phone number as sources accept it: an optional `+` and 1 to 20 digits.
pub fn check_identity(identity: &str) -> Result<&str, SourceError> {
    let id = identity.trim();
    let digits = id.strip_prefix('+').unwrap_or(id);
    if digits.is_empty() || digits.len() > 20 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err(SourceError::Invalid {
            field: "identity",
            message: format!("{identity:?} is not a phone number: expected digits with an optional leading +, at most 20"),
        });
    }
    Ok(id)
}

/// The inbound side every backend shares: check, write `sms.inbound`, and
/// return only once the bus stored it (or fail, so the provider retries).
pub struct Source {
    pub backend: String,
    /// `smsflow_received_total{stage="source:<name>"}` (accepted inbound
    /// messages; the sink stage counts under `backend:<name>`), resolved once.
    received: prometheus::IntCounter,
    producer: Producer,
    inbound_topic: Arc<str>,
    accept_timeout: Duration,
}

impl Source {
    pub fn new(
        backend: &str,
        producer: Producer,
        inbound_topic: Arc<str>,
        accept_timeout: Duration,
    ) -> Self {
        Self {
            backend: backend.to_owned(),
            received: metrics()
                .received
                .with_label_values(&[&format!("source:{backend}")]),
            producer,
            inbound_topic,
            accept_timeout,
        }
    }

    /// Accept `text` from `identity` (either may be missing from a request:
    /// that is reported as the field's error); `prepare` may add the
    /// provider's id and fields.
    pub async fn accept(
        &self,
        identity: Option<&str>,
        text: Option<&str>,
        prepare: impl FnOnce(&mut InboundMessage),
    ) -> Result<InboundMessage, SourceError> {
        let identity = identity.ok_or(SourceError::Invalid {
            field: "identity",
            message: "missing field identity: the phone number the message comes from".into(),
        })?;
        let text = text.ok_or(SourceError::Invalid {
            field: "text",
            message: "missing field text: the message".into(),
        })?;
        let identity = check_identity(identity)?;
        if text.is_empty() {
            return Err(SourceError::Invalid {
                field: "text",
                message: "empty text: an SMS has at least one character".into(),
            });
        }
        let mut msg = InboundMessage::new(Connection::new(&self.backend, identity), text);
        prepare(&mut msg);
        let payload = schema::inbound()
            .encode(&msg)
            .map_err(|e| SourceError::Invalid {
                field: "text",
                message: e.to_string(),
            })?;
        let stored = self.producer.send_and_wait(Produce::new(
            self.inbound_topic.clone(),
            Bytes::from(msg.connection.key()),
            payload,
        ));
        // Past the timeout the bus may still store it later: the provider's
        // retry then brings a duplicate, never a loss (at least once).
        tokio::time::timeout(self.accept_timeout, stored)
            .await
            .map_err(|_| {
                SourceError::Unavailable(BusError::Kafka {
                    message: format!("not stored within {:?}", self.accept_timeout),
                    retryable: true,
                })
            })??;
        self.received.inc();
        Ok(msg)
    }
}
