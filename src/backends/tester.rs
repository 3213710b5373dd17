//! The message tester (RapidSMS's httptester): chat as any phone number.
//!
//! Source: [`Tester::receive`] (the page's and the JSON API's POST) writes an
//! inbound message and returns once the bus acknowledged it. Sink:
//! [`TesterSink`] reads `sms.send.<name>`, records each reply in the number's
//! conversation (what the page shows) and reports it delivered on `sms.events`.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};

use serde::Serialize;
use tokio::sync::broadcast;

use super::{Source, SourceError};
use crate::bus::Record;
use crate::message::{now_millis, DeliveryEvent, DeliveryStatus, InboundMessage, OutboundMessage};
use crate::metrics::{metrics, observe_since};
use crate::schema;
use crate::stage::{decode, encode, HandleError, Handler, Output};

/// Phone numbers whose conversations are kept; the oldest is forgotten first.
const MAX_NUMBERS: usize = 10_000;
/// Sent ids remembered to send each message at most once.
const REMEMBERED_IDS: usize = 100_000;

/// One line of a conversation.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Line {
    /// `in` (phone → smsflow) or `out` (smsflow → phone).
    pub direction: &'static str,
    pub text: String,
    pub id: String,
    pub at: i64,
}

#[derive(Default)]
struct Conversations {
    by_number: HashMap<String, VecDeque<Line>>,
    order: VecDeque<String>,
    sent: HashSet<String>,
    sent_order: VecDeque<String>,
}

/// A tester backend: its conversations and its way into the bus.
pub struct Tester {
    pub name: String,
    history: usize,
    source: Source,
    state: Mutex<Conversations>,
    replies: broadcast::Sender<OutboundMessage>,
}

impl Tester {
    pub fn new(name: &str, history: usize, source: Source) -> Self {
        Self {
            name: name.to_owned(),
            history: history.max(1),
            source,
            state: Mutex::new(Conversations::default()),
            replies: broadcast::channel(65_536).0,
        }
    }

    fn state(&self) -> MutexGuard<'_, Conversations> {
        // Only this file touches the state, never panicking with it held.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Accept a message from `identity` (either may be missing from a
    /// request: that is the field's error); returns once it is on the bus.
    pub async fn receive(
        &self,
        identity: Option<&str>,
        text: Option<&str>,
    ) -> Result<InboundMessage, SourceError> {
        let msg = self.source.accept(identity, text, |_| {}).await?;
        self.record(
            &msg.connection.identity,
            Line {
                direction: "in",
                text: msg.text.clone(),
                id: msg.id.clone(),
                at: msg.received_at,
            },
        );
        Ok(msg)
    }

    /// The conversation of `identity`, oldest first.
    pub fn conversation(&self, identity: &str) -> Vec<Line> {
        self.state()
            .by_number
            .get(identity.trim())
            .map(|c| c.iter().cloned().collect())
            .unwrap_or_default()
    }

    /// Every reply delivered from now on.
    pub fn subscribe(&self) -> broadcast::Receiver<OutboundMessage> {
        self.replies.subscribe()
    }

    fn record(&self, identity: &str, line: Line) {
        let mut s = self.state();
        if !s.by_number.contains_key(identity) {
            if s.order.len() >= MAX_NUMBERS {
                if let Some(old) = s.order.pop_front() {
                    s.by_number.remove(&old);
                }
            }
            s.order.push_back(identity.to_owned());
        }
        let conv = s.by_number.entry(identity.to_owned()).or_default();
        if conv.len() >= self.history {
            conv.pop_front();
        }
        conv.push_back(line);
    }

    /// Deliver a reply; false when this id was already delivered.
    fn deliver(&self, msg: &OutboundMessage) -> bool {
        {
            let mut s = self.state();
            if !s.sent.insert(msg.id.clone()) {
                return false;
            }
            s.sent_order.push_back(msg.id.clone());
            if s.sent_order.len() > REMEMBERED_IDS {
                if let Some(old) = s.sent_order.pop_front() {
                    s.sent.remove(&old);
                }
            }
        }
        self.record(
            &msg.connection.identity,
            Line {
                direction: "out",
                text: msg.text.clone(),
                id: msg.id.clone(),
                at: now_millis(),
            },
        );
        // No subscriber is fine: nobody is waiting for replies.
        let _ = self.replies.send(msg.clone());
        true
    }
}

/// The tester's sink stage handler.
pub struct TesterSink {
    tester: Arc<Tester>,
    events: Arc<str>,
    reply_latency: prometheus::Histogram,
}

impl TesterSink {
    pub fn new(tester: Arc<Tester>, events: Arc<str>) -> Self {
        let reply_latency = metrics().reply_latency.with_label_values(&[&tester.name]);
        Self {
            tester,
            events,
            reply_latency,
        }
    }
}

impl TesterSink {
    /// The same tester's sink for the bulk lane (campaigns' messages reach
    /// the operator's phones too).
    pub fn bulk_lane(&self) -> TesterSink {
        TesterSink::new(self.tester.clone(), self.events.clone())
    }
}

impl Handler for TesterSink {
    async fn handle(&mut self, record: &Record, out: &mut Output) -> Result<(), HandleError> {
        let msg = decode(schema::outbound(), record)?;
        if msg.connection.backend != self.tester.name {
            return Err(HandleError::input(
                "invalid",
                format!(
                    "message for backend {:?} on {}'s topic",
                    msg.connection.backend, self.tester.name
                ),
            ));
        }
        if !self.tester.deliver(&msg) {
            metrics()
                .dropped
                .with_label_values(&[&format!("backend:{}", self.tester.name), "duplicate"])
                .inc();
            return Ok(());
        }
        observe_since(&self.reply_latency, msg.created_at);
        // Sent and delivered at once: no report follows.
        let mut event = DeliveryEvent::now(&msg, DeliveryStatus::Delivered);
        event.sent_at = event.at;
        out.push(encode(
            schema::event(),
            &self.events,
            &msg.connection,
            &event,
        )?);
        Ok(())
    }
}
