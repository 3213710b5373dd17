//! Poll answers: a table over the compacted `sms.polls` topic (key = poll
//! and voter), so results survive restarts on Kafka and every process (the
//! poll's app stage, the web server) sees the same counts. The poll app
//! itself is [`crate::apps::poll`].

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use bytes::Bytes;
use serde::{Deserialize, Serialize};

use super::table::next_version;
use crate::bus::Produce;

/// One answer (the topic's record value, as JSON).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Answer {
    pub poll: String,
    /// The contact id, or `backend:identity` for a sender with no contact.
    pub voter: String,
    pub choice: String,
    pub at: i64,
}

/// A poll's results: each choice with its count, in the declared order.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Results {
    pub poll: String,
    pub question: String,
    pub choices: Vec<(String, usize)>,
    pub total: usize,
}

/// Every poll's answers.
pub struct PollBook {
    topic: Arc<str>,
    answers: RwLock<HashMap<String, HashMap<String, Answer>>>,
}

impl PollBook {
    pub fn new(topic: &str) -> Arc<Self> {
        Arc::new(Self {
            topic: Arc::from(topic),
            answers: RwLock::default(),
        })
    }

    /// Keep `answer` unless a newer one of its voter is held.
    fn put(&self, answer: Answer) {
        let mut all = self.answers.write().unwrap_or_else(|p| p.into_inner());
        let poll = all.entry(answer.poll.clone()).or_default();
        if poll.get(&answer.voter).is_some_and(|a| a.at > answer.at) {
            return;
        }
        poll.insert(answer.voter.clone(), answer);
    }

    fn latest(&self, poll: &str, voter: &str) -> Option<Answer> {
        let all = self.answers.read().unwrap_or_else(|p| p.into_inner());
        all.get(poll)?.get(voter).cloned()
    }

    /// Apply a record of the topic.
    pub fn apply(&self, payload: &[u8]) -> Result<(), serde_json::Error> {
        self.put(serde_json::from_slice(payload)?);
        Ok(())
    }

    /// `voter`'s answer to `poll`.
    pub fn answer_of(&self, poll: &str, voter: &str) -> Option<String> {
        self.latest(poll, voter).map(|a| a.choice)
    }

    /// Record an answer here; returns the record to write.
    pub fn record(&self, poll: &str, voter: &str, choice: &str) -> Produce {
        let answer = Answer {
            poll: poll.to_owned(),
            voter: voter.to_owned(),
            choice: choice.to_owned(),
            at: next_version(self.latest(poll, voter).map(|a| a.at)),
        };
        let payload = serde_json::to_vec(&answer).unwrap_or_default();
        let key = format!("{poll}:{voter}");
        self.put(answer);
        Produce::new(self.topic.clone(), Bytes::from(key), Bytes::from(payload))
    }

    /// The counts for `poll` over `choices`. Answers that are no longer a
    /// choice (the poll was edited) are left out.
    pub fn results(&self, poll: &str, question: &str, choices: &[String]) -> Results {
        let all = self.answers.read().unwrap_or_else(|p| p.into_inner());
        let mut counts: Vec<(String, usize)> = choices.iter().map(|c| (c.clone(), 0)).collect();
        for a in all.get(poll).into_iter().flat_map(|m| m.values()) {
            if let Some((_, n)) = counts.iter_mut().find(|(c, _)| *c == a.choice) {
                *n += 1;
            }
        }
        Results {
            poll: poll.to_owned(),
            question: question.to_owned(),
            total: counts.iter().map(|(_, n)| n).sum(),
            choices: counts,
        }
    }
}
