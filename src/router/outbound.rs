//! Router (out): `sms.outbound` → `sms.send.<backend>`.
//!
//! Runs RapidSMS's outgoing phase (every app's [`App::outgoing`] in reverse
//! app order; one cancel stops the message), then sets the encoding and
//! segment count and hands the message to its backend's topic.

use std::collections::HashMap;
use std::sync::Arc;

use crate::apps::{App, Outgoing};
use crate::bus::{Produce, Record};
use crate::metrics::metrics;
use crate::schema;
use crate::sms;
use crate::stage::{decode, encode, HandleError, Handler};

pub struct RouterOut {
    stage: Arc<str>,
    /// In reverse app order, as RapidSMS runs the outgoing phase.
    apps: Vec<Arc<dyn App>>,
    send_topics: HashMap<String, Arc<str>>,
}

impl RouterOut {
    /// `apps` in pipeline order; `send_topics` maps backend name → topic.
    pub fn new(
        stage: Arc<str>,
        mut apps: Vec<Arc<dyn App>>,
        send_topics: HashMap<String, Arc<str>>,
    ) -> Self {
        apps.reverse();
        Self {
            stage,
            apps,
            send_topics,
        }
    }
}

impl Handler for RouterOut {
    async fn handle(&mut self, record: &Record, out: &mut Vec<Produce>) -> Result<(), HandleError> {
        let mut msg = decode(schema::outbound(), record)?;
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
            if app.outgoing(&mut msg) == Outgoing::Cancel {
                metrics()
                    .dropped
                    .with_label_values(&[&self.stage, "cancelled"])
                    .inc();
                return Ok(());
            }
        }
        let (encoding, segments) = sms::analyze(&msg.text);
        msg.encoding = Some(encoding);
        msg.segments = segments;
        out.push(encode(schema::outbound(), &topic, &msg.connection, &msg)?);
        Ok(())
    }
}
