//! Backends: the provider side. Each backend is a *source* (accepts the
//! provider's inbound format, writes `sms.inbound`, answers only after the
//! bus acknowledged) and a *sink* (reads `sms.send.<name>`, delivers, writes
//! `sms.events`).

pub mod auth;
pub mod build;
pub mod clickatell;
pub mod dedupe;
pub mod discard;
pub mod generic_http;
pub mod json;
pub mod kannel;
pub mod modem;
pub mod provider;
pub mod sent;
pub mod tester;
pub mod twilio;
pub mod vumi;
pub mod webhook;

pub use webhook::SourceError;

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;

use crate::bus::{BusError, Produce, Producer};
use crate::config::Receiving;
use crate::message::{Connection, DeliveryEvent, DeliveryStatus, InboundMessage};
use crate::metrics::metrics;
use crate::schema;
use crate::sms::numbers::{self, Country};
use dedupe::Dedupe;
use sent::SentLog;

/// The `receive:` bounds on what a request may carry, checked before
/// anything is stored (a 1.5 MB message id or a 2 MB text would otherwise
/// travel through every stage and the message log).
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Characters of a text.
    pub text: usize,
    /// Bytes of an id.
    pub id: usize,
    /// Bytes of a phone number as given.
    pub identity: usize,
    /// Bytes of any other field's value.
    pub field: usize,
}

impl Limits {
    pub fn new(r: &Receiving) -> Self {
        Limits {
            text: r.max_text,
            id: r.max_id,
            identity: r.max_identity,
            field: r.max_field,
        }
    }

    /// Refuse a text of more than `text` characters (413).
    pub fn check_text(&self, field: &str, text: &str) -> Result<(), SourceError> {
        // Counting stops past the limit: a 2 MB text costs no more than a long one.
        if text.chars().nth(self.text).is_some() {
            return Err(SourceError::TooLarge {
                field: field.to_owned(),
                message: format!(
                    "the text is longer than {} characters, the limit of this backend (receive.max_text)",
                    self.text
                ),
            });
        }
        Ok(())
    }

    /// Refuse an id of more than `id` bytes (400 naming `field`).
    pub fn check_id(&self, field: &str, value: &str) -> Result<(), SourceError> {
        too_long(field, value, self.id, "max_id")
    }

    /// Refuse a phone number of more than `identity` bytes (400 naming `field`).
    pub fn check_identity(&self, field: &str, value: &str) -> Result<(), SourceError> {
        too_long(field, value, self.identity, "max_identity")
    }

    /// Refuse another field of more than `field` bytes (400 naming it).
    pub fn check_field(&self, field: &str, value: &str) -> Result<(), SourceError> {
        too_long(field, value, self.field, "max_field")
    }
}

impl Default for Limits {
    fn default() -> Self {
        Limits::new(&Receiving::default())
    }
}

fn too_long(field: &str, value: &str, limit: usize, key: &str) -> Result<(), SourceError> {
    if value.len() > limit {
        // The value is not quoted: it is the over-long thing.
        return Err(SourceError::TooLong {
            field: field.to_owned(),
            message: format!(
                "{} bytes long: at most {limit} are accepted (receive.{key})",
                value.len()
            ),
        });
    }
    Ok(())
}

/// Check a phone number as sources accept it: an optional `+` and 1 to 20
/// digits (spaces, dashes, dots and parentheses ignored), cleaned.
pub fn check_identity(identity: &str) -> Result<String, SourceError> {
    numbers::normalize(identity, None).map_err(|e| SourceError::Invalid {
        field: "identity",
        message: e.to_string(),
    })
}

/// The inbound side every backend shares: check, write `sms.inbound`, and
/// return only once the bus stored it (or fail, so the provider retries).
pub struct Source {
    pub backend: String,
    /// `smsflow_received_total{stage="source:<name>"}` (accepted inbound
    /// messages; the sink stage counts under `backend:<name>`), resolved once.
    received: prometheus::IntCounter,
    duplicates: prometheus::IntCounter,
    producer: Producer,
    inbound_topic: Arc<str>,
    accept_timeout: Duration,
    country: Option<Country>,
    dedupe: Dedupe,
    empty_text: bool,
    limits: Limits,
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
            duplicates: metrics()
                .dropped
                .with_label_values(&[&format!("source:{backend}"), "duplicate"]),
            producer,
            inbound_topic,
            accept_timeout,
            country: None,
            dedupe: Dedupe::new(Receiving::default().dedupe_window),
            empty_text: false,
            limits: Limits::default(),
        }
    }

    /// Apply a backend's `receive:` settings.
    pub fn with_receiving(mut self, r: &Receiving) -> Self {
        self.country = r.country.as_deref().and_then(Country::parse);
        self.dedupe = Dedupe::new(r.dedupe_window);
        self.limits = Limits::new(r);
        self
    }

    /// The bounds this source applies, for a backend that checks a field
    /// before it gets here.
    pub fn limits(&self) -> Limits {
        self.limits
    }

    /// Accept empty texts (Vumi sends them, for example for session starts).
    pub fn allow_empty_text(mut self) -> Self {
        self.empty_text = true;
        self
    }

    /// Accept `text` from `identity` (either may be missing from a request:
    /// that is reported as the field's error); `prepare` may add the
    /// provider's id and fields. A message whose provider id was stored
    /// within the dedupe window is answered as accepted and not stored again.
    pub async fn accept(
        &self,
        identity: Option<&str>,
        text: Option<&str>,
        prepare: impl FnOnce(&mut InboundMessage),
    ) -> Result<InboundMessage, SourceError> {
        let raw = identity.ok_or(SourceError::missing(
            "identity",
            "the phone number the message comes from",
        ))?;
        let text = text.ok_or(SourceError::missing("text", "the message"))?;
        self.limits.check_identity("identity", raw)?;
        self.limits.check_text("text", text)?;
        let identity = numbers::normalize(raw, self.country).map_err(|e| SourceError::Invalid {
            field: "identity",
            message: e.to_string(),
        })?;
        if text.is_empty() && !self.empty_text {
            return Err(SourceError::Invalid {
                field: "text",
                message: "empty text: an SMS has at least one character".into(),
            });
        }
        let mut msg = InboundMessage::new(Connection::new(&self.backend, identity), text);
        if msg.connection.identity != raw {
            msg.fields.insert("raw_identity".into(), raw.to_owned());
        }
        prepare(&mut msg);
        self.check_prepared(&msg)?;
        if let Some(external) = &msg.external_id {
            msg.id = crate::message::inbound_id(&self.backend, external);
        }
        let claim = match &msg.external_id {
            Some(id) => Some(self.dedupe.claim(id).await),
            None => None,
        };
        if claim.as_ref().is_some_and(|c| c.seen()) {
            self.duplicates.inc();
            return Ok(msg);
        }
        let payload = schema::inbound()
            .encode(&msg)
            .map_err(|e| SourceError::Invalid {
                field: "text",
                message: e.to_string(),
            })?;
        let record = Produce::new(
            self.inbound_topic.clone(),
            Bytes::from(msg.connection.key()),
            payload,
        );
        store(&self.producer, record, self.accept_timeout).await?;
        if let Some(c) = claim {
            c.stored();
        }
        self.received.inc();
        Ok(msg)
    }

    /// What a backend added to a message is within the limits too: its id,
    /// and each field (named as the provider names it).
    fn check_prepared(&self, msg: &InboundMessage) -> Result<(), SourceError> {
        if let Some(id) = &msg.external_id {
            self.limits.check_id("id", id)?;
        }
        for (name, value) in &msg.fields {
            self.limits.check_field("field name", name)?;
            self.limits.check_field(name, value)?;
        }
        Ok(())
    }
}

/// Write `record` and wait until the bus stored it, at most `timeout`. Past
/// the timeout the bus may still store it later: the provider's retry then
/// brings a repeat (dropped within the dedupe window), never a loss.
pub(crate) async fn store(
    producer: &Producer,
    record: Produce,
    timeout: Duration,
) -> Result<(), SourceError> {
    tokio::time::timeout(timeout, producer.send_and_wait(record))
        .await
        .map_err(|_| {
            SourceError::Unavailable(BusError::Kafka {
                message: format!("not stored within {timeout:?}"),
                retryable: true,
            })
        })??;
    Ok(())
}

/// What a backend's webhooks need: who may call them, its source (inbound
/// messages) and its reports (delivery reports).
pub struct Hooks {
    pub auth: auth::WebhookAuth,
    pub source: Source,
    pub reports: Reports,
}

/// A delivery report as a provider's callback gave it.
#[derive(Debug, Clone, Default)]
pub struct Report {
    /// Our message id, when the callback carries it (Kannel's `dlr-url`,
    /// Twilio's `StatusCallback`, Clickatell's `clientMessageId`).
    pub message_id: Option<String>,
    /// The provider's id for the message.
    pub provider_id: Option<String>,
    /// The phone, when the callback names it.
    pub identity: Option<String>,
    pub status: Option<DeliveryStatus>,
    /// The provider's status as it gave it.
    pub provider_status: String,
    pub error: Option<String>,
}

/// The callback side every provider backend shares: delivery reports become
/// delivery events, stored before the provider gets its 200 (otherwise it
/// retries); a repeated report is answered and not stored twice.
pub struct Reports {
    backend: String,
    producer: Producer,
    events: Arc<str>,
    accept_timeout: Duration,
    dedupe: Dedupe,
    /// The sink's sent-log: finds our message for a provider id.
    log: SentLog,
    /// The bulk lane's, when the backend has one.
    bulk_log: Option<SentLog>,
    limits: Limits,
}

impl Reports {
    pub fn new(
        backend: &str,
        producer: Producer,
        events: Arc<str>,
        accept_timeout: Duration,
        log: SentLog,
    ) -> Self {
        Self {
            backend: backend.to_owned(),
            producer,
            events,
            accept_timeout,
            dedupe: Dedupe::new(Receiving::default().dedupe_window),
            log,
            bulk_log: None,
            limits: Limits::default(),
        }
    }

    /// Apply a backend's `receive:` limits.
    pub fn with_receiving(mut self, r: &Receiving) -> Self {
        self.limits = Limits::new(r);
        self
    }

    /// Refuse a report whose ids or texts are over the limits (named as
    /// [`Report`]'s fields; a backend renames them to the provider's).
    fn check(&self, r: &Report) -> Result<(), SourceError> {
        let l = &self.limits;
        for (field, id) in [
            ("message_id", &r.message_id),
            ("provider_id", &r.provider_id),
        ] {
            if let Some(id) = id {
                l.check_id(field, id)?;
            }
        }
        if let Some(identity) = &r.identity {
            l.check_identity("identity", identity)?;
        }
        l.check_field("status", &r.provider_status)?;
        if let Some(error) = &r.error {
            l.check_field("error", error)?;
        }
        Ok(())
    }

    /// Find messages of the bulk lane too (campaigns' reports).
    pub fn with_bulk_log(mut self, log: Option<SentLog>) -> Self {
        self.bulk_log = log;
        self
    }

    /// Store `r` as a delivery event.
    pub async fn report(&self, r: Report) -> Result<DeliveryEvent, SourceError> {
        self.check(&r)?;
        let status = r.status.ok_or_else(|| SourceError::Invalid {
            field: "status",
            message: format!("unknown delivery status {:?}", r.provider_status),
        })?;
        let found = r.provider_id.as_deref().and_then(|pid| {
            self.log
                .by_provider_id(pid)
                .or_else(|| self.bulk_log.as_ref()?.by_provider_id(pid))
        });
        let message_id = match (r.message_id, &found) {
            (Some(id), _) => id,
            (None, Some((id, _))) => id.clone(),
            (None, None) => {
                tracing::warn!(backend = %self.backend, provider_id = ?r.provider_id, "delivery report for a message this sink does not know; stored with an empty message id");
                String::new()
            }
        };
        // What the sent-log knows of it: the phone, when it was sent, its campaign and app.
        let entry = found.and_then(|(_, entry)| entry);
        let identity = r
            .identity
            .or_else(|| entry.as_ref().map(|e| e.identity.clone()))
            .unwrap_or_default();
        let sent = entry.filter(|e| e.state == sent::State::Sent);
        let event = DeliveryEvent {
            message_id,
            connection: Connection::new(&self.backend, identity),
            status,
            at: crate::message::now_millis(),
            provider_id: r.provider_id,
            error: r.error,
            provider_status: Some(r.provider_status),
            campaign_id: sent.as_ref().and_then(|e| e.campaign_id.clone()),
            segments: 0,
            app: sent.as_ref().and_then(|e| e.app.clone()),
            accepted_at: 0,
            sent_at: sent.as_ref().map_or(0, |e| e.at),
            report: true,
        };
        let key = format!(
            "{}/{}/{}",
            event.message_id,
            event.provider_id.as_deref().unwrap_or_default(),
            event.provider_status.as_deref().unwrap_or_default()
        );
        let claim = self.dedupe.claim(&key).await;
        if claim.seen() {
            return Ok(event);
        }
        let payload = schema::event()
            .encode(&event)
            .map_err(|e| SourceError::Invalid {
                field: "status",
                message: e.to_string(),
            })?;
        let record = Produce::new(
            self.events.clone(),
            Bytes::from(event.connection.key()),
            payload,
        );
        store(&self.producer, record, self.accept_timeout).await?;
        claim.stored();
        metrics()
            .reports
            .with_label_values(&[&self.backend, status.name()])
            .inc();
        Ok(event)
    }
}
