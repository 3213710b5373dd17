//! Messaging (RapidSMS's messaging app): send a text to chosen contacts,
//! the members of a group, or raw numbers, from the CLI, the HTTP API or the
//! web form. `Your message was sent to N recipients.`
//!
//! Each recipient gets its own message (its own id, its own status) on
//! `sms.outbound`, all sharing one send id (`campaign_id`), and a `queued`
//! delivery event, so that `smsflow status <send id>` lists every recipient.
//! A contact is reached on its first connection (RapidSMS
//! `default_connection`); a recipient named twice gets one message.
//! [`send_with`] renders the text once per language group, which is how a
//! poll's question goes out to a group.

use std::collections::HashSet;
use std::sync::Arc;

use bytes::Bytes;
use serde::{Deserialize, Serialize};

use crate::bus::{Produce, Producer};
use crate::config::Pipeline;
use crate::message::{new_id, Connection, Contact, DeliveryEvent, DeliveryStatus, OutboundMessage};
use crate::schema;
use crate::sms::numbers;
use crate::state::Tables;

/// Who a send goes to.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(default)]
pub struct Recipients {
    /// Contact ids.
    pub contacts: Vec<String>,
    /// Group names: every contact in each.
    pub groups: Vec<String>,
    /// Phone numbers, optionally as `backend:number`; a bare number goes out
    /// on the first backend of the pipeline.
    pub numbers: Vec<String>,
}

/// Why a send was refused: the form field and what is wrong.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{field}: {message}")]
pub struct SendError {
    /// `text`, `contacts`, `groups`, `numbers`, `recipients` or `bus`.
    pub field: &'static str,
    pub message: String,
}

fn refuse(field: &'static str, message: impl Into<String>) -> SendError {
    SendError {
        field,
        message: message.into(),
    }
}

/// What was sent.
#[derive(Debug, Clone, Serialize)]
pub struct Sent {
    /// The send id: `smsflow status <send id>` lists every recipient.
    pub send_id: String,
    pub recipients: usize,
    pub message_ids: Vec<String>,
    /// `Your message was sent to N recipients.`
    pub confirmation: String,
}

/// RapidSMS's confirmation, singular for one.
pub fn confirmation(n: usize) -> String {
    if n == 1 {
        "Your message was sent to 1 recipient.".to_owned()
    } else {
        format!("Your message was sent to {n} recipients.")
    }
}

/// The connections `to` names, each once, with their contacts.
pub fn resolve(
    tables: &Tables,
    p: &Pipeline,
    to: &Recipients,
) -> Result<Vec<(Connection, Option<Contact>)>, SendError> {
    let mut out: Vec<(Connection, Option<Contact>)> = Vec::new();
    let mut seen = HashSet::new();
    let mut add = |c: Connection, contact: Option<Contact>| {
        if seen.insert(c.clone()) {
            out.push((c, contact));
        }
    };
    let reach = |contact: &Contact| -> Result<Connection, SendError> {
        contact.connections.first().cloned().ok_or_else(|| {
            refuse(
                "contacts",
                format!("{:?} has no phone number to send to", contact.name),
            )
        })
    };
    for id in to
        .contacts
        .iter()
        .map(|s| s.trim())
        .filter(|s| !s.is_empty())
    {
        let contact = tables
            .contacts
            .get(id)
            .ok_or_else(|| refuse("contacts", format!("no contact with id {id:?}")))?;
        add(reach(&contact)?, Some(contact));
    }
    for group in to.groups.iter().map(|s| s.trim()).filter(|s| !s.is_empty()) {
        let members = tables.contacts.in_group(group);
        if members.is_empty() {
            return Err(refuse(
                "groups",
                format!("no contact is in group {group:?}"),
            ));
        }
        for contact in members {
            if let Some(c) = contact.connections.first().cloned() {
                add(c, Some(contact));
            }
        }
    }
    let default_backend = p.backends.first().map(|b| b.name().to_owned());
    for raw in to
        .numbers
        .iter()
        .map(|s| s.trim())
        .filter(|s| !s.is_empty())
    {
        let (backend, number) = match raw.split_once(':') {
            Some((b, n)) => (b.trim().to_owned(), n),
            None => (default_backend.clone().unwrap_or_default(), raw),
        };
        if !p.backends.iter().any(|b| b.name() == backend) {
            return Err(refuse(
                "numbers",
                format!("{raw:?}: no backend {backend:?} in this pipeline"),
            ));
        }
        let identity =
            numbers::normalize(number, None).map_err(|e| refuse("numbers", e.to_string()))?;
        let connection = Connection::new(backend, identity);
        let contact = tables.contacts.by_connection(&connection);
        add(connection, contact);
    }
    if out.is_empty() {
        return Err(refuse(
            "recipients",
            "no recipients: choose contacts, a group or numbers",
        ));
    }
    Ok(out)
}

/// Send `text` to `to`.
pub async fn send(
    tables: &Tables,
    p: &Pipeline,
    producer: &Producer,
    text: &str,
    to: &Recipients,
) -> Result<Sent, SendError> {
    if text.trim().is_empty() {
        return Err(refuse("text", "the message is empty"));
    }
    send_with(tables, p, producer, "messaging", to, |_| text.to_owned()).await
}

/// Send to `to` the text `text_for(language)` gives for each recipient's
/// language (rendered once per language group), as app `app`.
pub async fn send_with(
    tables: &Tables,
    p: &Pipeline,
    producer: &Producer,
    app: &str,
    to: &Recipients,
    text_for: impl Fn(&str) -> String,
) -> Result<Sent, SendError> {
    let recipients = resolve(tables, p, to)?;
    let send_id = new_id();
    let outbound: Arc<str> = Arc::from(p.topics.outbound.as_str());
    let events: Arc<str> = Arc::from(p.topics.events.as_str());
    let mut rendered: Vec<(String, String)> = Vec::new();
    let mut records = Vec::with_capacity(recipients.len() * 2);
    let mut message_ids = Vec::with_capacity(recipients.len());
    for (connection, contact) in &recipients {
        let language = tables.texts.language_of(contact.as_ref()).to_owned();
        let text = match rendered.iter().find(|(l, _)| *l == language) {
            Some((_, t)) => t.clone(),
            None => {
                let t = text_for(&language);
                rendered.push((language, t.clone()));
                t
            }
        };
        let mut msg = OutboundMessage::new(connection.clone(), text);
        msg.app = Some(app.to_owned());
        msg.campaign_id = Some(send_id.clone());
        let key = Bytes::from(connection.key());
        let encoded = |r: Result<Vec<u8>, schema::EncodeError>| {
            r.map_err(|e| refuse("text", format!("cannot be encoded: {e}")))
        };
        let payload = encoded(schema::outbound().encode(&msg))?;
        records.push(Produce::new(outbound.clone(), key.clone(), payload));
        let event = DeliveryEvent::now(&msg, DeliveryStatus::Queued);
        let payload = encoded(schema::event().encode(&event))?;
        records.push(Produce::new(events.clone(), key, payload));
        message_ids.push(msg.id);
    }
    let mut acks = Vec::with_capacity(records.len());
    for r in records {
        let ack = producer
            .send(r)
            .await
            .map_err(|e| refuse("bus", format!("cannot queue the message: {e}")))?;
        acks.push(ack);
    }
    for ack in acks {
        ack.wait()
            .await
            .map_err(|e| refuse("bus", format!("cannot queue the message: {e}")))?;
    }
    let n = recipients.len();
    Ok(Sent {
        send_id,
        recipients: n,
        message_ids,
        confirmation: confirmation(n),
    })
}
