//! Inbound messages as the modem stores them, one PDU per part, made
//! whole: the parts of a long message (8- or 16-bit reference) are joined
//! in order whatever order they came in, a repeated part is kept only for
//! deleting, and a message whose parts do not all come within the timeout
//! is delivered with what came, marked incomplete.
//!
//! Nothing is deleted from the modem here: each finished message carries
//! the storage indexes of its parts, deleted once it is stored on the bus.
//! A restart therefore finds unfinished parts still on the modem.

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use sha2::{Digest, Sha256};
use tokio::time::Instant;

use super::pdu::{Body, Deliver};

/// A message made whole (or given up on), ready to store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Whole {
    pub originator: String,
    pub text: String,
    /// The service centre's timestamp of the first part (RFC 3339).
    pub timestamp: String,
    /// Storage indexes of every part (repeats included), to delete.
    pub indexes: Vec<u32>,
    /// A stable id of the message: the same parts give the same id, so a
    /// message read again after a restart is recognised.
    pub external_id: String,
    /// Parts that came, of how many, when some never did.
    pub incomplete: Option<(usize, u8)>,
    /// The body was 8-bit data (given as hex).
    pub binary: bool,
}

/// One part as read.
#[derive(Debug, Clone)]
struct Part {
    text: String,
    binary: bool,
    timestamp: String,
    /// The PDU, for the message's id.
    pdu: String,
}

/// Parts of one long message: by sender, reference and total.
#[derive(Debug)]
struct Partial {
    parts: BTreeMap<u8, Part>,
    indexes: Vec<u32>,
    since: Instant,
}

type Key = (String, u16, u8);

/// The parts read so far.
#[derive(Debug, Default)]
pub struct Inbox {
    partial: HashMap<Key, Partial>,
}

impl Inbox {
    /// Take the message stored at `index` (its PDU `pdu`, decoded as
    /// `deliver`): the whole message, when this completes one.
    pub fn take(&mut self, index: u32, pdu: &str, deliver: Deliver) -> Option<Whole> {
        let (text, binary) = match deliver.user_data.body {
            Body::Text(t) => (t, false),
            Body::Data(d) => (hex(&d), true),
        };
        let part = Part {
            text,
            binary,
            timestamp: deliver.timestamp.to_rfc3339(),
            pdu: pdu.to_owned(),
        };
        let concat = deliver.user_data.concat.filter(|c| c.total > 1);
        let Some(c) = concat else {
            return Some(whole(deliver.originator, vec![part], vec![index], None));
        };
        let key = (deliver.originator, c.reference, c.total);
        let partial = self.partial.entry(key.clone()).or_insert_with(|| Partial {
            parts: BTreeMap::new(),
            indexes: Vec::new(),
            since: Instant::now(),
        });
        if !partial.indexes.contains(&index) {
            partial.indexes.push(index);
        }
        partial.parts.entry(c.seq).or_insert(part);
        if partial.parts.len() < usize::from(c.total) {
            return None;
        }
        let partial = self.partial.remove(&key)?;
        let parts = partial.parts.into_values().collect();
        Some(whole(key.0, parts, partial.indexes, None))
    }

    /// Messages whose first part came more than `timeout` ago: given up
    /// on, delivered with the parts that came.
    pub fn expired(&mut self, timeout: Duration) -> Vec<Whole> {
        let now = Instant::now();
        let old: Vec<Key> = self
            .partial
            .iter()
            .filter(|(_, p)| now.duration_since(p.since) >= timeout)
            .map(|(k, _)| k.clone())
            .collect();
        old.into_iter()
            .filter_map(|key| {
                let p = self.partial.remove(&key)?;
                let came = (p.parts.len(), key.2);
                Some(whole(
                    key.0,
                    p.parts.into_values().collect(),
                    p.indexes,
                    Some(came),
                ))
            })
            .collect()
    }

    /// Whether `index` is held as a part of an unfinished message.
    pub fn holds(&self, index: u32) -> bool {
        self.partial.values().any(|p| p.indexes.contains(&index))
    }

    /// Forget every part (the modem was reset: storage is listed again).
    pub fn clear(&mut self) {
        self.partial.clear();
    }
}

fn whole(
    originator: String,
    parts: Vec<Part>,
    indexes: Vec<u32>,
    incomplete: Option<(usize, u8)>,
) -> Whole {
    let mut id = Sha256::new();
    id.update(originator.as_bytes());
    for p in &parts {
        id.update(b"\0");
        id.update(p.pdu.to_ascii_uppercase().as_bytes());
    }
    let digest = id.finalize();
    let binary = parts.iter().any(|p| p.binary);
    Whole {
        timestamp: parts
            .first()
            .map(|p| p.timestamp.clone())
            .unwrap_or_default(),
        text: parts.iter().map(|p| p.text.as_str()).collect(),
        originator,
        indexes,
        external_id: hex(&digest[..16]),
        incomplete,
        binary,
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02X}")).collect()
}

#[cfg(test)]
mod tests;
