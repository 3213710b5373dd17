//! Message status, built from `sms.events`: where each outbound message
//! stands, per message and per recipient.
//!
//! RapidSMS's DatabaseRouter had the states Q/R/P/S/D/E but never set D
//! (delivered, issue #303). Here every delivery event moves a message
//! forward: queued → sent → delivered, or to failed, expired or
//! suppressed. Events can arrive out of order (a delivery report before the
//! sink's `sent`): a state never goes back to an earlier one.
//!
//! A send to several recipients (messaging, a poll broadcast) gives each
//! recipient its own message id and one shared send id (`campaign_id`):
//! asking for the send id lists every recipient.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::{Arc, RwLock};

use serde::Serialize;

use crate::message::{Connection, DeliveryEvent, DeliveryStatus};
use crate::schema::{self, DecodeError};

/// Messages remembered (a few hundred bytes each); the oldest is forgotten first.
const REMEMBERED: usize = 200_000;

/// One message's status.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct MessageStatus {
    pub message_id: String,
    pub connection: Connection,
    pub status: &'static str,
    /// When it reached `status` (ms since the epoch).
    pub at: i64,
    pub provider_id: Option<String>,
    pub error: Option<String>,
    /// The send (or campaign) it belongs to.
    pub send_id: Option<String>,
    /// Every state it went through, in the order the events came.
    pub history: Vec<(&'static str, i64)>,
}

/// The answer to "where is `id`?".
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Report {
    pub id: String,
    /// `message` or `send`.
    pub kind: &'static str,
    /// Recipients per state.
    pub counts: BTreeMap<&'static str, usize>,
    pub recipients: Vec<MessageStatus>,
}

fn rank(s: DeliveryStatus) -> u8 {
    match s {
        DeliveryStatus::Queued => 0,
        DeliveryStatus::Sent => 1,
        DeliveryStatus::Delivered
        | DeliveryStatus::Failed
        | DeliveryStatus::Expired
        | DeliveryStatus::Suppressed => 2,
    }
}

#[derive(Default)]
struct Inner {
    messages: HashMap<String, (DeliveryStatus, MessageStatus)>,
    order: VecDeque<String>,
    sends: HashMap<String, Vec<String>>,
}

/// Every message's status: a table over `sms.events`.
#[derive(Default)]
pub struct StatusBook {
    inner: RwLock<Inner>,
}

impl StatusBook {
    pub fn new() -> Arc<Self> {
        Arc::default()
    }

    /// Apply a record of the events topic.
    pub fn apply(&self, payload: &[u8]) -> Result<(), DecodeError> {
        let e = schema::event().decode(payload)?;
        self.apply_event(e);
        Ok(())
    }

    pub fn apply_event(&self, e: DeliveryEvent) {
        let mut inner = self.inner.write().unwrap_or_else(|p| p.into_inner());
        let name = e.status.name();
        if !inner.messages.contains_key(&e.message_id) {
            inner.order.push_back(e.message_id.clone());
            if let Some(send) = &e.campaign_id {
                inner
                    .sends
                    .entry(send.clone())
                    .or_default()
                    .push(e.message_id.clone());
            }
            if inner.order.len() > REMEMBERED {
                if let Some(old) = inner.order.pop_front() {
                    if let Some((_, s)) = inner.messages.remove(&old) {
                        if let Some(send) = s.send_id {
                            inner.sends.remove(&send);
                        }
                    }
                }
            }
        }
        let entry = inner
            .messages
            .entry(e.message_id.clone())
            .or_insert_with(|| {
                (
                    e.status,
                    MessageStatus {
                        message_id: e.message_id.clone(),
                        connection: e.connection.clone(),
                        status: name,
                        at: e.at,
                        provider_id: None,
                        error: None,
                        send_id: e.campaign_id.clone(),
                        history: Vec::new(),
                    },
                )
            });
        let (current, status) = entry;
        status.history.push((name, e.at));
        if e.provider_id.is_some() {
            status.provider_id = e.provider_id;
        }
        if rank(e.status) >= rank(*current) {
            *current = e.status;
            status.status = name;
            status.at = e.at;
            if e.error.is_some() {
                status.error = e.error;
            }
        }
    }

    /// The status of message `id`, or of every recipient of send `id`.
    pub fn report(&self, id: &str) -> Option<Report> {
        let inner = self.inner.read().unwrap_or_else(|p| p.into_inner());
        let (kind, recipients): (&'static str, Vec<MessageStatus>) = match inner.messages.get(id) {
            Some((_, s)) => ("message", vec![s.clone()]),
            None => {
                let ids = inner.sends.get(id)?;
                let found = ids
                    .iter()
                    .filter_map(|m| inner.messages.get(m).map(|(_, s)| s.clone()))
                    .collect();
                ("send", found)
            }
        };
        let mut counts = BTreeMap::new();
        for r in &recipients {
            *counts.entry(r.status).or_default() += 1;
        }
        Some(Report {
            id: id.to_owned(),
            kind,
            counts,
            recipients,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::message::{now_millis, OutboundMessage};

    fn event(msg: &OutboundMessage, s: DeliveryStatus) -> DeliveryEvent {
        let mut e = DeliveryEvent::now(msg, s);
        e.at = now_millis();
        e
    }

    #[test]
    fn states_only_move_forward() {
        let book = StatusBook::new();
        let mut a = OutboundMessage::new(Connection::new("t", "+1"), "hi");
        a.campaign_id = Some("send-1".into());
        let mut b = OutboundMessage::new(Connection::new("t", "+2"), "hi");
        b.campaign_id = Some("send-1".into());
        book.apply_event(event(&a, DeliveryStatus::Queued));
        book.apply_event(event(&b, DeliveryStatus::Queued));
        book.apply_event(event(&a, DeliveryStatus::Delivered));
        book.apply_event(event(&a, DeliveryStatus::Sent)); // late: stays delivered
        book.apply_event(event(&b, DeliveryStatus::Suppressed));
        let r = book.report(&a.id).unwrap();
        assert_eq!((r.kind, r.recipients[0].status), ("message", "delivered"));
        assert_eq!(r.recipients[0].history.len(), 3);
        let r = book.report("send-1").unwrap();
        assert_eq!(r.kind, "send");
        assert_eq!(r.counts.get("delivered"), Some(&1));
        assert_eq!(r.counts.get("suppressed"), Some(&1));
        assert!(book.report("nope").is_none());
    }
}
