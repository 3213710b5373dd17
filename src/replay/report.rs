//! What a replay found: each replayed message's replies at the time against
//! the replay's, matched by reply id (ids are derived from the inbound id,
//! the app and the reply's number, so the same reply has the same id), and
//! the dead letters the replay wrote.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write;

use serde::Serialize;

use super::range::Span;
use crate::message::{InboundMessage, OutboundMessage};

/// A reply as sent (or as the replay would send it).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Reply {
    pub id: String,
    /// The inbound message it answers.
    pub in_response_to: String,
    pub backend: String,
    pub to: String,
    pub app: Option<String>,
    pub text: String,
}

impl Reply {
    /// `msg`, read from `backend`'s send topic.
    pub fn of(backend: &str, msg: OutboundMessage) -> Option<Reply> {
        Some(Reply {
            in_response_to: msg.in_response_to?,
            id: msg.id,
            backend: backend.to_owned(),
            to: msg.connection.identity,
            app: msg.app,
            text: msg.text,
        })
    }
}

/// How a reply compares.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Change {
    Identical,
    /// The same reply (same id), another text or backend.
    Changed,
    /// Only the replay wrote it.
    New,
    /// Only the run at the time wrote it.
    Missing,
}

/// One reply's comparison.
#[derive(Debug, Clone, Serialize)]
pub struct Detail {
    pub change: Change,
    pub inbound_id: String,
    pub inbound_text: String,
    pub from: String,
    pub reply_id: String,
    pub app: Option<String>,
    pub backend: String,
    pub old_text: Option<String>,
    pub new_text: Option<String>,
}

/// A record the replay could not process.
#[derive(Debug, Clone, Serialize)]
pub struct DeadLetter {
    /// The replayed message it came from, when its payload says.
    pub inbound_id: Option<String>,
    pub stage: String,
    pub kind: String,
    pub message: String,
    pub source_topic: String,
}

/// What a report says before the comparison.
#[derive(Debug, Clone, Serialize)]
pub struct Head {
    pub id: String,
    /// Every topic the replay wrote starts with this.
    pub prefix: String,
    /// The topic replayed.
    pub topic: String,
    pub range: Vec<Span>,
    /// Records replayed (decodable or not).
    pub messages: usize,
    /// Apps no process of the replay runs (external ones): their messages
    /// get no reply in the replay.
    pub not_run: Vec<String>,
}

/// The whole comparison.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    #[serde(flatten)]
    pub head: Head,
    /// Messages whose replies are all identical (or that had none, then and now).
    pub messages_unchanged: usize,
    pub replies_before: usize,
    pub replies_after: usize,
    pub identical: usize,
    pub changed: usize,
    pub new: usize,
    pub missing: usize,
    pub dead_letters: usize,
    pub details: Vec<Detail>,
    pub dlq: Vec<DeadLetter>,
}

/// Compare, for each of `inbound`, the replies `before` (at the time) and
/// `after` (the replay); replies to other messages are left out.
pub fn compare(
    head: Head,
    inbound: &[InboundMessage],
    before: Vec<Reply>,
    after: Vec<Reply>,
    dlq: Vec<DeadLetter>,
) -> Report {
    let ids: BTreeSet<&str> = inbound.iter().map(|m| m.id.as_str()).collect();
    let by_id = |replies: Vec<Reply>| -> BTreeMap<String, Reply> {
        replies
            .into_iter()
            .filter(|r| ids.contains(r.in_response_to.as_str()))
            .map(|r| (r.id.clone(), r))
            .collect()
    };
    let (before, after) = (by_id(before), by_id(after));
    let mut details = Vec::new();
    for m in inbound {
        let mine = |r: &&Reply| r.in_response_to == m.id;
        let reply_ids: BTreeSet<&String> = before
            .values()
            .filter(mine)
            .chain(after.values().filter(mine))
            .map(|r| &r.id)
            .collect();
        for rid in reply_ids {
            let (old, new) = (before.get(rid), after.get(rid));
            let change = match (old, new) {
                (Some(o), Some(n)) if o.text == n.text && o.backend == n.backend => {
                    Change::Identical
                }
                (Some(_), Some(_)) => Change::Changed,
                (None, _) => Change::New,
                (_, None) => Change::Missing,
            };
            let Some(any) = new.or(old) else { continue };
            details.push(Detail {
                change,
                inbound_id: m.id.clone(),
                inbound_text: m.text.clone(),
                from: m.connection.identity.clone(),
                reply_id: rid.clone(),
                app: any.app.clone(),
                backend: any.backend.clone(),
                old_text: old.map(|r| r.text.clone()),
                new_text: new.map(|r| r.text.clone()),
            });
        }
    }
    let count = |c: Change| details.iter().filter(|d| d.change == c).count();
    let differs: BTreeSet<&str> = details
        .iter()
        .filter(|d| d.change != Change::Identical)
        .map(|d| d.inbound_id.as_str())
        .collect();
    Report {
        messages_unchanged: inbound
            .iter()
            .filter(|m| !differs.contains(m.id.as_str()))
            .count(),
        replies_before: before.len(),
        replies_after: after.len(),
        identical: count(Change::Identical),
        changed: count(Change::Changed),
        new: count(Change::New),
        missing: count(Change::Missing),
        dead_letters: dlq.len(),
        details,
        dlq,
        head,
    }
}

impl Report {
    /// The summary, then every reply that differs and every dead letter.
    pub fn text(&self) -> String {
        let mut s = String::new();
        let spans: Vec<String> = self
            .head
            .range
            .iter()
            .map(|r| format!("{}:{}..{}", r.partition, r.start, r.end - 1))
            .collect();
        let _ = writeln!(
            s,
            "replay {}: {} messages of {} (partition:first..last {})",
            self.head.id,
            self.head.messages,
            self.head.topic,
            spans.join(" ")
        );
        let _ = writeln!(
            s,
            "messages unchanged: {} of {}",
            self.messages_unchanged, self.head.messages
        );
        if !self.head.not_run.is_empty() {
            let _ = writeln!(
                s,
                "not run (external apps, no reply in the replay): {}",
                self.head.not_run.join(", ")
            );
        }
        let _ = writeln!(
            s,
            "replies: {} then, {} now: {} identical, {} changed, {} new, {} missing",
            self.replies_before,
            self.replies_after,
            self.identical,
            self.changed,
            self.new,
            self.missing
        );
        let _ = writeln!(s, "dead letters: {}", self.dead_letters);
        for d in self
            .details
            .iter()
            .filter(|d| d.change != Change::Identical)
        {
            let app = d.app.as_deref().unwrap_or("-");
            let _ = match d.change {
                Change::Changed => writeln!(
                    s,
                    "changed  {} {:?} from {} (app {app}, {}): {:?} → {:?}",
                    d.inbound_id,
                    d.inbound_text,
                    d.from,
                    d.backend,
                    d.old_text.as_deref().unwrap_or_default(),
                    d.new_text.as_deref().unwrap_or_default()
                ),
                Change::New => writeln!(
                    s,
                    "new      {} {:?} from {} (app {app}, {}): {:?}",
                    d.inbound_id,
                    d.inbound_text,
                    d.from,
                    d.backend,
                    d.new_text.as_deref().unwrap_or_default()
                ),
                Change::Missing => writeln!(
                    s,
                    "missing  {} {:?} from {} (app {app}, {}): {:?}",
                    d.inbound_id,
                    d.inbound_text,
                    d.from,
                    d.backend,
                    d.old_text.as_deref().unwrap_or_default()
                ),
                Change::Identical => Ok(()),
            };
        }
        for d in &self.dlq {
            let _ = writeln!(
                s,
                "dead letter {} ({}, stage {}): {}: {}",
                d.inbound_id.as_deref().unwrap_or("(undecodable)"),
                d.source_topic,
                d.stage,
                d.kind,
                d.message
            );
        }
        let _ = writeln!(
            s,
            "the replay's topics are {}*: delete them when done (see the analytics docs)",
            self.head.prefix
        );
        s
    }
}
