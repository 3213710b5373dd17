//! Router (out): `sms.outbound` → `sms.send.<backend>`.
//!
//! Drops messages to numbers that opted out (with a `suppressed` delivery
//! event), runs RapidSMS's outgoing phase (every app's [`App::outgoing`] in
//! reverse app order; one cancel stops the message), then sets the encoding
//! and segment count, hands the message to its backend's topic and logs it
//! (the message log).

use std::collections::HashMap;
use std::sync::Arc;

use crate::apps::{App, Outgoing};
use crate::bus::{Produce, Record};
use crate::message::{DeliveryEvent, DeliveryStatus, OutboundMessage};
use crate::metrics::metrics;
use crate::schema;
use crate::sms;
use crate::stage::{decode, encode, HandleError, Handler, Output};
use crate::state::contacts::ContactBook;
use crate::state::messagelog;
use crate::state::optout::{OptOuts, REPLY_FIELD};

pub struct RouterOut {
    /// `smsflow_dropped_total{stage, reason="cancelled"}`, resolved once.
    cancelled: prometheus::IntCounter,
    suppressed: prometheus::IntCounter,
    /// In reverse app order, as RapidSMS runs the outgoing phase.
    apps: Vec<Arc<dyn App>>,
    send_topics: HashMap<String, Arc<str>>,
    /// Opted-out numbers, and the events topic their `suppressed` events go to.
    optouts: Option<(Arc<OptOuts>, Arc<str>)>,
    /// The message log's topic, and the contacts its entries name.
    log: Option<(Arc<str>, Arc<ContactBook>)>,
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
            suppressed: metrics().dropped.with_label_values(&[stage, "suppressed"]),
            apps,
            send_topics,
            optouts: None,
            log: None,
        }
    }

    /// Drop messages to the numbers in `optouts`, with an event on `events`.
    pub fn with_optouts(mut self, optouts: Arc<OptOuts>, events: Arc<str>) -> Self {
        self.optouts = Some((optouts, events));
        self
    }

    /// Log every message handed to a backend on `topic`.
    pub fn with_log(mut self, topic: Arc<str>, contacts: Arc<ContactBook>) -> Self {
        self.log = Some((topic, contacts));
        self
    }

    /// Route one message: push its record for its backend and its log
    /// entry, or the `suppressed` event of a message to an opted-out
    /// number, or nothing when an app cancelled it.
    pub fn route(
        &self,
        msg: &mut OutboundMessage,
        out: &mut Vec<Produce>,
    ) -> Result<(), HandleError> {
        let Some(topic) = self.prepare(msg)? else {
            return Ok(());
        };
        if let Some((optouts, events)) = &self.optouts {
            if optouts.is_stopped(&msg.connection.identity) && !msg.fields.contains_key(REPLY_FIELD)
            {
                self.suppressed.inc();
                let mut event = DeliveryEvent::now(msg, DeliveryStatus::Suppressed);
                event.error = Some(format!("{} opted out", msg.connection.identity));
                out.push(encode(schema::event(), events, &msg.connection, &event)?);
                return Ok(());
            }
        }
        out.push(encode(schema::outbound(), &topic, &msg.connection, msg)?);
        if let Some((log, contacts)) = &self.log {
            let contact = contacts.by_connection(&msg.connection);
            let entry = messagelog::outbound(msg, contact.as_ref());
            out.push(encode(schema::log(), log, &entry.connection, &entry)?);
        }
        Ok(())
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
        self.route(&mut msg, out)
    }
}
