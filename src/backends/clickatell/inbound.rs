//! Received messages: the Platform's reply callback and the One API's
//! `event.moText`, as inbound messages.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{RawQuery, State};
use axum::http::HeaderMap;
use axum::response::Response;
use serde_json::{Map, Value};

use super::hooks::{checked_body, international, Hooks};
use super::status::status_updates;
use crate::backends::webhook::answer;
use crate::backends::{json, SourceError};

pub(super) async fn inbound(
    State(h): State<Arc<Hooks>>,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
    body: Bytes,
) -> Response {
    let result = async {
        let obj = checked_body(&h, &headers, query.as_deref(), &body)?;
        let Some(event) = obj.get("event") else {
            return accept_reply(&h, &obj).await;
        };
        // The One API posts both kinds to whichever URLs it was given.
        if event.get("messageStatusUpdate").is_some() {
            return status_updates(&h, event).await;
        }
        let list = json::objects(
            event,
            "moText",
            "event.moText",
            "the One API's list of received text messages",
        )?;
        for mo in list {
            accept_one_api(&h, &obj, mo).await?;
        }
        Ok(())
    }
    .await;
    answer(result, ())
}

/// The Platform's reply callback fields kept on the message, by their names.
const REPLY_FIELDS: [&str; 9] = [
    "toNumber",
    "timestamp",
    "charset",
    "udh",
    "network",
    "keyword",
    "integrationName",
    "integrationId",
    "fromNumber",
];

/// The message's text, under `key`: a string, empty or not.
fn message_text(obj: &Map<String, Value>, key: &'static str) -> Result<String, SourceError> {
    match obj.get(key) {
        Some(Value::String(s)) => Ok(s.clone()),
        None | Some(Value::Null) => Err(SourceError::missing(key, "the message")),
        Some(_) => Err(SourceError::Invalid {
            field: key,
            message: format!("{key} must be a string"),
        }),
    }
}

/// One message of the Platform's (flat) reply callback.
async fn accept_reply(h: &Hooks, obj: &Map<String, Value>) -> Result<(), SourceError> {
    let from = json::text(obj, "fromNumber")?.ok_or(SourceError::missing(
        "fromNumber",
        "the phone number the message comes from",
    ))?;
    let text = message_text(obj, "text")?;
    let reply_id = json::text(obj, "replyMessageId")?;
    let message_id = json::text(obj, "messageId")?;
    let mut fields = Vec::new();
    for key in REPLY_FIELDS {
        if let Some(v) = json::text(obj, key)? {
            fields.push((key.to_owned(), v));
        }
    }
    // With a replyMessageId, messageId is the message this one answers.
    let id_name = if reply_id.is_some() {
        "replyMessageId"
    } else {
        "messageId"
    };
    let external_id = match (reply_id, message_id) {
        (Some(reply), original) => {
            if let Some(o) = original {
                fields.push(("messageId".to_owned(), o));
            }
            Some(reply)
        }
        (None, id) => id,
    };
    h.source
        .accept(Some(&international(&from)), Some(&text), |m| {
            m.external_id = external_id;
            m.fields.extend(fields);
        })
        .await
        .map(drop)
        .map_err(|e| e.renamed("identity", "fromNumber").renamed("id", id_name))
}

/// One entry of the One API's `event.moText`.
async fn accept_one_api(
    h: &Hooks,
    obj: &Map<String, Value>,
    mo: &Map<String, Value>,
) -> Result<(), SourceError> {
    let from = json::text(mo, "from")?.ok_or(SourceError::missing(
        "from",
        "the phone number the message comes from",
    ))?;
    let text = message_text(mo, "content")?;
    let external_id = json::text(mo, "messageId")?;
    let mut fields = Vec::new();
    for key in [
        "to",
        "timestamp",
        "charset",
        "channel",
        "relatedMessageId",
        "relatedClientMessageId",
        "from",
    ] {
        if let Some(v) = json::text(mo, key)? {
            fields.push((key.to_owned(), v));
        }
    }
    for key in ["integrationName", "integrationId"] {
        if let Some(v) = json::text(obj, key)? {
            fields.push((key.to_owned(), v));
        }
    }
    h.source
        .accept(Some(&international(&from)), Some(&text), |m| {
            m.external_id = external_id;
            m.fields.extend(fields);
        })
        .await
        .map(drop)
        .map_err(|e| {
            e.renamed("identity", "from")
                .renamed("text", "content")
                .renamed("id", "messageId")
        })
}
