//! The discard backend: a source like the generic HTTP backend's, and a sink
//! that sends nothing. Load tests and dry runs point a pipeline at it: every
//! stage up to the provider call does its real work, and the sink counts what
//! it would have sent.

use std::sync::Arc;

use crate::bus::Record;
use crate::message::{DeliveryEvent, DeliveryStatus, OutboundMessage};
use crate::metrics::{metrics, observe_since};
use crate::schema;
use crate::stage::{decode, encode, HandleError, Handler, Output};

/// Called with each message a discard sink would send, where a real sink calls
/// its provider (a load generator measures its latency here).
pub type SendHook = Arc<dyn Fn(&OutboundMessage) + Send + Sync>;

pub struct DiscardSink {
    hook: Option<SendHook>,
    reply_latency: prometheus::Histogram,
    /// The bulk lane's: a `sent` event for each message, so that a
    /// campaign's dry run shows its progress.
    events: Option<Arc<str>>,
}

impl DiscardSink {
    pub fn new(name: &str, hook: Option<SendHook>) -> Self {
        Self {
            hook,
            reply_latency: metrics().reply_latency.with_label_values(&[name]),
            events: None,
        }
    }

    /// Write a `sent` event (provider status `discarded`) to `events` for
    /// every message.
    pub fn with_events(mut self, events: Arc<str>) -> Self {
        self.events = Some(events);
        self
    }
}

impl Handler for DiscardSink {
    async fn handle(&mut self, record: &Record, out: &mut Output) -> Result<(), HandleError> {
        let msg = decode(schema::outbound(), record)?;
        if let Some(hook) = &self.hook {
            hook(&msg);
        }
        observe_since(&self.reply_latency, msg.created_at);
        if let Some(events) = &self.events {
            let mut event = DeliveryEvent::now(&msg, DeliveryStatus::Sent);
            event.provider_status = Some("discarded".into());
            event.sent_at = event.at;
            out.push(encode(schema::event(), events, &msg.connection, &event)?);
        }
        Ok(())
    }
}
