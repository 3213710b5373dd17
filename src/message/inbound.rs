//! What a phone sent: the [`Connection`] it came over and the
//! [`InboundMessage`] (`sms.inbound`).

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};

use super::ids::{new_id, now_millis};

/// Free-form metadata (RapidSMS `msg.fields`). Sorted, so encoding is stable.
pub type Fields = BTreeMap<String, String>;

/// The pair (backend, identity): where a phone is reached (RapidSMS `Connection`).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Connection {
    pub backend: String,
    pub identity: String,
}

impl Connection {
    pub fn new(backend: impl Into<String>, identity: impl Into<String>) -> Self {
        Self {
            backend: backend.into(),
            identity: identity.into(),
        }
    }

    /// The Kafka key of every record about this connection: `backend:identity`.
    /// It keeps one phone's traffic on one partition, in order, in every stage.
    pub fn key(&self) -> String {
        let mut key = String::with_capacity(self.backend.len() + 1 + self.identity.len());
        key.push_str(&self.backend);
        key.push(':');
        key.push_str(&self.identity);
        key
    }
}

impl fmt::Display for Connection {
    /// RapidSMS's `"<identity> via <backend>"`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} via {}", self.identity, self.backend)
    }
}

/// A message a phone sent, as a backend source accepted it (`sms.inbound`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct InboundMessage {
    pub id: String,
    pub connection: Connection,
    pub text: String,
    /// Milliseconds since the Unix epoch.
    pub received_at: i64,
    pub external_id: Option<String>,
    pub fields: Fields,
}

impl InboundMessage {
    /// A new message with a fresh id, received now.
    pub fn new(connection: Connection, text: impl Into<String>) -> Self {
        Self {
            id: new_id(),
            connection,
            text: text.into(),
            received_at: now_millis(),
            external_id: None,
            fields: Fields::new(),
        }
    }
}
