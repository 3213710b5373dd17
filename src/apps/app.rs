//! The [`App`] trait, what an app is given ([`Context`], [`Services`]) and
//! how it answers.

use std::sync::Arc;

use crate::bus::Produce;
use crate::i18n::Texts;
use crate::message::{Contact, OutboundMessage, RoutedMessage};
use crate::state::contacts::ContactBook;
use crate::state::Tables;

/// Why an app could not handle a message. The message gets no reply; the
/// failure is counted and logged, and the stage goes on.
#[derive(Debug, thiserror::Error)]
pub enum AppError {
    /// The message itself is the problem (for example a field the app needs is missing).
    #[error("bad input: {0}")]
    Input(String),
    /// The app failed (a bug or an unavailable dependency).
    #[error("app failed: {0}")]
    Failed(String),
}

/// What the outgoing phase decided for a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outgoing {
    Send,
    /// Do not send it (RapidSMS: an app's `outgoing` returned `False`).
    Cancel,
}

/// A RapidSMS app: handles the messages routed to it, may alter or cancel outgoing ones.
///
/// ```
/// use smsflow::apps::{App, AppError, Context};
///
/// /// `hello` → `Hello, <name>!` in the sender's language.
/// struct Hello;
///
/// impl App for Hello {
///     fn handle(&self, cx: &mut Context<'_>) -> Result<(), AppError> {
///         let name = cx.contact().map(|c| c.name.clone()).unwrap_or_else(|| "stranger".into());
///         let text = cx.text("greeting", "Hello, {name}!", &[("name", &name)]);
///         cx.respond(text);
///         Ok(())
///     }
/// }
/// ```
pub trait App: Send + Sync {
    /// Handle one routed message ([`Context::message`]): reply with
    /// [`Context::respond`], send with [`Context::send`], change contacts
    /// or store state through the context. Runs on the app's stage; what
    /// it pushes is written once the input is done, all or nothing.
    fn handle(&self, cx: &mut Context<'_>) -> Result<(), AppError>;

    /// The outgoing phase: alter `msg` or cancel it. Runs on the outgoing router.
    fn outgoing(&self, _msg: &mut OutboundMessage) -> Outgoing {
        Outgoing::Send
    }
}

/// What every app of a process shares: the contacts and the texts.
#[derive(Clone)]
pub struct Services {
    pub contacts: Arc<ContactBook>,
    pub texts: Arc<Texts>,
}

impl Services {
    /// What the apps of a process are given from its tables.
    pub fn of(tables: &Tables) -> Services {
        Services {
            contacts: tables.contacts.clone(),
            texts: tables.texts.clone(),
        }
    }
}

/// One routed message as an app sees it, and what the app does about it.
pub struct Context<'a> {
    msg: &'a RoutedMessage,
    services: &'a Services,
    replies: Vec<OutboundMessage>,
    records: Vec<Produce>,
}

impl<'a> Context<'a> {
    pub fn new(msg: &'a RoutedMessage, services: &'a Services) -> Self {
        Self {
            msg,
            services,
            replies: Vec::new(),
            records: Vec::new(),
        }
    }

    /// The message, with what the router found (`rest`, `captures`, `contact`).
    pub fn message(&self) -> &'a RoutedMessage {
        self.msg
    }

    /// The sender's contact as it is now (it may have changed since routing).
    pub fn contact(&self) -> Option<Contact> {
        self.services
            .contacts
            .by_connection(&self.msg.message.connection)
            .or_else(|| self.msg.contact.clone())
    }

    /// Every contact.
    pub fn contacts(&self) -> &ContactBook {
        &self.services.contacts
    }

    /// The languages and texts.
    pub fn texts(&self) -> &Texts {
        &self.services.texts
    }

    /// The language to answer the sender in.
    pub fn language(&self) -> String {
        self.services
            .texts
            .language_of(self.contact().as_ref())
            .to_owned()
    }

    /// This app's text `key` (`<app>.<key>` in `languages.texts`) in the
    /// sender's language, `builtin` when no translation has it.
    pub fn text(&self, key: &str, builtin: &str, vars: &[(&str, &str)]) -> String {
        self.text_in(&self.language(), key, builtin, vars)
    }

    /// [`Context::text`] in `language`.
    pub fn text_in(
        &self,
        language: &str,
        key: &str,
        builtin: &str,
        vars: &[(&str, &str)],
    ) -> String {
        let key = format!("{}.{key}", self.msg.app);
        self.services.texts.render(language, &key, builtin, vars)
    }

    /// Reply over the connection the message came in on (RapidSMS `msg.respond`).
    pub fn respond(&mut self, text: impl Into<String>) {
        let reply = respond(self.msg, text);
        self.replies.push(reply);
    }

    /// An error reply (RapidSMS `msg.error`, an `ErrorMessage`).
    pub fn respond_error(&mut self, text: impl Into<String>) {
        let reply = respond_error(self.msg, text);
        self.replies.push(reply);
    }

    /// Send any message (its id is derived from the input, see [`crate::apps::runner::replies`]).
    pub fn send(&mut self, mut msg: OutboundMessage) {
        msg.app.get_or_insert_with(|| self.msg.app.clone());
        self.replies.push(msg);
    }

    /// Save a contact (new or changed); written with the replies.
    pub fn save_contact(&mut self, contact: Contact) -> Result<(), AppError> {
        let records = self
            .services
            .contacts
            .save(contact)
            .map_err(|e| AppError::Input(format!("contact {e}")))?;
        self.records.extend(records);
        Ok(())
    }

    /// Write a record of the app's own (state in a topic it follows).
    pub fn store(&mut self, record: Produce) {
        self.records.push(record);
    }

    /// The messages to send and the other records to write.
    pub fn finish(self) -> (Vec<OutboundMessage>, Vec<Produce>) {
        (self.replies, self.records)
    }
}

/// A reply to the routed message over the connection it came in on (RapidSMS `msg.respond`).
pub fn respond(msg: &RoutedMessage, text: impl Into<String>) -> OutboundMessage {
    let mut reply = OutboundMessage::reply_to(&msg.message, text);
    reply.app = Some(msg.app.clone());
    reply
}

/// An error reply (RapidSMS `msg.error`, an `ErrorMessage`).
pub fn respond_error(msg: &RoutedMessage, text: impl Into<String>) -> OutboundMessage {
    let mut reply = respond(msg, text);
    reply.is_error = true;
    reply
}
