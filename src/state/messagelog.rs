//! The message log (RapidSMS's messagelog app): every inbound message the
//! router reads (opt-out keywords included) and every outbound message it
//! hands to a backend, one entry per recipient, on the `sms.log` topic.
//!
//! Fixed from RapidSMS: a bulk send is logged once per recipient, not only
//! for its first connection; filtered messages (STOP) are logged too.
//!
//! [`MessageLog`] is a table over the topic that keeps the newest entries
//! (`messagelog.keep`) for the web page's search; analytics read the topic.

use std::collections::VecDeque;
use std::sync::{Arc, RwLock};

use serde::{Deserialize, Serialize};

use crate::message::{now_millis, Contact, Direction, InboundView, LogEntry, OutboundMessage};
use crate::schema::{self, DecodeError};

/// The log entry of an inbound message.
pub fn inbound(msg: &InboundView, contact: Option<&Contact>) -> LogEntry {
    LogEntry {
        message_id: msg.id.to_owned(),
        direction: Direction::In,
        connection: msg.connection.to_connection(),
        contact_id: contact.map(|c| c.id.clone()),
        contact_name: contact.map(|c| c.name.clone()).unwrap_or_default(),
        text: msg.text.to_owned(),
        at: msg.received_at,
        app: None,
        in_response_to: None,
    }
}

/// The log entry of an outbound message, as it is handed to its backend.
pub fn outbound(msg: &OutboundMessage, contact: Option<&Contact>) -> LogEntry {
    LogEntry {
        message_id: msg.id.clone(),
        direction: Direction::Out,
        connection: msg.connection.clone(),
        contact_id: contact.map(|c| c.id.clone()),
        contact_name: contact.map(|c| c.name.clone()).unwrap_or_default(),
        text: msg.text.clone(),
        at: now_millis(),
        app: msg.app.clone(),
        in_response_to: msg.in_response_to.clone(),
    }
}

/// A search of the log. Empty fields match everything.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct Query {
    /// Part of the phone number.
    pub number: String,
    /// Part of the contact's name, or its id.
    pub contact: String,
    /// Part of the text, any case.
    pub text: String,
    /// `in` or `out`; empty for both.
    pub direction: String,
    /// From this time (milliseconds since the epoch), inclusive.
    pub since: Option<i64>,
    /// Until this time (milliseconds since the epoch), exclusive.
    pub until: Option<i64>,
    /// 1-based page.
    pub page: Option<usize>,
    pub per_page: Option<usize>,
}

/// One page of results, newest first.
#[derive(Debug, Clone, Serialize)]
pub struct Page {
    pub entries: Vec<LogEntry>,
    pub total: usize,
    pub page: usize,
    pub pages: usize,
    pub per_page: usize,
}

/// RapidSMS's `PAGINATOR_OBJECTS_PER_PAGE`.
pub const PER_PAGE: usize = 12;

/// The newest entries of the log.
pub struct MessageLog {
    keep: usize,
    entries: RwLock<VecDeque<LogEntry>>,
}

impl MessageLog {
    pub fn new(keep: usize) -> Arc<Self> {
        Arc::new(Self {
            keep: keep.max(1),
            entries: RwLock::default(),
        })
    }

    /// Apply a record of the topic.
    pub fn apply(&self, payload: &[u8]) -> Result<(), DecodeError> {
        let entry = schema::log().decode(payload)?;
        let mut entries = self.entries.write().unwrap_or_else(|p| p.into_inner());
        entries.push_back(entry);
        while entries.len() > self.keep {
            entries.pop_front();
        }
        Ok(())
    }

    pub fn len(&self) -> usize {
        self.entries.read().unwrap_or_else(|p| p.into_inner()).len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The entries matching `q`, newest first, one page of them.
    pub fn search(&self, q: &Query) -> Page {
        let per_page = q.per_page.unwrap_or(PER_PAGE).clamp(1, 500);
        let text = q.text.to_lowercase();
        let contact = q.contact.to_lowercase();
        let number = q.number.trim();
        let entries = self.entries.read().unwrap_or_else(|p| p.into_inner());
        let matching: Vec<&LogEntry> = entries
            .iter()
            .rev()
            .filter(|e| number.is_empty() || e.connection.identity.contains(number))
            .filter(|e| {
                contact.is_empty()
                    || e.contact_name.to_lowercase().contains(&contact)
                    || e.contact_id.as_deref() == Some(q.contact.trim())
            })
            .filter(|e| text.is_empty() || e.text.to_lowercase().contains(&text))
            .filter(|e| match q.direction.as_str() {
                "in" => e.direction == Direction::In,
                "out" => e.direction == Direction::Out,
                _ => true,
            })
            .filter(|e| q.since.is_none_or(|s| e.at >= s))
            .filter(|e| q.until.is_none_or(|u| e.at < u))
            .collect();
        let total = matching.len();
        let pages = total.div_ceil(per_page).max(1);
        let page = q.page.unwrap_or(1).clamp(1, pages);
        Page {
            entries: matching
                .into_iter()
                .skip((page - 1) * per_page)
                .take(per_page)
                .cloned()
                .collect(),
            total,
            page,
            pages,
            per_page,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::message::Connection;
    use crate::message::InboundMessage;

    fn record(topic: &Arc<str>, e: &LogEntry) -> crate::bus::Produce {
        crate::stage::encode(schema::log(), topic, &e.connection, e).unwrap()
    }

    #[test]
    fn searches_newest_first_with_pages() {
        let log = MessageLog::new(100);
        let topic: Arc<str> = Arc::from("sms.log");
        for i in 0..30 {
            let mut m = InboundMessage::new(
                Connection::new("t", format!("+1555000{}", i % 3)),
                format!("hello {i}"),
            );
            m.received_at = 1_000 + i;
            let r = record(&topic, &inbound(&m.view(), None));
            log.apply(&r.payload).unwrap();
        }
        let p = log.search(&Query {
            number: "5550001".into(),
            ..Query::default()
        });
        assert_eq!(p.total, 10);
        assert_eq!(p.pages, 1);
        assert_eq!(p.entries[0].text, "hello 28");
        let p = log.search(&Query {
            page: Some(3),
            ..Query::default()
        });
        assert_eq!((p.total, p.pages, p.page, p.entries.len()), (30, 3, 3, 6));
        assert_eq!(p.entries[0].text, "hello 5");
        let p = log.search(&Query {
            text: "HELLO 1".into(),
            direction: "in".into(),
            ..Query::default()
        });
        assert_eq!(p.total, 11);
        let p = log.search(&Query {
            direction: "out".into(),
            ..Query::default()
        });
        assert_eq!(p.total, 0);
        let p = log.search(&Query {
            since: Some(1_010),
            until: Some(1_020),
            ..Query::default()
        });
        assert_eq!(p.total, 10);
        let small = MessageLog::new(5);
        for e in log
            .search(&Query {
                per_page: Some(500),
                ..Query::default()
            })
            .entries
        {
            small.apply(&record(&topic, &e).payload).unwrap();
        }
        assert_eq!(small.len(), 5);
    }
}
