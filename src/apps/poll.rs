//! Polls declared in the pipeline: `<keyword> <choice>` records the sender's
//! answer, one per contact (or per phone, for senders who have not
//! registered), changeable by answering again.
//!
//! Answers are a table ([`PollBook`]) over the compacted `sms.polls` topic
//! (key = poll and voter), so results survive restarts on Kafka and every
//! process (the poll's app stage, the web server) sees the same counts.

use std::sync::Arc;

use super::app::{App, AppError, Context};
use crate::i18n::Texts;
use crate::state::polls::PollBook;

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
