//! The webhooks: `POST /backend/<name>/` (inbound messages) and `POST
//! /backend/<name>/status` (status callbacks), their form parameters and
//! Twilio's field names.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{OriginalUri, State};
use axum::http::{header, HeaderMap, Uri};
use axum::response::Response;
use axum::routing::post;
use axum::Router;

use super::send::describe;
use super::signature::check_signature;
use crate::backends::webhook::answer;
use crate::backends::{Report, Reports, Source, SourceError};
use crate::message::DeliveryStatus;

/// The answer to an inbound message: Twilio sends nothing back.
pub const EMPTY_TWIML: &str = r#"<?xml version="1.0" encoding="UTF-8"?><Response></Response>"#;
/// What the webhooks need.
pub struct Hooks {
    pub source: Source,
    pub reports: Reports,
    /// Signs webhooks.
    pub auth_token: String,
    /// Check `X-Twilio-Signature` (403 when missing or wrong).
    pub validate: bool,
    /// The public base URL (no trailing `/`) Twilio calls: signatures are
    /// computed over it plus the request's path and query.
    pub public: String,
}

/// `POST /backend/<name>/` (inbound messages) and `POST
/// /backend/<name>/status` (status callbacks).
pub fn routes(name: &str, hooks: Arc<Hooks>) -> Router {
    Router::new()
        .route(&format!("/backend/{name}/"), post(inbound))
        .route(&format!("/backend/{name}/status"), post(status))
        .with_state(hooks)
}

/// A webhook's parameters, in order and with repeats.
type Params = Vec<(String, String)>;

/// The last non-empty value of `name`.
fn param(params: &Params, name: &str) -> Option<String> {
    params
        .iter()
        .rev()
        .find(|(k, v)| k == name && !v.is_empty())
        .map(|(_, v)| v.clone())
}

/// The parameters of a webhook that is Twilio's: a form body, signed.
fn webhook(h: &Hooks, uri: &Uri, headers: &HeaderMap, body: &[u8]) -> Result<Params, SourceError> {
    let kind = headers
        .get(header::CONTENT_TYPE)
        .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
        .unwrap_or_default();
    let media = kind.split(';').next().unwrap_or_default().trim();
    if !media.eq_ignore_ascii_case("application/x-www-form-urlencoded") {
        return Err(SourceError::Invalid {
            field: "Content-Type",
            message: format!(
                "expected a form (application/x-www-form-urlencoded), as Twilio sends, not {kind:?}"
            ),
        });
    }
    let params = form_pairs(body)?;
    if h.validate {
        let path = uri.path_and_query().map_or(uri.path(), |pq| pq.as_str());
        check_signature(
            &h.auth_token,
            &format!("{}{path}", h.public),
            headers,
            &params,
        )?;
    }
    Ok(params)
}
/// The Twilio parameters a 400 may name (the field of an error is static).
const KNOWN: [&str; 14] = [
    "From",
    "To",
    "Body",
    "MessageSid",
    "SmsSid",
    "SmsMessageSid",
    "AccountSid",
    "MessagingServiceSid",
    "NumSegments",
    "NumMedia",
    "MessageStatus",
    "SmsStatus",
    "ErrorCode",
    "ErrorMessage",
];

/// A form body (or query) as its pairs, in order and with repeats (the
/// signature covers them all): `+` is a space, `%XX` a byte, and every
/// name and value must be UTF-8.
fn form_pairs(raw: &[u8]) -> Result<Params, SourceError> {
    crate::http::form_pairs(raw)
        .map(|(k, v)| {
            let k = String::from_utf8(k).map_err(|e| SourceError::Invalid {
                field: "form",
                message: format!(
                    "a parameter name is not UTF-8: {:?}",
                    String::from_utf8_lossy(e.as_bytes())
                ),
            })?;
            let v = String::from_utf8(v).map_err(|_| SourceError::Invalid {
                field: KNOWN.iter().find(|n| **n == k).copied().unwrap_or("form"),
                message: format!("parameter {k} is not UTF-8"),
            })?;
            Ok((k, v))
        })
        .collect()
}

/// `AccountSid` → `account_sid`, `MediaUrl0` → `media_url0`.
fn snake(name: &str) -> String {
    let mut out = String::with_capacity(name.len() + 4);
    let mut after_lower = false;
    for c in name.chars() {
        if c.is_ascii_uppercase() {
            if after_lower {
                out.push('_');
            }
            out.push(c.to_ascii_lowercase());
            after_lower = false;
        } else {
            out.push(c);
            after_lower = c.is_ascii_lowercase() || c.is_ascii_digit();
        }
    }
    out
}

/// Our field names for the source's errors: Twilio's.
fn twilio_field(e: SourceError) -> SourceError {
    match e {
        SourceError::Invalid { field, message } => {
            let twilio = match field {
                "identity" => "From",
                "text" => "Body",
                other => other,
            };
            SourceError::Invalid {
                field: twilio,
                message: match twilio == field {
                    true => message,
                    false => format!("{twilio}: {message}"),
                },
            }
        }
        // Limits: named as Twilio names the parameters.
        other => other
            .renamed("identity", "From")
            .renamed("text", "Body")
            .renamed("id", "MessageSid"),
    }
}

async fn inbound(
    State(h): State<Arc<Hooks>>,
    OriginalUri(uri): OriginalUri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let result = async {
        let params = webhook(&h, &uri, &headers, &body)?;
        let from = param(&params, "From").ok_or(SourceError::missing(
            "From",
            "the phone number the message comes from",
        ))?;
        // Present but empty is the source's error (an empty text).
        let text = params
            .iter()
            .rev()
            .find(|(k, _)| k == "Body")
            .map(|(_, v)| v.clone())
            .ok_or(SourceError::missing("Body", "the text of the message"))?;
        let sid = param(&params, "MessageSid")
            .or_else(|| param(&params, "SmsSid"))
            .ok_or(SourceError::missing(
                "MessageSid",
                "Twilio's id of the message (or SmsSid)",
            ))?;
        let fields: Vec<(String, String)> = params
            .iter()
            .filter(|(k, v)| k != "From" && k != "Body" && !v.is_empty())
            .map(|(k, v)| (snake(k), v.clone()))
            .collect();
        h.source
            .accept(Some(&from), Some(&text), |m| {
                m.external_id = Some(sid);
                m.fields.extend(fields);
            })
            .await
            .map(drop)
            .map_err(twilio_field)
    }
    .await;
    answer(result, ([(header::CONTENT_TYPE, "text/xml")], EMPTY_TWIML))
}

/// A `MessageStatus` as ours.
fn delivery_status(raw: &str) -> Option<DeliveryStatus> {
    Some(match raw.to_ascii_lowercase().as_str() {
        "queued" | "accepted" | "scheduled" | "sending" => DeliveryStatus::Queued,
        "sent" => DeliveryStatus::Sent,
        "delivered" | "read" => DeliveryStatus::Delivered,
        "undelivered" | "failed" | "canceled" => DeliveryStatus::Failed,
        _ => return None,
    })
}

async fn status(
    State(h): State<Arc<Hooks>>,
    OriginalUri(uri): OriginalUri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let result = async {
        let params = webhook(&h, &uri, &headers, &body)?;
        let query = form_pairs(uri.query().unwrap_or_default().as_bytes())?;
        let sid = param(&params, "MessageSid")
            .or_else(|| param(&params, "SmsSid"))
            .ok_or(SourceError::missing(
                "MessageSid",
                "Twilio's id of the message (or SmsSid)",
            ))?;
        let raw = param(&params, "MessageStatus")
            .or_else(|| param(&params, "SmsStatus"))
            .ok_or(SourceError::missing(
                "MessageStatus",
                "the message's status (or SmsStatus)",
            ))?;
        let status = delivery_status(&raw).ok_or_else(|| SourceError::Invalid {
            field: "MessageStatus",
            message: format!(
                "MessageStatus {raw:?}: expected queued, accepted, scheduled, sending, sent, delivered, read, undelivered, failed or canceled"
            ),
        })?;
        let code = param(&params, "ErrorCode");
        let provider_status = match &code {
            Some(c) => format!("{raw} {c}"),
            None => raw.clone(),
        };
        let error = (status == DeliveryStatus::Failed).then(|| {
            describe(code, param(&params, "ErrorMessage"))
                .unwrap_or_else(|| format!("Twilio status {raw}"))
        });
        h.reports
            .report(Report {
                message_id: param(&query, "message_id"),
                provider_id: Some(sid),
                identity: param(&params, "To"),
                status: Some(status),
                provider_status,
                error,
            })
            .await
            .map(drop)
            .map_err(|e| {
                e.renamed("provider_id", "MessageSid")
                    .renamed("identity", "To")
                    .renamed("status", "MessageStatus")
                    .renamed("error", "ErrorMessage")
            })
    }
    .await;
    answer(result, ())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pairs(p: &[(&str, &str)]) -> Params {
        p.iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn forms_keep_every_pair() {
        assert_eq!(
            form_pairs(b"Body=a+b%2Bc%26d%3De&Body=&To&=x&&From=%2B1").unwrap(),
            pairs(&[
                ("Body", "a b+c&d=e"),
                ("Body", ""),
                ("To", ""),
                ("", "x"),
                ("From", "+1")
            ])
        );
        assert!(matches!(
            form_pairs(b"To=1&Body=%FF"),
            Err(SourceError::Invalid { field: "Body", .. })
        ));
        assert!(matches!(
            form_pairs(b"X=%FF"),
            Err(SourceError::Invalid { field: "form", .. })
        ));
    }

    #[test]
    fn field_names_in_snake_case() {
        for (twilio, ours) in [
            ("To", "to"),
            ("AccountSid", "account_sid"),
            ("NumSegments", "num_segments"),
            ("MessagingServiceSid", "messaging_service_sid"),
            ("SmsMessageSid", "sms_message_sid"),
            ("MediaUrl0", "media_url0"),
            ("MediaContentType0", "media_content_type0"),
        ] {
            assert_eq!(snake(twilio), ours);
        }
    }
    #[test]
    fn statuses() {
        for (raw, status) in [
            ("queued", DeliveryStatus::Queued),
            ("accepted", DeliveryStatus::Queued),
            ("scheduled", DeliveryStatus::Queued),
            ("sending", DeliveryStatus::Queued),
            ("sent", DeliveryStatus::Sent),
            ("delivered", DeliveryStatus::Delivered),
            ("read", DeliveryStatus::Delivered),
            ("undelivered", DeliveryStatus::Failed),
            ("failed", DeliveryStatus::Failed),
            ("canceled", DeliveryStatus::Failed),
        ] {
            assert_eq!(delivery_status(raw), Some(status));
        }
        assert_eq!(delivery_status("receiving"), None);
    }
}
