//! Opt-out: STOP, START and HELP, handled in the router's filter phase
//! before any app, as carriers and Twilio do.
//!
//! A stop keyword (the whole message, one word, any case) is answered with a
//! confirmation and recorded in the compacted `sms.optouts` topic (key =
//! number); from then on the outgoing router drops every message to that
//! number, whatever its backend, with a `suppressed` delivery event. A start
//! keyword records the number as subscribed again. Help is answered. The
//! answers themselves are always sent (they carry [`REPLY_FIELD`]).

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use bytes::Bytes;
use serde::{Deserialize, Serialize};

use crate::bus::Produce;
use crate::config::OptOut;
use crate::state::table::next_version;

/// Field set on the filter's own answers, which reach opted-out numbers.
pub const REPLY_FIELD: &str = "smsflow.optout";

/// What an opt-out keyword asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Request {
    Stop,
    Start,
    Help,
}

impl Request {
    /// The text key of its answer (`optout.stop`, ...).
    pub fn key(self) -> &'static str {
        match self {
            Request::Stop => "stop",
            Request::Start => "start",
            Request::Help => "help",
        }
    }
}

/// The opt-out keywords of a pipeline.
pub struct Keywords {
    words: HashMap<String, Request>,
    cfg: OptOut,
}

impl Keywords {
    pub fn new(cfg: &OptOut) -> Self {
        let mut words = HashMap::new();
        for (list, request) in [
            (&cfg.help, Request::Help),
            (&cfg.start, Request::Start),
            (&cfg.stop, Request::Stop),
        ] {
            for w in list {
                words.insert(w.trim().to_uppercase(), request);
            }
        }
        Self {
            words,
            cfg: cfg.clone(),
        }
    }

    /// The request `text` makes, if it is one keyword.
    pub fn request(&self, text: &str) -> Option<Request> {
        let t = text.trim();
        if t.is_empty() || t.len() > 32 {
            return None;
        }
        self.words.get(&t.to_uppercase()).copied()
    }

    /// The configured (English) answer to `request`.
    pub fn reply(&self, request: Request) -> &str {
        match request {
            Request::Stop => &self.cfg.stop_reply,
            Request::Start => &self.cfg.start_reply,
            Request::Help => &self.cfg.help_reply,
        }
    }
}

/// One number's state (the topic's record value, as JSON).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Entry {
    pub identity: String,
    pub stopped: bool,
    /// The keyword that set it, as sent.
    pub keyword: String,
    /// The backend it came in on.
    pub backend: String,
    pub at: i64,
}

/// The numbers that opted out: a table over `sms.optouts`, holding each
/// number's latest entry (stopped or not).
pub struct OptOuts {
    topic: Arc<str>,
    latest: RwLock<HashMap<String, Entry>>,
}

impl OptOuts {
    pub fn new(topic: &str) -> Arc<Self> {
        Arc::new(Self {
            topic: Arc::from(topic),
            latest: RwLock::default(),
        })
    }

    /// Keep `entry` unless a newer one for its number is held.
    fn put(&self, entry: Entry) {
        let mut m = self.latest.write().unwrap_or_else(|p| p.into_inner());
        if m.get(&entry.identity).is_some_and(|e| e.at > entry.at) {
            return;
        }
        m.insert(entry.identity.clone(), entry);
    }

    /// Whether `identity` opted out.
    pub fn is_stopped(&self, identity: &str) -> bool {
        self.latest
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(identity)
            .is_some_and(|e| e.stopped)
    }

    /// Every opted-out number, by number.
    pub fn list(&self) -> Vec<Entry> {
        let mut all: Vec<Entry> = self
            .latest
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .values()
            .filter(|e| e.stopped)
            .cloned()
            .collect();
        all.sort_by(|a, b| a.identity.cmp(&b.identity));
        all
    }

    /// Apply a record of the topic.
    pub fn apply(&self, payload: &[u8]) -> Result<(), serde_json::Error> {
        self.put(serde_json::from_slice(payload)?);
        Ok(())
    }

    /// Record a stop (or start) here; returns the record to write.
    pub fn record(&self, identity: &str, stopped: bool, keyword: &str, backend: &str) -> Produce {
        let previous = self
            .latest
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(identity)
            .map(|e| e.at);
        let entry = Entry {
            identity: identity.to_owned(),
            stopped,
            keyword: keyword.trim().to_owned(),
            backend: backend.to_owned(),
            at: next_version(previous),
        };
        let payload = serde_json::to_vec(&entry).unwrap_or_default();
        self.put(entry);
        Produce::new(
            self.topic.clone(),
            Bytes::from(identity.to_owned()),
            Bytes::from(payload),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn whole_message_keywords_only() {
        let k = Keywords::new(&OptOut::default());
        assert_eq!(k.request("stop"), Some(Request::Stop));
        assert_eq!(k.request("  Unsubscribe \n"), Some(Request::Stop));
        assert_eq!(k.request("UNSTOP"), Some(Request::Start));
        assert_eq!(k.request("help"), Some(Request::Help));
        assert_eq!(k.request("stop it"), None);
        assert_eq!(k.request("stopped"), None);
        assert_eq!(k.request(""), None);
    }

    #[test]
    fn a_start_undoes_a_stop_in_every_reader() {
        let here = OptOuts::new("sms.optouts");
        let stop = here.record("+1555", true, "STOP", "tester");
        assert!(here.is_stopped("+1555"));
        let there = OptOuts::new("sms.optouts");
        there.apply(&stop.payload).unwrap();
        assert!(there.is_stopped("+1555"));
        let start = here.record("+1555", false, "start", "tester");
        there.apply(&start.payload).unwrap();
        assert!(!here.is_stopped("+1555") && !there.is_stopped("+1555"));
        // Its own STOP read back after the START does not undo the START.
        here.apply(&stop.payload).unwrap();
        assert!(!here.is_stopped("+1555"));
        assert!(here.list().is_empty());
        assert!(there.apply(b"{").is_err());
    }
}
