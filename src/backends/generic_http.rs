//! The generic HTTP gateway backend.
//!
//! **Inbound** is RapidSMS's `GenericHttpBackendView`: `GET` or `POST
//! /backend/<name>/` with `identity` and `text` (names configurable, as its
//! `params`), answered `200 OK` once the message is on the bus; a missing
//! or empty parameter gets `400` naming it. An optional `id` parameter is the
//! gateway's message id (repeats are dropped).
//!
//! **Outbound**: one request per message to the `url` template, whose
//! `{id}`, `{identity}`, `{text}`, `{encoding}`, `{segments}` and
//! `{in_response_to}` are filled in, URL-encoded. `method: post` also sends
//! the message as JSON, with its id in an `Idempotency-Key` header:
//!
//! ```json
//! {"id": "...", "identity": "+15551234", "text": "hi", "in_response_to": "...",
//!  "encoding": "gsm7", "segments": 1, "campaign_id": null}
//! ```
//!
//! A 2xx answer is accepted (a JSON `id` in it becomes the provider id).
//!
//! **Delivery reports**: `GET` or `POST /backend/<name>/status` with `id`
//! (our message id, or `provider_id`) and `status` (`queued`, `sent`,
//! `delivered`, `failed`, `expired`), optionally `error`.
//!
//! **Authentication**: every request carries the backend's `receive.secret`
//! (`secret=` in the URL's query, also for a POST, or an `X-Smsflow-Secret`
//! header) or its basic auth (`receive.username`/`password`): `401`
//! without, `403` when wrong, and nothing is stored. Otherwise any page a
//! phone's owner opens could send a message in their name with an `<img>`.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{RawQuery, State};
use axum::http::{HeaderMap, Method};
use axum::response::Response;
use axum::routing::get;
use axum::Router;
use futures::future::BoxFuture;
use futures::FutureExt;
use serde_json::{json, Value};

use super::auth::WebhookAuth;
use super::provider::{call, Attempt, Provider};
use super::webhook::{answer, form_text};
use super::{Report, Reports, Source, SourceError};
use crate::config::{HttpMethod, HttpParams};
use crate::message::{DeliveryStatus, Encoding, OutboundMessage};
use crate::sms::template;

pub struct HttpProvider {
    pub client: reqwest::Client,
    pub url: String,
    pub method: HttpMethod,
}

impl HttpProvider {
    /// The template filled in for `msg`.
    pub fn url(&self, msg: &OutboundMessage) -> String {
        let enc = |v: &str| {
            percent_encoding::utf8_percent_encode(v, percent_encoding::NON_ALPHANUMERIC).to_string()
        };
        template::render(&self.url, |name| {
            Some(enc(&match name {
                "id" => msg.id.clone(),
                "identity" => msg.connection.identity.clone(),
                "text" => msg.text.clone(),
                "encoding" => match msg.encoding {
                    Some(Encoding::Ucs2) => "ucs2".into(),
                    Some(Encoding::Gsm7) => "gsm7".into(),
                    None => String::new(),
                },
                "segments" => msg.segments.to_string(),
                "in_response_to" => msg.in_response_to.clone().unwrap_or_default(),
                _ => return None,
            }))
        })
    }

    async fn request(&self, msg: &OutboundMessage) -> Attempt {
        let request = match self.method {
            HttpMethod::Get => self.client.get(self.url(msg)),
            HttpMethod::Post => self.client.post(self.url(msg)).json(&json!({
                "id": msg.id,
                "identity": msg.connection.identity,
                "text": msg.text,
                "in_response_to": msg.in_response_to,
                "encoding": msg.encoding,
                "segments": msg.segments,
                "campaign_id": msg.campaign_id,
            })),
        };
        match call(request.header("Idempotency-Key", &msg.id)).await {
            Err(failed) => failed,
            Ok(a) if a.status.is_success() => Attempt::Accepted {
                provider_id: serde_json::from_str::<Value>(&a.body)
                    .ok()
                    .and_then(|v| v["id"].as_str().map(str::to_owned)),
                status: a.status.as_u16().to_string(),
            },
            Ok(a) => a.failure(),
        }
    }
}

impl Provider for HttpProvider {
    fn send_one<'a>(&'a self, msg: &'a OutboundMessage) -> BoxFuture<'a, Attempt> {
        self.request(msg).boxed()
    }
}

pub struct Hooks {
    pub auth: WebhookAuth,
    pub source: Source,
    pub reports: Reports,
    pub params: HttpParams,
}

/// `/backend/<name>/` (inbound) and `/backend/<name>/status`, GET or POST.
pub fn routes(name: &str, hooks: Arc<Hooks>) -> Router {
    Router::new()
        .route(&format!("/backend/{name}/"), get(inbound).post(inbound))
        .route(&format!("/backend/{name}/status"), get(status).post(status))
        .with_state(hooks)
}

/// The parameters of a GET's query or a POST's form body.
fn params(
    method: &Method,
    query: Option<String>,
    body: &[u8],
) -> Result<std::collections::HashMap<String, String>, SourceError> {
    match *method {
        Method::GET => form_text(query.unwrap_or_default().as_bytes()),
        Method::POST => form_text(body),
        _ => Err(SourceError::Invalid {
            field: "method",
            message: format!("{method} is not accepted: use GET or POST"),
        }),
    }
}

async fn inbound(
    State(h): State<Arc<Hooks>>,
    method: Method,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
    body: Bytes,
) -> Response {
    let result = async {
        h.auth.check(&headers, query.as_deref())?;
        let mut p = params(&method, query, &body)?;
        let field = |p: &mut std::collections::HashMap<String, String>, name: &str| p.remove(name);
        let identity = field(&mut p, &h.params.identity);
        let text = field(&mut p, &h.params.text);
        let id = field(&mut p, &h.params.id).filter(|v| !v.is_empty());
        // RapidSMS's form names its fields by their configured names.
        if identity.as_deref().is_none_or(str::is_empty) {
            return Err(SourceError::Invalid {
                field: "identity",
                message: format!(
                    "missing or empty parameter {:?}: the phone number the message comes from",
                    h.params.identity
                ),
            });
        }
        if text.as_deref().is_none_or(str::is_empty) {
            return Err(SourceError::Invalid {
                field: "text",
                message: format!(
                    "missing or empty parameter {:?}: the message",
                    h.params.text
                ),
            });
        }
        if let Some(id) = &id {
            // Named as the gateway names it (the source would say `id`).
            h.source.limits().check_id(&h.params.id, id)?;
        }
        h.source
            .accept(identity.as_deref(), text.as_deref(), |m| m.external_id = id)
            .await
            .map(drop)
            .map_err(|e| rename(e, &h.params))
    }
    .await;
    answer(result, "OK")
}

/// The source's limit errors under the parameter names this gateway uses.
fn rename(e: SourceError, params: &HttpParams) -> SourceError {
    match e {
        SourceError::TooLarge { field, message } if field == "text" => SourceError::TooLarge {
            field: params.text.clone(),
            message,
        },
        SourceError::TooLong { field, message } if field == "identity" => SourceError::TooLong {
            field: params.identity.clone(),
            message,
        },
        e => e,
    }
}

async fn status(
    State(h): State<Arc<Hooks>>,
    method: Method,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
    body: Bytes,
) -> Response {
    let result = async {
        h.auth.check(&headers, query.as_deref())?;
        let mut p = params(&method, query, &body)?;
        let id = p.remove("id").filter(|v| !v.is_empty());
        let provider_id = p.remove("provider_id").filter(|v| !v.is_empty());
        if id.is_none() && provider_id.is_none() {
            return Err(SourceError::missing(
                "id",
                "the message id (or provider_id) the report is about",
            ));
        }
        let raw = p.remove("status").ok_or(SourceError::missing(
            "status",
            "queued, sent, delivered, failed or expired",
        ))?;
        let status = match raw.to_ascii_lowercase().as_str() {
            "queued" => DeliveryStatus::Queued,
            "sent" => DeliveryStatus::Sent,
            "delivered" => DeliveryStatus::Delivered,
            "failed" => DeliveryStatus::Failed,
            "expired" => DeliveryStatus::Expired,
            _ => {
                return Err(SourceError::Invalid {
                    field: "status",
                    message: format!(
                        "status {raw:?}: expected queued, sent, delivered, failed or expired"
                    ),
                })
            }
        };
        h.reports
            .report(Report {
                message_id: id,
                provider_id,
                identity: p.remove("identity"),
                status: Some(status),
                provider_status: raw,
                error: p.remove("error"),
            })
            .await
            .map(drop)
            .map_err(|e| e.renamed("message_id", "id"))
    }
    .await;
    answer(result, "OK")
}
