//! What the API and the pages share: the state their handlers are given
//! ([`HttpState`]) and the operations both go through, so that a contact
//! saved from the page and from the API is checked and written the same
//! way: changed in this process's tables at once, and written to the bus
//! before the answer (a write the bus refuses is a 503, worth retrying).

use std::collections::HashMap;
use std::sync::Arc;

use axum::Router;

use crate::apps::messaging::{self, Recipients, SendError, Sent};
use crate::apps::poll;
use crate::backends::tester::Tester;
use crate::bus::{Produce, Producer};
use crate::config::{self, Pipeline};
use crate::message::{Connection, Contact};
use crate::state::contacts::{ContactBook, ContactError, Import};
use crate::state::polls::Results;
use crate::state::Tables;

/// What the handlers share.
pub struct HttpState {
    pub testers: HashMap<String, Arc<Tester>>,
    /// Each backend's webhook routes (full paths, under `/backend/<name>/`).
    pub backends: Vec<Router>,
    /// `/readyz`: ready, or why not.
    pub ready: Arc<dyn Fn() -> Result<(), String> + Send + Sync>,
    /// Contacts, opt-outs, polls, the message log, message status.
    pub tables: Tables,
    /// Writes what the API and the web pages change (contacts, messages).
    pub producer: Producer,
    pub pipeline: Arc<Pipeline>,
}

/// Why a change was not made.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Refused {
    /// The user's input: the field and what is wrong with it.
    Invalid {
        field: &'static str,
        message: String,
    },
    /// No such contact (or poll).
    NotFound(String),
    /// The bus did not take the change: a retry may help.
    Bus(String),
}

impl From<ContactError> for Refused {
    fn from(e: ContactError) -> Self {
        Refused::Invalid {
            field: e.field,
            message: e.message,
        }
    }
}

impl From<SendError> for Refused {
    fn from(e: SendError) -> Self {
        match e.field {
            "bus" => Refused::Bus(e.message),
            field => Refused::Invalid {
                field,
                message: e.message,
            },
        }
    }
}

/// Write `records` in order, each acknowledged before the next.
async fn write(s: &HttpState, records: Vec<Produce>) -> Result<(), Refused> {
    for r in records {
        s.producer
            .send_and_wait(r)
            .await
            .map_err(|e| Refused::Bus(format!("the change could not be stored: {e}")))?;
    }
    Ok(())
}

/// A contact as a form or a request gives it.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct ContactInput {
    pub name: String,
    /// A language's code or name; empty for the pipeline's default.
    pub language: String,
    pub groups: Vec<String>,
    pub connections: Vec<Connection>,
}

impl ContactInput {
    /// From `existing` (its id and creation time are kept) or new.
    fn contact(self, s: &HttpState, existing: Option<Contact>) -> Result<Contact, ContactError> {
        let name = self.name.trim();
        if name.is_empty() {
            return Err(ContactError {
                field: "name",
                message: "a contact needs a name".into(),
            });
        }
        let language = match self.language.trim() {
            "" => String::new(),
            wanted => match s.tables.texts.find_language(wanted) {
                Some(l) => l.code.clone(),
                None => {
                    let known: Vec<String> = s
                        .tables
                        .texts
                        .available()
                        .iter()
                        .map(|l| format!("{} ({})", l.code, l.name))
                        .collect();
                    return Err(ContactError {
                        field: "language",
                        message: format!(
                            "no language {wanted:?} in this pipeline (its languages: {})",
                            known.join(", ")
                        ),
                    });
                }
            },
        };
        let mut contact = existing.unwrap_or_else(|| ContactBook::new_contact(name, Vec::new()));
        contact.name = name.to_owned();
        contact.language = language;
        contact.groups = self.groups;
        contact.connections = self.connections;
        Ok(contact)
    }
}

/// Check and save a contact: a new one (`id` `None`) or contact `id`.
pub(crate) async fn save_contact(
    s: &HttpState,
    id: Option<&str>,
    input: ContactInput,
) -> Result<Contact, Refused> {
    let existing = match id {
        Some(id) => Some(
            s.tables
                .contacts
                .get(id)
                .ok_or_else(|| Refused::NotFound(format!("no contact with id {id}")))?,
        ),
        None => None,
    };
    let contact = input.contact(s, existing)?;
    let id = contact.id.clone();
    let records = s.tables.contacts.save(contact)?;
    write(s, records).await?;
    s.tables
        .contacts
        .get(&id)
        .ok_or_else(|| Refused::NotFound(format!("contact {id} was deleted while being saved")))
}

/// Delete contact `id`; returns it as it was.
pub(crate) async fn delete_contact(s: &HttpState, id: &str) -> Result<Contact, Refused> {
    let not_found = || Refused::NotFound(format!("no contact with id {id}"));
    let contact = s.tables.contacts.get(id).ok_or_else(not_found)?;
    let tombstone = s.tables.contacts.delete(id).ok_or_else(not_found)?;
    write(s, vec![tombstone]).await?;
    Ok(contact)
}

/// Import CSV lines `name, backend, identity`.
pub(crate) async fn import_contacts(s: &HttpState, csv: &str) -> Result<Import, Refused> {
    let (report, records) = s.tables.contacts.import_csv(csv);
    write(s, records).await?;
    Ok(report)
}

/// Send `text` (the messaging form).
pub(crate) async fn send_message(
    s: &HttpState,
    text: &str,
    to: &Recipients,
) -> Result<Sent, Refused> {
    Ok(messaging::send(&s.tables, &s.pipeline, &s.producer, text, to).await?)
}

/// A poll the pipeline declares.
pub(crate) struct PollDef<'a> {
    pub name: &'a str,
    pub question: &'a str,
    pub choices: &'a [String],
}

impl PollDef<'_> {
    pub fn results(&self, s: &HttpState) -> Results {
        s.tables
            .polls
            .results(self.name, self.question, self.choices)
    }

    /// Send the question to `to`, in each recipient's language, as the poll app.
    pub async fn send(&self, s: &HttpState, to: &Recipients) -> Result<Sent, Refused> {
        let texts = s.tables.texts.clone();
        let sent = messaging::send_with(&s.tables, &s.pipeline, &s.producer, self.name, to, |l| {
            poll::question_text(&texts, self.name, self.question, self.choices, l)
        })
        .await?;
        Ok(sent)
    }
}

/// Every poll of the pipeline, in its order.
pub(crate) fn polls(p: &Pipeline) -> Vec<PollDef<'_>> {
    p.apps
        .iter()
        .filter_map(|a| match a {
            config::App::Poll {
                name,
                question,
                choices,
                ..
            } => Some(PollDef {
                name,
                question,
                choices,
            }),
            _ => None,
        })
        .collect()
}

pub(crate) fn find_poll<'a>(p: &'a Pipeline, name: &str) -> Result<PollDef<'a>, Refused> {
    polls(p)
        .into_iter()
        .find(|d| d.name == name)
        .ok_or_else(|| {
            let names: Vec<&str> = polls(p).iter().map(|d| d.name).collect();
            Refused::NotFound(if names.is_empty() {
                format!("no poll {name:?}: this pipeline has no polls")
            } else {
                format!("no poll {name:?}; polls: {}", names.join(", "))
            })
        })
}

/// Contacts whose name or one of whose numbers contains `q` (any case).
pub(crate) fn search_contacts(s: &HttpState, q: &str) -> Vec<Contact> {
    let q = q.trim().to_lowercase();
    let mut all = s.tables.contacts.list();
    if !q.is_empty() {
        all.retain(|c| {
            c.name.to_lowercase().contains(&q)
                || c.connections.iter().any(|n| n.identity.contains(&q))
        });
    }
    all
}

/// The message log's "off" answer.
pub(crate) const LOG_OFF: &str = "the message log is off: add `messagelog:` to the pipeline";
