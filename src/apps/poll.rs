//! Polls declared in the pipeline: `<keyword> <choice>` records the sender's
//! answer, one per contact (or per phone, for senders who have not
//! registered), changeable by answering again.
//!
//! Answers are a table ([`PollBook`]) over the compacted `sms.polls` topic
//! (key = poll and voter), so results survive restarts on Kafka and every
//! process (the poll's app stage, the web server) sees the same counts.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use bytes::Bytes;
use serde::{Deserialize, Serialize};

use super::{App, AppError, Context};
use crate::bus::Produce;
use crate::i18n::Texts;
use crate::table::next_version;

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

/// The poll app.
pub struct Poll {
    name: String,
    question: String,
    choices: Vec<String>,
    book: Arc<PollBook>,
}

impl Poll {
    pub const HELP: &'static str = "{question} Reply {keyword} and one of: {choices}.";
    pub const RECORDED: &'static str = "Thank you, your answer {choice} was recorded.";
    pub const CHANGED: &'static str = "Your answer was changed from {previous} to {choice}.";
    pub const NOT_A_CHOICE: &'static str =
        "Sorry, \"{answer}\" is not a choice. Reply {keyword} and one of: {choices}.";

    pub fn new(name: &str, question: &str, choices: &[String], book: Arc<PollBook>) -> Self {
        Self {
            name: name.to_owned(),
            question: question.to_owned(),
            choices: choices.to_vec(),
            book,
        }
    }
}

/// A poll's question and how to answer it (`<poll>.help`, with
/// `<poll>.question`), in `language`: what a help request gets, and what a
/// broadcast of the poll sends.
pub fn question_text(
    texts: &Texts,
    poll: &str,
    question: &str,
    choices: &[String],
    language: &str,
) -> String {
    let question = texts.render(language, &format!("{poll}.question"), question, &[]);
    let keyword = poll.to_uppercase();
    let choices = choices.join(", ");
    texts.render(
        language,
        &format!("{poll}.help"),
        Poll::HELP,
        &[
            ("question", &question),
            ("keyword", &keyword),
            ("choices", &choices),
        ],
    )
}

impl App for Poll {
    fn handle(&self, cx: &mut Context<'_>) -> Result<(), AppError> {
        let Some(given) = cx
            .message()
            .rest
            .as_deref()
            .map(str::trim)
            .filter(|r| !r.is_empty())
        else {
            let text = question_text(
                cx.texts(),
                &self.name,
                &self.question,
                &self.choices,
                &cx.language(),
            );
            cx.respond(text);
            return Ok(());
        };
        let keyword = self.name.to_uppercase();
        let choices = self.choices.join(", ");
        let Some(choice) = self
            .choices
            .iter()
            .find(|c| c.eq_ignore_ascii_case(given))
            .cloned()
        else {
            let text = cx.text(
                "not_a_choice",
                Self::NOT_A_CHOICE,
                &[
                    ("answer", given),
                    ("keyword", &keyword),
                    ("choices", &choices),
                ],
            );
            cx.respond_error(text);
            return Ok(());
        };
        let voter = match cx.contact() {
            Some(c) => c.id,
            None => cx.message().message.connection.key(),
        };
        let previous = self.book.answer_of(&self.name, &voter);
        cx.store(self.book.record(&self.name, &voter, &choice));
        let text = match previous {
            Some(p) if p != choice => cx.text(
                "changed",
                Self::CHANGED,
                &[("previous", &p), ("choice", &choice)],
            ),
            _ => cx.text("recorded", Self::RECORDED, &[("choice", &choice)]),
        };
        cx.respond(text);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_answer_read_back_late_does_not_undo_a_newer_one() {
        let book = PollBook::new("sms.polls");
        let first = book.record("lunch", "c1", "pizza");
        let second = book.record("lunch", "c1", "salad");
        book.apply(&first.payload).unwrap();
        book.apply(&second.payload).unwrap();
        book.apply(&first.payload).unwrap();
        assert_eq!(book.answer_of("lunch", "c1").as_deref(), Some("salad"));
        let choices = ["pizza".to_string(), "salad".to_string()];
        let r = book.results("lunch", "?", &choices);
        assert_eq!((r.choices[1].1, r.total), (1, 1));
        assert!(book.apply(b"not json").is_err());
    }
}
