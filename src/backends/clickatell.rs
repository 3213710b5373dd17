//! Clickatell's Platform ("SMS integration") REST API.
//!
//! **Outbound**: `POST {api_url}/messages` with the integration's API key as
//! the `Authorization` header, `Content-Type` and `Accept` `application/json`,
//! and one text for up to `batch` recipients:
//!
//! ```json
//! {"content": "Habari, ñ € 😀", "to": ["255712345678", "255712345679"],
//!  "from": "15550001111", "charset": "UTF-8"}
//! ```
//!
//! Numbers go without their leading `+` (Clickatell's international format);
//! `from` is left out when not configured; a request that carries one message
//! also carries our message id as `clientMessageId` (Clickatell echoes it in
//! status callbacks). The content is sent as the UTF-8 it is, never
//! transliterated: Clickatell picks GSM-7 or UCS-2 from the characters itself.
//!
//! The `202` reply lists one entry per recipient:
//! `{"messages": [{"apiMessageId": "...", "accepted": true, "to": "...",
//! "errorCode": null, "error": null, "errorDescription": null}, ...], "error": null}`.
//! Each of our messages takes the first unused entry whose `to` has its
//! digits: accepted is sent (provider id = `apiMessageId`); not accepted is
//! failed for good with Clickatell's error (status = its `errorCode`); a
//! recipient the reply does not mention is failed with an error that says
//! so (never sent again: Clickatell may have it). A whole request refused
//! with a 4xx (`{"error": ..., "errorCode": ...}`, for example 401 for a bad
//! API key) fails every message in it; 408, 429 and 5xx are retried
//! (honouring `Retry-After`).
//!
//! **Inbound (MO)**: the integration's *reply callback*, `POST
//! /backend/<name>/` with JSON `{"integrationId", "integrationName",
//! "messageId", "replyMessageId", "apiKey", "fromNumber", "toNumber",
//! "timestamp", "text", "charset", "udh", "network", "keyword"}`.
//! `replyMessageId` (the MO's own id; `messageId` is the message it answers,
//! or the MO's id when there is no `replyMessageId`) is the external id that
//! repeats are recognised by; `fromNumber` (international, no `+`) becomes
//! the identity with a `+` (short codes and numbers starting with `0` stay
//! as they are). The other fields except `apiKey` are kept under their
//! Clickatell names. The newer One API's nested form (`{"event": {"moText":
//! [{"messageId", "from", "to", "content", "charset", "timestamp", ...}]}}`)
//! is accepted too. Answered `200` with an empty body once stored; `400`
//! naming the field (`body`, `fromNumber`, `text`, ...) otherwise.
//!
//! **Status callbacks**: `POST /backend/<name>/status` with JSON
//! `{"integrationName", "messageId", "requestId", "clientMessageId", "to",
//! "from", "statusCode", "status", "statusDescription", "timestamp"}` (or the
//! One API's `{"event": {"messageStatusUpdate": [...]}}`). Our message is
//! `clientMessageId` when present, else found by `messageId` (or
//! `apiMessageId`) in the sent-log. Statuses map by name first, then by code:
//!
//! | Clickatell                                                                 | smsflow     |
//! |----------------------------------------------------------------------------|-------------|
//! | 002 `QUEUED`, 011 queued for later delivery, `SCHEDULED`                   | `queued`    |
//! | 003 `DELIVERED_TO_GATEWAY`, 008 received by gateway, `SENT_TO_SUPPLIER`    | `sent`      |
//! | 004 `RECEIVED_BY_RECIPIENT`, `DEVICE_ACK`, `READ`                          | `delivered` |
//! | 010 `EXPIRED`                                                              | `expired`   |
//! | 001 message unknown, 005 error with message, 006 user cancelled, 007 error delivering, 009 routing error, 012 out of credit, 013 cancelled by Clickatell, 014 maximum MT limit exceeded, One API 21–29 and 60+ | `failed` |
//!
//! The raw status (with its code and description) is the event's
//! `provider_status`. An unknown status is refused with `400` naming
//! `status`. Flat callbacks use the Platform's codes above; the One API's
//! nested ones its own (1 unknown, 2 queued, 3 scheduled, 4 sent to
//! supplier, 5 device ack, 6 read, 20 expired, 21+ errors).
//!
//! **Authentication**: a reply callback carries the integration's
//! `apiKey`, compared with the configured `api_key`; status callbacks carry
//! none, so they need the backend's `receive.secret` (`secret=` in the
//! callback URL, or an `X-Smsflow-Secret` header) or its basic auth
//! (`receive.username`/`password`, which Clickatell's portal can send).
//! Either proves a callback: none is `401`, a wrong one (a wrong `apiKey`
//! too) `403`, and nothing is stored.
//!
//! Sources: Clickatell's "SMS REST API: Send message" (archived Platform
//! docs, docs.clickatell.com/channels/sms-rest-api-platform-archived/
//! sms-rest-api-send-message-2: request and 202 reply with `apiMessageId`,
//! `accepted`, `to`, `errorCode`, `error`, `errorDescription`); "REST API:
//! Status callback" (clickatell.com/developers/api-documentation/
//! rest-api-status-callback: `integrationName`, `messageId`, `requestId`,
//! `clientMessageId`, `to`, `from`, `statusCode`, `status`,
//! `statusDescription`, `timestamp`); "HTTP API: Reply callback" and the
//! clickatell-php library's `Rest::parseReplyCallback` (the reply callback's
//! JSON keys, and `Authorization: <key>` with JSON `Accept`/`Content-Type`);
//! "One API: Receive message callback" and the One API message status table
//! (nested forms and their codes); Clickatell's API error codes table (105
//! invalid destination address, ...) and the legacy message status codes
//! 001–014 (also listed in Kolmisoft's Clickatell status page); Clickatell's
//! Node.js sample, which shows `DELIVERED_TO_GATEWAY` and
//! `RECEIVED_BY_RECIPIENT` callbacks.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{RawQuery, State};
use axum::http::HeaderMap;
use axum::response::Response;
use axum::routing::post;
use axum::Router;
use futures::future::BoxFuture;
use futures::FutureExt;
use reqwest::header::{ACCEPT, AUTHORIZATION};
use serde_json::{json, Map, Value};

use super::auth::{Shown, WebhookAuth};
use super::provider::{call, http_failure, Answer, Attempt, Provider};
use super::webhook::answer;
use super::{json, Report, Reports, Source, SourceError};
use crate::message::{DeliveryStatus, OutboundMessage};

/// What the callbacks need.
pub struct Hooks {
    pub auth: WebhookAuth,
    /// The integration's API key, which reply callbacks carry as `apiKey`.
    pub api_key: String,
    pub source: Source,
    pub reports: Reports,
}

impl Hooks {
    /// Refuse a callback that proves nothing (no secret, basic auth or
    /// `apiKey`) or carries a wrong one. `body` is the callback's JSON
    /// object, when it is one.
    fn check(
        &self,
        headers: &HeaderMap,
        query: Option<&str>,
        body: Option<&Map<String, Value>>,
    ) -> Result<(), SourceError> {
        let own = match body.and_then(|b| b.get("apiKey")) {
            None => Shown::Absent,
            Some(Value::String(key)) => {
                Shown::compare(Some(key.as_bytes()), self.api_key.as_bytes())
            }
            Some(_) => Shown::Wrong,
        };
        self.auth.check_with(headers, query, own, "apiKey")
    }
}

/// `POST /backend/<name>/` (reply callback) and `POST /backend/<name>/status`
/// (status callback).
pub fn routes(name: &str, hooks: Arc<Hooks>) -> Router {
    Router::new()
        .route(&format!("/backend/{name}/"), post(inbound))
        .route(&format!("/backend/{name}/status"), post(status))
        .with_state(hooks)
}

/// How the sink reaches Clickatell.
pub struct Clickatell {
    pub client: reqwest::Client,
    /// Default `https://platform.clickatell.com`, without a trailing `/`.
    pub api_url: String,
    pub api_key: String,
    pub from: Option<String>,
    pub batch: usize,
}

impl Clickatell {
    /// The `POST /messages` body for `msgs` (one text, one or more recipients).
    pub fn body(&self, msgs: &[&OutboundMessage]) -> Value {
        let mut body = Map::new();
        let text = msgs.first().map(|m| m.text.as_str()).unwrap_or_default();
        body.insert("content".into(), json!(text));
        let to: Vec<&str> = msgs
            .iter()
            .map(|m| without_plus(&m.connection.identity))
            .collect();
        body.insert("to".into(), json!(to));
        if let Some(from) = &self.from {
            body.insert("from".into(), json!(from));
        }
        body.insert("charset".into(), json!("UTF-8"));
        if let [one] = msgs {
            body.insert("clientMessageId".into(), json!(one.id));
        }
        Value::Object(body)
    }
}

impl Clickatell {
    /// One `POST /messages` for `msgs` (one text): each one's outcome.
    async fn post(&self, msgs: &[&OutboundMessage]) -> Vec<Attempt> {
        if msgs.is_empty() {
            return Vec::new();
        }
        let request = self
            .client
            .post(format!("{}/messages", self.api_url))
            .header(AUTHORIZATION, &self.api_key)
            .header(ACCEPT, "application/json")
            .json(&self.body(msgs));
        match call(request).await {
            Err(failed) => vec![failed; msgs.len()],
            Ok(answer) => attempts(msgs, &answer),
        }
    }
}

impl Provider for Clickatell {
    fn batch(&self) -> usize {
        self.batch
    }

    fn send_one<'a>(&'a self, msg: &'a OutboundMessage) -> BoxFuture<'a, Attempt> {
        async move {
            let mut one = self.post(&[msg]).await;
            one.pop().unwrap_or(Attempt::Retry {
                error: "no outcome for the message".into(),
                after: None,
            })
        }
        .boxed()
    }

    fn send<'a>(&'a self, msgs: &'a [&'a OutboundMessage]) -> BoxFuture<'a, Vec<Attempt>> {
        self.post(msgs).boxed()
    }
}

/// The outcome of each message of one `POST /messages`, from its answer.
pub fn attempts(msgs: &[&OutboundMessage], answer: &Answer) -> Vec<Attempt> {
    let (status, body) = (answer.status, answer.body.as_str());
    let reply: Option<Value> = serde_json::from_str(body).ok();
    if !status.is_success() {
        let why = reply
            .as_ref()
            .and_then(error_text)
            .unwrap_or_else(|| body.to_owned());
        return vec![http_failure(status, &answer.headers, &why); msgs.len()];
    }
    let entries = reply
        .as_ref()
        .and_then(|r| r.get("messages"))
        .and_then(Value::as_array);
    let Some(entries) = entries else {
        let snippet: String = body.trim().chars().take(200).collect();
        let failed = Attempt::Rejected {
            error: format!(
                "HTTP {status} with an answer that is not Clickatell's (no \"messages\" list): {snippet:?}; not sent again, as Clickatell may have taken it"
            ),
            status: status.as_u16().to_string(),
        };
        return vec![failed; msgs.len()];
    };
    let request_error = reply.as_ref().and_then(error_text);
    let mut used = vec![false; entries.len()];
    msgs.iter()
        .map(|m| {
            let want = digits(&m.connection.identity);
            let found = (0..entries.len())
                .find(|&i| !used[i] && digits(&json::scalar(entries[i].get("to")).unwrap_or_default()) == want)
                // One recipient, one answer: it is this message's, whatever
                // form Clickatell gave the number in.
                .or_else(|| (msgs.len() == 1 && entries.len() == 1 && !used[0]).then_some(0));
            match found {
                Some(i) => {
                    used[i] = true;
                    entry_attempt(&entries[i])
                }
                None => Attempt::Rejected {
                    error: format!(
                        "Clickatell's answer lists no outcome for {}{}; not sent again, as Clickatell may have taken it",
                        without_plus(&m.connection.identity),
                        request_error
                            .as_ref()
                            .map(|e| format!(" (request error: {e})"))
                            .unwrap_or_default()
                    ),
                    status: "missing".into(),
                },
            }
        })
        .collect()
}

/// One entry of the reply's `messages`.
fn entry_attempt(entry: &Value) -> Attempt {
    let accepted = match entry.get("accepted") {
        Some(Value::Bool(b)) => *b,
        Some(Value::String(s)) => s.eq_ignore_ascii_case("true"),
        _ => false,
    };
    if accepted {
        return Attempt::Accepted {
            provider_id: json::scalar(entry.get("apiMessageId")).filter(|id| !id.is_empty()),
            status: "accepted".into(),
        };
    }
    Attempt::Rejected {
        error: error_text(entry)
            .unwrap_or_else(|| "Clickatell did not accept the message and gave no reason".into()),
        status: error_code(entry).unwrap_or_else(|| "rejected".into()),
    }
}

/// Clickatell's error code: `errorCode`, or the One API's `error.code`.
fn error_code(v: &Value) -> Option<String> {
    json::scalar(v.get("errorCode"))
        .or_else(|| json::scalar(v.get("error").and_then(|e| e.get("code"))))
        .filter(|c| !c.is_empty())
}

/// `error: errorDescription (errorCode N)`, from whichever of them are given
/// (the One API nests them as `error: {code, description}`).
fn error_text(v: &Value) -> Option<String> {
    let (error, description) = match v.get("error") {
        Some(Value::Object(e)) => (
            json::scalar(e.get("description")),
            json::scalar(v.get("errorDescription")),
        ),
        e => (json::scalar(e), json::scalar(v.get("errorDescription"))),
    };
    let error = error.filter(|e| !e.is_empty());
    let description = description.filter(|d| !d.is_empty() && Some(d) != error.as_ref());
    let code = error_code(v);
    let mut text = match (error, description) {
        (Some(e), Some(d)) => format!("{e}: {d}"),
        (Some(t), None) | (None, Some(t)) => t,
        (None, None) => String::new(),
    };
    if let Some(c) = code {
        if text.is_empty() {
            text = format!("errorCode {c}");
        } else {
            text.push_str(&format!(" (errorCode {c})"));
        }
    }
    (!text.is_empty()).then_some(text)
}

/// A number as Clickatell takes it: international, without the `+`.
fn without_plus(identity: &str) -> &str {
    identity.strip_prefix('+').unwrap_or(identity)
}

/// The digits of a number, to compare ours with the reply's `to`.
fn digits(number: &str) -> String {
    number.chars().filter(char::is_ascii_digit).collect()
}

/// Clickatell gives numbers in international format without the `+`: add it,
/// so that identities are E.164 like other backends'. Short codes and
/// numbers starting with `0` stay as they are.
fn international(number: &str) -> String {
    let n = number.trim();
    if n.len() > 5 && !n.starts_with('0') && n.bytes().all(|b| b.is_ascii_digit()) {
        format!("+{n}")
    } else {
        n.to_owned()
    }
}

/// The callback's body as a JSON object, once the callback is proved
/// (a forgery gets 401 or 403 whatever its body).
fn checked_body(
    h: &Hooks,
    headers: &HeaderMap,
    query: Option<&str>,
    body: &[u8],
) -> Result<Map<String, Value>, SourceError> {
    let obj = json::object(body);
    h.check(headers, query, obj.as_ref().ok())?;
    obj
}

async fn inbound(
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

/// Which table a numeric status code is read in.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Codes {
    /// The Platform's (and the legacy APIs') 001–014, in flat callbacks.
    Platform,
    /// The One API's, in `event.messageStatusUpdate`.
    OneApi,
}

async fn status(
    State(h): State<Arc<Hooks>>,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
    body: Bytes,
) -> Response {
    let result = async {
        let obj = checked_body(&h, &headers, query.as_deref(), &body)?;
        match obj.get("event") {
            Some(event) => status_updates(&h, event).await,
            None => report(&h, &obj, Codes::Platform).await,
        }
    }
    .await;
    answer(result, ())
}

/// The One API's `event.messageStatusUpdate` list.
async fn status_updates(h: &Hooks, event: &Value) -> Result<(), SourceError> {
    let list = json::objects(
        event,
        "messageStatusUpdate",
        "event.messageStatusUpdate",
        "the One API's list of status updates",
    )?;
    for update in list {
        report(h, update, Codes::OneApi).await?;
    }
    Ok(())
}

/// One status callback (or One API status update) as a delivery event.
async fn report(h: &Hooks, u: &Map<String, Value>, codes: Codes) -> Result<(), SourceError> {
    let message_id = json::text(u, "clientMessageId")?;
    let provider_id = match json::text(u, "apiMessageId")? {
        Some(id) => Some(id),
        None => json::text(u, "messageId")?,
    };
    if message_id.is_none() && provider_id.is_none() {
        return Err(SourceError::missing(
            "messageId",
            "Clickatell's id of the message (messageId or apiMessageId), or our clientMessageId",
        ));
    }
    let raw = json::text(u, "status")?;
    let code = json::text(u, "statusCode")?;
    let description = json::text(u, "statusDescription")?;
    if raw.is_none() && code.is_none() {
        return Err(SourceError::missing(
            "status",
            "Clickatell's message status (status or statusCode)",
        ));
    }
    let status = classify(raw.as_deref(), code.as_deref(), codes).ok_or_else(|| {
        SourceError::Invalid {
            field: "status",
            message: format!(
                "status {} (statusCode {}) is not a Clickatell message status this backend knows: expected for example QUEUED, DELIVERED_TO_GATEWAY, RECEIVED_BY_RECIPIENT, EXPIRED, ERROR_DELIVERING or a code 1 to 14",
                raw.as_deref().unwrap_or("none"),
                code.as_deref().unwrap_or("none"),
            ),
        }
    })?;
    let mut provider_status = raw.clone().or_else(|| code.clone()).unwrap_or_default();
    if let (Some(r), Some(c)) = (&raw, &code) {
        if r != c {
            provider_status.push_str(&format!(" ({c})"));
        }
    }
    if let Some(d) = &description {
        provider_status.push_str(&format!(": {d}"));
    }
    let error = matches!(status, DeliveryStatus::Failed | DeliveryStatus::Expired).then(|| {
        description
            .clone()
            .or_else(|| {
                let n = code.as_deref().or(raw.as_deref())?.trim().parse().ok()?;
                (codes == Codes::Platform).then(|| platform_description(n))?
            })
            .unwrap_or_else(|| provider_status.clone())
    });
    let identity = json::text(u, "to")?.map(|to| international(&to));
    h.reports
        .report(Report {
            message_id,
            provider_id,
            identity,
            status: Some(status),
            provider_status,
            error,
        })
        .await
        .map(drop)
        .map_err(|e| {
            e.renamed("message_id", "clientMessageId")
                .renamed("provider_id", "messageId")
                .renamed("identity", "to")
                .renamed("error", "statusDescription")
        })
}

/// A Clickatell status as one of ours: its name first (unambiguous), then
/// its code in the callback's table.
fn classify(raw: Option<&str>, code: Option<&str>, codes: Codes) -> Option<DeliveryStatus> {
    let number = |s: &str| s.trim().parse::<u32>().ok();
    if let Some(r) = raw {
        if let Some(s) = by_name(r) {
            return Some(s);
        }
        if let Some(s) = number(r).and_then(|n| by_code(n, codes)) {
            return Some(s);
        }
    }
    code.and_then(number).and_then(|n| by_code(n, codes))
}

fn by_name(name: &str) -> Option<DeliveryStatus> {
    use DeliveryStatus::*;
    let name = name.trim().to_ascii_uppercase().replace([' ', '-'], "_");
    Some(match name.as_str() {
        "QUEUED"
        | "MESSAGE_QUEUED"
        | "SCHEDULED"
        | "QUEUED_FOR_LATER_DELIVERY"
        | "MESSAGE_QUEUED_FOR_LATER_DELIVERY" => Queued,
        "DELIVERED_TO_GATEWAY" | "RECEIVED_BY_GATEWAY" | "SENT_TO_SUPPLIER" | "EMULATED" => Sent,
        "RECEIVED_BY_RECIPIENT" | "DEVICE_ACK" | "READ" => Delivered,
        "EXPIRED" | "MESSAGE_EXPIRED" => Expired,
        "UNKNOWN"
        | "MESSAGE_UNKNOWN"
        | "ERROR_WITH_MESSAGE"
        | "USER_CANCELLED"
        | "USER_CANCELLED_MESSAGE_DELIVERY"
        | "ERROR_DELIVERING"
        | "ERROR_DELIVERING_MESSAGE"
        | "ROUTING_ERROR"
        | "OUT_OF_CREDIT"
        | "CLICKATELL_CANCELLED"
        | "CLICKATELL_CANCELLED_MESSAGE_DELIVERY"
        | "MAX_MT_LIMIT_EXCEEDED"
        | "MAXIMUM_MT_LIMIT_EXCEEDED"
        | "DELIVERY_FAILURE"
        | "STOPPED_BY_USER"
        | "STOPPED_BY_ADMIN"
        | "INSUFFICIENT_ACCOUNT_BALANCE"
        | "VOLUME_LIMIT"
        | "VOLUME_LIMIT_DAILY"
        | "VOLUME_LIMIT_MONTHLY"
        | "RECIPIENT_DOES_NOT_EXIST" => Failed,
        _ => return None,
    })
}

/// What the Platform's status codes mean, for callbacks without a description.
fn platform_description(code: u32) -> Option<String> {
    let text = match code {
        1 => "Message unknown",
        2 => "Message queued",
        3 => "Delivered to gateway",
        4 => "Received by recipient",
        5 => "Error with message",
        6 => "User cancelled message delivery",
        7 => "Error delivering message",
        8 => "Message received by gateway",
        9 => "Routing error",
        10 => "Message expired",
        11 => "Message queued for later delivery",
        12 => "Out of credit",
        13 => "Clickatell cancelled message delivery",
        14 => "Maximum MT limit exceeded",
        _ => return None,
    };
    Some(text.to_owned())
}

fn by_code(code: u32, codes: Codes) -> Option<DeliveryStatus> {
    use DeliveryStatus::*;
    Some(match (codes, code) {
        (Codes::Platform, 2 | 11) => Queued,
        (Codes::Platform, 3 | 8) => Sent,
        (Codes::Platform, 4) => Delivered,
        (Codes::Platform, 10) => Expired,
        (Codes::Platform, 1 | 5 | 6 | 7 | 9 | 12 | 13 | 14) => Failed,
        (Codes::OneApi, 2 | 3) => Queued,
        (Codes::OneApi, 4 | 24) => Sent,
        (Codes::OneApi, 5 | 6) => Delivered,
        (Codes::OneApi, 20) => Expired,
        (Codes::OneApi, 1 | 21..=29) => Failed,
        (Codes::OneApi, c) if c >= 60 => Failed,
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use reqwest::header::HeaderMap;
    use reqwest::StatusCode;

    fn attempts_of(
        msgs: &[&OutboundMessage],
        status: StatusCode,
        headers: &HeaderMap,
        body: &str,
    ) -> Vec<Attempt> {
        attempts(
            msgs,
            &Answer {
                status,
                headers: headers.clone(),
                body: body.into(),
            },
        )
    }
    use crate::message::Connection;

    fn msg(identity: &str, text: &str) -> OutboundMessage {
        OutboundMessage::new(Connection::new("ck", identity), text)
    }

    fn provider(from: Option<&str>) -> Clickatell {
        Clickatell {
            client: reqwest::Client::new(),
            api_url: "http://clickatell.invalid".into(),
            api_key: "key".into(),
            from: from.map(str::to_owned),
            batch: 100,
        }
    }

    #[test]
    fn body_carries_one_text_numbers_without_plus_and_the_client_id_of_a_single_message() {
        let a = msg("+255712345678", "Habari, ñ € 😀");
        let b = msg("+255712345679", "Habari, ñ € 😀");
        let p = provider(Some("15550001111"));
        assert_eq!(
            p.body(&[&a]),
            json!({"content": "Habari, ñ € 😀", "to": ["255712345678"], "from": "15550001111",
                   "charset": "UTF-8", "clientMessageId": a.id})
        );
        assert_eq!(
            provider(None).body(&[&a, &b]),
            json!({"content": "Habari, ñ € 😀", "to": ["255712345678", "255712345679"], "charset": "UTF-8"})
        );
    }

    #[test]
    fn reply_entries_are_matched_by_number_in_any_order() {
        let (a, b, c, d) = (
            msg("+15550001", "x"),
            msg("+15550002", "x"),
            msg("+15550003", "x"),
            msg("+15550001", "x"),
        );
        let reply = json!({"messages": [
            {"apiMessageId": "id-2", "accepted": true, "to": "15550002", "errorCode": null, "error": null, "errorDescription": null},
            {"apiMessageId": null, "accepted": false, "to": "15550003", "errorCode": 105,
             "error": "Invalid destination address", "errorDescription": "The destination address you are attempting to send to is invalid."},
            {"apiMessageId": "id-1", "accepted": true, "to": "15550001"},
        ], "errorCode": null, "error": null, "errorDescription": null});
        let got = attempts_of(
            &[&a, &b, &c, &d],
            StatusCode::ACCEPTED,
            &HeaderMap::new(),
            &reply.to_string(),
        );
        assert_eq!(
            got[0],
            Attempt::Accepted {
                provider_id: Some("id-1".into()),
                status: "accepted".into()
            }
        );
        assert_eq!(
            got[1],
            Attempt::Accepted {
                provider_id: Some("id-2".into()),
                status: "accepted".into()
            }
        );
        assert_eq!(
            got[2],
            Attempt::Rejected {
                error: "Invalid destination address: The destination address you are attempting to send to is invalid. (errorCode 105)".into(),
                status: "105".into()
            }
        );
        // The same number twice, one entry: the second is not silently taken as sent.
        assert!(
            matches!(&got[3], Attempt::Rejected { error, status } if status == "missing" && error.contains("15550001")),
            "{:?}",
            got[3]
        );
    }

    #[test]
    fn whole_request_failures() {
        let a = msg("+15550001", "x");
        let b = msg("+15550002", "x");
        let bad_key = json!({"messages": [], "errorCode": 1, "error": "Invalid or missing Integration API Key", "errorDescription": null});
        let got = attempts_of(
            &[&a, &b],
            StatusCode::UNAUTHORIZED,
            &HeaderMap::new(),
            &bad_key.to_string(),
        );
        let rejected = Attempt::Rejected {
            error: "HTTP 401 Unauthorized: Invalid or missing Integration API Key (errorCode 1)"
                .into(),
            status: "401".into(),
        };
        assert_eq!(got, vec![rejected.clone(), rejected]);
        for status in [StatusCode::TOO_MANY_REQUESTS, StatusCode::BAD_GATEWAY] {
            let got = attempts_of(&[&a], status, &HeaderMap::new(), "busy");
            assert!(matches!(got[..], [Attempt::Retry { .. }]), "{got:?}");
        }
        let got = attempts_of(&[&a], StatusCode::ACCEPTED, &HeaderMap::new(), "<html>");
        assert!(
            matches!(&got[..], [Attempt::Rejected { error, .. }] if error.contains("not Clickatell's")),
            "{got:?}"
        );
        // One recipient, one entry in another number form: still its outcome.
        let got = attempts_of(
            &[&a],
            StatusCode::ACCEPTED,
            &HeaderMap::new(),
            r#"{"messages":[{"apiMessageId":"z","accepted":true,"to":"0015550001x"}]}"#,
        );
        assert!(matches!(&got[..], [Attempt::Accepted { provider_id: Some(id), .. }] if id == "z"));
    }

    #[test]
    fn statuses_map_by_name_then_by_code() {
        use DeliveryStatus::*;
        let c = |raw: Option<&str>, code: Option<&str>, t| classify(raw, code, t);
        assert_eq!(
            c(Some("RECEIVED_BY_RECIPIENT"), Some("4"), Codes::Platform),
            Some(Delivered)
        );
        assert_eq!(
            c(Some("DELIVERED_TO_GATEWAY"), None, Codes::Platform),
            Some(Sent)
        );
        assert_eq!(c(Some("004"), None, Codes::Platform), Some(Delivered));
        assert_eq!(c(None, Some("10"), Codes::Platform), Some(Expired));
        assert_eq!(c(None, Some("2"), Codes::Platform), Some(Queued));
        assert_eq!(c(None, Some("7"), Codes::Platform), Some(Failed));
        // The One API's 4 is "sent to supplier", the Platform's "received by recipient".
        assert_eq!(c(None, Some("4"), Codes::OneApi), Some(Sent));
        assert_eq!(
            c(Some("SENT_TO_SUPPLIER"), Some("4"), Codes::Platform),
            Some(Sent)
        );
        assert_eq!(c(Some("whatever"), Some("99"), Codes::Platform), None);
        assert_eq!(
            c(Some("Received by recipient"), None, Codes::OneApi),
            Some(Delivered)
        );
    }

    #[test]
    fn identities_get_their_plus() {
        assert_eq!(international("255712345678"), "+255712345678");
        assert_eq!(international("+255712345678"), "+255712345678");
        assert_eq!(international("12345"), "12345");
        assert_eq!(international("0712345678"), "0712345678");
    }
}
