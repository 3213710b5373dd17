//! Router (out): `sms.outbound` → `sms.send.<backend>`.
//!
//! Runs RapidSMS's outgoing phase (every app's [`App::outgoing`] in reverse
//! app order; one cancel stops the message), then sets the encoding and
//! segment count and hands the message to its backend's topic.

use std::collections::HashMap;
use std::sync::Arc;

use crate::apps::{App, Outgoing};
use crate::bus::Record;
use crate::message::OutboundMessage;
use crate::metrics::metrics;
use crate::schema;
use crate::sms;
use crate::stage::{decode, encode, HandleError, Handler, Output};

pub struct RouterOut {
    /// `smsflow_dropped_total{stage, reason="cancelled"}`, resolved once.
    cancelled: prometheus::IntCounter,
    /// In reverse app order, as RapidSMS runs the outgoing phase.
    apps: Vec<Arc<dyn App>>,
    send_topics: HashMap<String, Arc<str>>,
}

impl RouterOut {
    /// `apps` in pipeline order; `send_topics` maps backend name → topic.
    pub fn new(
        stage: &str,
        mut apps: Vec<Arc<dyn App>>,
        send_topics: HashMap<String, Arc<str>>,
    ) -> Self {
        apps.reverse();
        Self {
            cancelled: metrics().dropped.with_label_values(&[stage, "cancelled"]),
            apps,
            send_topics,
        }
    }

    /// The outgoing phase for one message: check it, let every app alter or
    /// cancel it, set encoding and segments. Returns the topic to send it on,
    /// or `None` when an app cancelled it.
    pub fn prepare(&self, msg: &mut OutboundMessage) -> Result<Option<Arc<str>>, HandleError> {
        if msg.connection.identity.trim().is_empty() {
            return Err(HandleError::input(
                "invalid",
                "empty identity in connection",
            ));
        }
        let Some(topic) = self.send_topics.get(&msg.connection.backend).cloned() else {
            // RapidSMS: "Router is not configured with the %s backend".
            return Err(HandleError::input(
                "invalid",
                format!(
                    "router is not configured with the {:?} backend",
                    msg.connection.backend
                ),
            ));
        };
        for app in &self.apps {
            if app.outgoing(msg) == Outgoing::Cancel {
                self.cancelled.inc();
                return Ok(None);
            }
        }
        let (encoding, segments) = sms::analyze(&msg.text);
        msg.encoding = Some(encoding);
        msg.segments = segments;
        Ok(Some(topic))
    }
}

impl Handler for RouterOut {
    async fn handle(&mut self, record: &Record, out: &mut Output) -> Result<(), HandleError> {
        let mut msg = decode(schema::outbound(), record)?;
        if let Some(topic) = self.prepare(&mut msg)? {
            out.push(encode(schema::outbound(), &topic, &msg.connection, &msg)?);
        }
        Ok(())
    }
}
