//! An [`InboundMessage`] borrowed from the record it was decoded from.
//!
//! The router reads every inbound message but keeps few of its strings: it
//! looks at the connection and the text, then copies the record's bytes
//! into the routed record (`schema::splice`). Reading into this view
//! (`schema::Codec::view`) borrows the strings from the record instead of
//! allocating each one (`cargo bench --bench micro -- router`);
//! [`InboundView::to_message`] makes the owned message where one is needed
//! (a chained app, an opt-out reply). Every string is still checked to be
//! UTF-8, as in a full decode.

use std::borrow::Borrow;
use std::collections::BTreeMap;
use std::hash::{Hash, Hasher};

use super::inbound::{Connection, InboundMessage};

/// An [`InboundMessage`], its strings borrowed; field for field the same.
#[derive(Debug, Clone, PartialEq)]
pub struct InboundView<'a> {
    pub id: &'a str,
    pub connection: ConnectionView<'a>,
    pub text: &'a str,
    pub received_at: i64,
    pub external_id: Option<&'a str>,
    pub fields: FieldsView<'a>,
}

/// A [`Connection`], borrowed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConnectionView<'a> {
    pub backend: &'a str,
    pub identity: &'a str,
}

/// A message's `fields`, borrowed: (key, value) pairs in the record's order.
/// Most messages have none, and then it allocates nothing.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct FieldsView<'a>(Vec<(&'a str, &'a str)>);

impl<'a> InboundView<'a> {
    /// The owned message.
    pub fn to_message(&self) -> InboundMessage {
        InboundMessage {
            id: self.id.to_owned(),
            connection: self.connection.to_connection(),
            text: self.text.to_owned(),
            received_at: self.received_at,
            external_id: self.external_id.map(str::to_owned),
            fields: self.fields.to_map(),
        }
    }
}

impl InboundMessage {
    /// This message as a view, borrowing its strings.
    pub fn view(&self) -> InboundView<'_> {
        InboundView {
            id: &self.id,
            connection: self.connection.view(),
            text: &self.text,
            received_at: self.received_at,
            external_id: self.external_id.as_deref(),
            fields: FieldsView(
                self.fields
                    .iter()
                    .map(|(k, v)| (k.as_str(), v.as_str()))
                    .collect(),
            ),
        }
    }
}

impl ConnectionView<'_> {
    pub fn to_connection(&self) -> Connection {
        Connection::new(self.backend, self.identity)
    }

    /// Whether `key` is this connection's Kafka key ([`Connection::key`]),
    /// without making that string.
    pub fn is_key(&self, key: &[u8]) -> bool {
        let (b, i) = (self.backend.as_bytes(), self.identity.as_bytes());
        key.len() == b.len() + 1 + i.len()
            && key.starts_with(b)
            && key[b.len()] == b':'
            && key.ends_with(i)
    }
}

impl Connection {
    pub fn view(&self) -> ConnectionView<'_> {
        ConnectionView {
            backend: &self.backend,
            identity: &self.identity,
        }
    }
}

/// A connection's two strings, whoever holds them: a map keyed by
/// [`Connection`] is looked up with a [`ConnectionView`] through it
/// (`map.get(&view as &dyn ConnectionKey)`), without making a key.
pub trait ConnectionKey {
    /// (backend, identity).
    fn parts(&self) -> (&str, &str);
}

impl ConnectionKey for Connection {
    fn parts(&self) -> (&str, &str) {
        (&self.backend, &self.identity)
    }
}

impl ConnectionKey for ConnectionView<'_> {
    fn parts(&self) -> (&str, &str) {
        (self.backend, self.identity)
    }
}

impl<'a> Borrow<dyn ConnectionKey + 'a> for Connection {
    fn borrow(&self) -> &(dyn ConnectionKey + 'a) {
        self
    }
}

/// As `Connection`'s derived `Hash`: its fields in order.
impl Hash for dyn ConnectionKey + '_ {
    fn hash<H: Hasher>(&self, state: &mut H) {
        let (backend, identity) = self.parts();
        backend.hash(state);
        identity.hash(state);
    }
}

impl PartialEq for dyn ConnectionKey + '_ {
    fn eq(&self, other: &Self) -> bool {
        self.parts() == other.parts()
    }
}

impl Eq for dyn ConnectionKey + '_ {}

impl<'a> FieldsView<'a> {
    /// The pairs as the record holds them, in its order.
    pub fn from_pairs(pairs: Vec<(&'a str, &'a str)>) -> Self {
        FieldsView(pairs)
    }

    /// The map, as [`InboundMessage::fields`] holds it (of a key written
    /// twice, the last value).
    pub fn to_map(&self) -> BTreeMap<String, String> {
        self.0
            .iter()
            .map(|&(k, v)| (k.to_owned(), v.to_owned()))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_key_is_recognised_only_when_it_is_the_connections() {
        let c = Connection::new("kannel", "+2567");
        assert!(c.view().is_key(c.key().as_bytes()));
        for other in [
            "kannel:+25678",
            "kannel+2567",
            "kannel;+2567",
            "kanne:+2567",
            "",
            ":",
        ] {
            assert!(!c.view().is_key(other.as_bytes()), "{other}");
        }
        assert!(Connection::new("", "").view().is_key(b":"));
    }

    #[test]
    fn a_map_keyed_by_connections_is_looked_up_with_a_view() {
        let map: std::collections::HashMap<Connection, u8> = [
            (Connection::new("kannel", "+2567"), 1),
            (Connection::new("kannel", "+2568"), 2),
            (Connection::new("kanne", "l+2567"), 3),
        ]
        .into();
        for (c, n) in &map {
            assert_eq!(map.get(&c.view() as &dyn ConnectionKey), Some(n));
        }
        let other = ConnectionView {
            backend: "kannel",
            identity: "+2569",
        };
        assert_eq!(map.get(&other as &dyn ConnectionKey), None);
    }

    #[test]
    fn a_view_and_its_message_are_the_same_message() {
        let mut m = InboundMessage::new(Connection::new("kannel", "+2567"), "join Ada");
        m.external_id = Some("abc".into());
        m.fields.insert("to".into(), "15000".into());
        m.fields.insert("smsc".into(), "fake".into());
        assert_eq!(m.view().to_message(), m);
    }
}
