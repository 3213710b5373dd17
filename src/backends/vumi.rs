//! Vumi's HTTP API, as RapidSMS's `VumiBackend` speaks it (reference
//! `rapidsms.md` §1(b)), plus Vumi's events.
//!
//! **Inbound**: `POST /backend/<name>/` with a Vumi message as JSON (any
//! content type): `message_id`, `to_addr`, `from_addr`, `transport_name`
//! and `transport_type` are required (missing, `null` or empty → `400`
//! naming the field); `in_reply_to`, `session_event`, `content` and `group`
//! are optional; other keys (`message_type`, `timestamp`, `helper_metadata`,
//! `transport_metadata`, `message_version`, ...) are ignored. The identity
//! is `from_addr`; the text is `content` exactly as sent (`""`, `null` and a
//! missing `content` all give an empty text, which this source accepts, as
//! RapidSMS does since its #422); `message_id` is the external id that
//! repeats are recognised by, and replies carry it back as `in_reply_to`.
//! The other fields given are kept under their Vumi names. Answered `200`
//! with an empty body once stored. A body whose `message_type` is `event`
//! is taken as an event (Vumi may post both to one URL).
//!
//! **Outbound**: `POST sendsms_url` with `Content-Type: application/json`
//! and HTTP basic auth when `sendsms_user`/`sendsms_pass` are set; the body
//! is `sendsms_params` plus
//!
//! ```json
//! {"content": "hi", "to_addr": ["+255712345678"], "session_event": null,
//!  "metadata": {"rapidsms_msg_id": "<our id>"}, "in_reply_to": "<inbound message_id>"}
//! ```
//!
//! `in_reply_to` only for a reply to a Vumi message (its `external_id`);
//! `endpoint` and `from_addr` are copied from the message's fields when it
//! has them. A 2xx answer is accepted, and the `message_id` of the message
//! Vumi returns (at the top level, or under `result` as Junebug answers)
//! becomes the provider id that events name; other answers are failures
//! (408, 429, 5xx retried).
//!
//! **Events**: `POST /backend/<name>/event` with a Vumi `TransportEvent`:
//! `event_type` `ack` → `sent`, `nack` → `failed` (error = `nack_reason`),
//! `delivery_report` by `delivery_status`: `pending` → `queued`,
//! `delivered` → `delivered`, `failed` → `failed`. `user_message_id` is
//! Vumi's id of our message, found in the sent-log; `provider_status` is
//! `ack`, `nack` or `delivery_report:<status>`. A missing `event_type`,
//! `user_message_id` or `delivery_status` is a `400` naming it.
//!
//! **Authentication**: both URLs take HTTP basic auth
//! (`receive.username`/`receive.password`; at Vumi, put them in the URL:
//! `https://user:pass@host/backend/vumi/`), or the shared `receive.secret`
//! (`secret=` in the URL or an `X-Smsflow-Secret` header): `401` without,
//! `403` when wrong, and nothing is stored.
//!
//! Differences from RapidSMS: `content` is kept exactly (Django's form
//! strips surrounding whitespace); any 2xx is success (RapidSMS fails
//! anything but 200); RapidSMS has no event handling at all.
//!
//! Sources: RapidSMS `rapidsms/backends/vumi/{outgoing,forms,views}.py` (via
//! the reference); Vumi's `vumi/message.py` (`TransportUserMessage` fields,
//! `TransportEvent` with `user_message_id`, `event_type` ack/nack/
//! delivery_report, `sent_message_id`, `nack_reason`, `delivery_status`
//! pending/failed/delivered).

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{RawQuery, State};
use axum::http::HeaderMap;
use axum::response::Response;
use axum::routing::post;
use axum::Router;
use futures::future::BoxFuture;
use futures::FutureExt;
use serde_json::{json, Map, Value};

use super::provider::{call, Attempt, Provider};
use super::webhook::answer;
use super::{json, Hooks, Report, SourceError};
use crate::message::{DeliveryStatus, OutboundMessage};

/// `POST /backend/<name>/` (messages, and events) and `POST /backend/<name>/event`.
pub fn routes(name: &str, hooks: Arc<Hooks>) -> Router {
    Router::new()
        .route(&format!("/backend/{name}/"), post(inbound))
        .route(&format!("/backend/{name}/event"), post(event))
        .with_state(hooks)
}

/// How the sink reaches Vumi.
pub struct Vumi {
    pub client: reqwest::Client,
    pub sendsms_url: String,
    /// HTTP basic auth (user, password).
    pub auth: Option<(String, String)>,
    /// Extra keys of every payload (RapidSMS's `sendsms_params`).
    pub params: std::collections::BTreeMap<String, String>,
}

impl Vumi {
    /// The JSON RapidSMS's `VumiBackend.prepare_request` posts for `msg`.
    pub fn payload(&self, msg: &OutboundMessage) -> Value {
        let mut p: Map<String, Value> = self
            .params
            .iter()
            .map(|(k, v)| (k.clone(), json!(v)))
            .collect();
        p.insert("content".into(), json!(msg.text));
        p.insert("to_addr".into(), json!([msg.connection.identity]));
        p.insert("session_event".into(), Value::Null);
        p.insert("metadata".into(), json!({"rapidsms_msg_id": msg.id}));
        if let Some(external_id) = msg.fields.get("external_id") {
            p.insert("in_reply_to".into(), json!(external_id));
        }
        for key in ["endpoint", "from_addr"] {
            if let Some(v) = msg.fields.get(key) {
                p.insert(key.into(), json!(v));
            }
        }
        Value::Object(p)
    }

    async fn request(&self, msg: &OutboundMessage) -> Attempt {
        let mut request = self.client.post(&self.sendsms_url).json(&self.payload(msg));
        if let Some((user, pass)) = &self.auth {
            request = request.basic_auth(user, Some(pass));
        }
        match call(request).await {
            Err(failed) => failed,
            Ok(a) if a.status.is_success() => Attempt::Accepted {
                provider_id: sent_id(&a.body),
                status: a.status.as_u16().to_string(),
            },
            Ok(a) => a.failure(),
        }
    }
}

/// The `message_id` of the message Vumi's HTTP API answers with (Junebug
/// nests it under `result`).
fn sent_id(body: &str) -> Option<String> {
    let v: Value = serde_json::from_str(body).ok()?;
    for id in [&v["message_id"], &v["result"]["message_id"]] {
        match id {
            Value::String(s) if !s.is_empty() => return Some(s.clone()),
            Value::Number(n) => return Some(n.to_string()),
            _ => {}
        }
    }
    None
}

impl Provider for Vumi {
    fn send_one<'a>(&'a self, msg: &'a OutboundMessage) -> BoxFuture<'a, Attempt> {
        self.request(msg).boxed()
    }
}

/// A field that must be there and not empty.
fn required(
    obj: &Map<String, Value>,
    name: &'static str,
    what: &str,
) -> Result<String, SourceError> {
    json::text(obj, name)?
        .filter(|v| !v.is_empty())
        .ok_or(SourceError::missing(name, what))
}

/// The fields of RapidSMS's `VumiForm`: required ones with what they are.
const REQUIRED: [(&str, &str); 5] = [
    ("message_id", "Vumi's id of the message"),
    ("to_addr", "the address the message was sent to"),
    ("from_addr", "the address the message comes from"),
    ("transport_name", "the Vumi transport's name"),
    (
        "transport_type",
        "the Vumi transport's type, such as sms or ussd",
    ),
];
const OPTIONAL: [&str; 3] = ["in_reply_to", "session_event", "group"];

async fn inbound(
    State(h): State<Arc<Hooks>>,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
    body: Bytes,
) -> Response {
    let result = async {
        h.auth.check(&headers, query.as_deref())?;
        let msg = json::object(&body)?;
        if msg.get("message_type").and_then(Value::as_str) == Some("event") {
            return event_report(&h, &msg).await;
        }
        let mut fields = Vec::new();
        for (name, what) in REQUIRED {
            fields.push((name.to_owned(), required(&msg, name, what)?));
        }
        for name in OPTIONAL {
            if let Some(v) = json::text(&msg, name)?.filter(|v| !v.is_empty()) {
                fields.push((name.to_owned(), v));
            }
        }
        let text = json::text(&msg, "content")?.unwrap_or_default();
        let from = fields[2].1.clone();
        let id = fields[0].1.clone();
        h.source
            .accept(Some(&from), Some(&text), |m| {
                m.external_id = Some(id);
                m.fields.extend(fields);
            })
            .await
            .map(drop)
            .map_err(|e| {
                e.renamed("identity", "from_addr")
                    .renamed("text", "content")
                    .renamed("id", "message_id")
            })
    }
    .await;
    answer(result, ())
}

async fn event(
    State(h): State<Arc<Hooks>>,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
    body: Bytes,
) -> Response {
    let result = async {
        h.auth.check(&headers, query.as_deref())?;
        let e = json::object(&body)?;
        event_report(&h, &e).await
    }
    .await;
    answer(result, ())
}

/// A Vumi `TransportEvent` as a delivery event.
async fn event_report(h: &Hooks, e: &Map<String, Value>) -> Result<(), SourceError> {
    let event_type = required(e, "event_type", "ack, nack or delivery_report")?;
    let user_message_id = required(
        e,
        "user_message_id",
        "Vumi's id of the message the event is about",
    )?;
    let (status, provider_status, error) = match event_type.as_str() {
        "ack" => (DeliveryStatus::Sent, "ack".to_owned(), None),
        "nack" => {
            let reason = json::text(e, "nack_reason")?
                .filter(|r| !r.is_empty())
                .unwrap_or_else(|| "nack without a nack_reason".into());
            (DeliveryStatus::Failed, "nack".to_owned(), Some(reason))
        }
        "delivery_report" => {
            let ds = required(e, "delivery_status", "pending, failed or delivered")?;
            let status = match ds.as_str() {
                "pending" => DeliveryStatus::Queued,
                "delivered" => DeliveryStatus::Delivered,
                "failed" => DeliveryStatus::Failed,
                other => {
                    return Err(SourceError::Invalid {
                        field: "delivery_status",
                        message: format!(
                            "delivery_status {other:?}: expected pending, failed or delivered"
                        ),
                    })
                }
            };
            let error = (status == DeliveryStatus::Failed)
                .then(|| "Vumi delivery report: failed".to_owned());
            (status, format!("delivery_report:{ds}"), error)
        }
        other => {
            return Err(SourceError::Invalid {
                field: "event_type",
                message: format!("event_type {other:?}: expected ack, nack or delivery_report"),
            })
        }
    };
    h.reports
        .report(Report {
            message_id: None,
            provider_id: Some(user_message_id),
            identity: None,
            status: Some(status),
            provider_status,
            error,
        })
        .await
        .map(drop)
        .map_err(|e| {
            e.renamed("provider_id", "user_message_id")
                .renamed("status", "event_type")
                .renamed("error", "nack_reason")
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::message::{Connection, InboundMessage};

    #[test]
    fn payload_is_rapidsms_s() {
        let mut inbound = InboundMessage::new(Connection::new("vumi", "+255712345678"), "echo hi");
        inbound.external_id = Some("vumi-in-1".into());
        let reply = OutboundMessage::reply_to(&inbound, "hi ñ 😀");
        let vumi = Vumi {
            client: reqwest::Client::new(),
            sendsms_url: "http://vumi.invalid/send".into(),
            auth: None,
            params: [("transport_name".to_owned(), "sms_out".to_owned())].into(),
        };
        assert_eq!(
            vumi.payload(&reply),
            json!({"transport_name": "sms_out", "content": "hi ñ 😀", "to_addr": ["+255712345678"],
                   "session_event": null, "metadata": {"rapidsms_msg_id": reply.id},
                   "in_reply_to": "vumi-in-1"})
        );
        let mut plain = OutboundMessage::new(Connection::new("vumi", "+1555"), "x");
        plain.fields.insert("from_addr".into(), "1234".into());
        let p = vumi.payload(&plain);
        assert_eq!(p["from_addr"], "1234");
        assert!(p.get("in_reply_to").is_none());
    }

    #[test]
    fn the_sent_message_id_is_found_where_vumi_or_junebug_put_it() {
        assert_eq!(sent_id(r#"{"message_id": "abc"}"#).as_deref(), Some("abc"));
        assert_eq!(
            sent_id(r#"{"status": 201, "result": {"message_id": "j1"}}"#).as_deref(),
            Some("j1")
        );
        assert_eq!(sent_id("OK"), None);
    }
}
