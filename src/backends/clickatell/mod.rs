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
//!
//! Where things are: `send` (`POST /messages` and its reply), `hooks`
//! (what the callbacks need and how one is proved), `inbound` (reply
//! callbacks and the One API's received messages) and `status` (status
//! callbacks and the status tables).

mod hooks;
mod inbound;
mod send;
mod status;

use std::sync::Arc;

use axum::routing::post;
use axum::Router;

pub use hooks::Hooks;
pub use send::{attempts, Clickatell};

/// `POST /backend/<name>/` (reply callback) and `POST /backend/<name>/status`
/// (status callback).
pub fn routes(name: &str, hooks: Arc<Hooks>) -> Router {
    Router::new()
        .route(&format!("/backend/{name}/"), post(inbound::inbound))
        .route(&format!("/backend/{name}/status"), post(status::status))
        .with_state(hooks)
}
