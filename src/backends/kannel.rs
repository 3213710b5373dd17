//! Kannel's smsbox (1.4.5, as observed on the wire: `reference/kannel.md`).
//!
//! **Inbound**: smsbox's `get-url` calls `GET /backend/<name>/` with
//! `from=%p&to=%P&text=%b&coding=%c&charset=%C&ts=%T&smsc=%i&id=%I&udh=%u&service=%n`.
//! It is answered `200` with an empty body once the message is on the bus
//! (Kannel counts only 200 and 202 as success, and sends any body back as an
//! SMS), `400` naming the field for a bad request, `503` when the bus cannot
//! store it. `%b` carries the exact bytes (`%a` squeezes whitespace); `text`
//! is read in the `charset` Kannel names (UTF-8 with `mo-recode`, UTF-16BE
//! without it, Latin-1 for 8-bit data).
//!
//! **Outbound**: `GET /cgi-bin/sendsms` with `username`, `password`, `from`,
//! `to`, `text`, `smsc`, always `charset=UTF-8`, `coding=2` when the text is
//! not GSM-7 (else Kannel turns those characters into `?`), and `dlr-mask`
//! with a `dlr-url` that carries our message id (Kannel's reports have no
//! id of the sent message). `202 0:` and `202 3:` are accepted; 4xx is
//! permanent; 503 transient.
//!
//! **Delivery reports**: `GET /backend/<name>/dlr?message_id=...&status=%d&answer=%A&to=%p`,
//! statuses 1 delivered, 2 failed, 4 buffered (queued), 8 SMSC accepted
//! (sent), 16 SMSC rejected (failed).

use std::collections::HashMap;
use std::sync::Arc;

use axum::extract::{RawQuery, State};
use axum::response::Response;
use axum::routing::get;
use axum::Router;
use futures::future::BoxFuture;
use futures::FutureExt;

use super::provider::{http_failure, transport_failure, Attempt, Provider};
use super::{Report, Reports, Source, SourceError};
use crate::http::{answer, form_bytes};
use crate::message::{DeliveryStatus, Encoding, OutboundMessage};
use crate::sms;

/// How the sink reaches smsbox.
pub struct Kannel {
    pub client: reqwest::Client,
    pub sendsms_url: String,
    pub username: String,
    pub password: String,
    pub from: Option<String>,
    pub smsc: Option<String>,
    pub dlr_mask: u8,
    /// `<public url>/backend/<name>/dlr`.
    pub dlr_url: String,
}

impl Kannel {
    /// The sendsms query for `msg`.
    pub fn query(&self, msg: &OutboundMessage) -> Vec<(&'static str, String)> {
        let encoding = msg.encoding.unwrap_or_else(|| sms::analyze(&msg.text).0);
        let mut q = vec![
            ("username", self.username.clone()),
            ("password", self.password.clone()),
            ("to", msg.connection.identity.clone()),
            ("text", msg.text.clone()),
            ("charset", "UTF-8".to_owned()),
        ];
        if let Some(from) = &self.from {
            q.push(("from", from.clone()));
        }
        if let Some(smsc) = &self.smsc {
            q.push(("smsc", smsc.clone()));
        }
        if encoding == Encoding::Ucs2 {
            q.push(("coding", "2".to_owned()));
        }
        if self.dlr_mask != 0 {
            // Kannel fills in the %-codes; our own parameters come first.
            let mut url = reqwest::Url::parse(&self.dlr_url)
                .unwrap_or_else(|_| reqwest::Url::parse("http://invalid/").expect("a valid URL"));
            url.query_pairs_mut().append_pair("message_id", &msg.id);
            q.push(("dlr-mask", self.dlr_mask.to_string()));
            q.push((
                "dlr-url",
                format!("{url}&status=%d&answer=%A&to=%p&ts=%T&smsc=%i"),
            ));
        }
        q
    }
}

impl Provider for Kannel {
    fn send<'a>(&'a self, msgs: &'a [&'a OutboundMessage]) -> BoxFuture<'a, Vec<Attempt>> {
        async move {
            let mut out = Vec::with_capacity(msgs.len());
            for msg in msgs {
                let sent = self
                    .client
                    .get(&self.sendsms_url)
                    .query(&self.query(msg))
                    .send()
                    .await;
                out.push(match sent {
                    Err(e) => transport_failure(&e),
                    Ok(res) => {
                        let status = res.status();
                        let headers = res.headers().clone();
                        let body = res.text().await.unwrap_or_default();
                        if status.is_success() {
                            Attempt::Accepted {
                                provider_id: None,
                                status: format!("{} {}", status.as_u16(), body.trim()),
                            }
                        } else {
                            http_failure(status, &headers, &body)
                        }
                    }
                });
            }
            out
        }
        .boxed()
    }
}

/// What the webhooks need.
pub struct Hooks {
    pub source: Source,
    pub reports: Reports,
}

/// `GET /backend/<name>/` (get-url) and `GET /backend/<name>/dlr` (dlr-url).
pub fn routes(name: &str, hooks: Arc<Hooks>) -> Router {
    Router::new()
        .route(&format!("/backend/{name}/"), get(inbound))
        .route(&format!("/backend/{name}/dlr"), get(dlr))
        .with_state(hooks)
}

async fn inbound(State(h): State<Arc<Hooks>>, RawQuery(q): RawQuery) -> Response {
    let params = form_bytes(q.unwrap_or_default().as_bytes());
    let result = async {
        let text = match params.get("text") {
            Some(raw) => Some(decode_text(raw, &params)?),
            None => None,
        };
        let from = utf8(&params, "from")?;
        let fields: Vec<(String, String)> =
            ["to", "smsc", "ts", "service", "udh", "coding", "charset"]
                .into_iter()
                .filter_map(|k| {
                    let v = params.get(k)?;
                    (!v.is_empty()).then(|| (k.to_owned(), String::from_utf8_lossy(v).into_owned()))
                })
                .collect();
        let id = utf8(&params, "id")?.filter(|id| !id.is_empty());
        h.source
            .accept(from.as_deref(), text.as_deref(), |m| {
                m.external_id = id;
                m.fields.extend(fields);
            })
            .await
            .map(drop)
    }
    .await;
    answer(result, ())
}

/// A parameter that must be UTF-8 (everything but `text`).
fn utf8(
    params: &HashMap<String, Vec<u8>>,
    name: &'static str,
) -> Result<Option<String>, SourceError> {
    params
        .get(name)
        .map(|v| {
            String::from_utf8(v.clone()).map_err(|_| SourceError::Invalid {
                field: name,
                message: format!("{name} is not UTF-8"),
            })
        })
        .transpose()
}

/// `text` in the charset Kannel names: UTF-8 (coding 0, and UCS-2 with
/// `mo-recode`), UTF-16BE (UCS-2 without it), or Latin-1 (8-bit data, whose
/// bytes are kept one character each).
fn decode_text(raw: &[u8], params: &HashMap<String, Vec<u8>>) -> Result<String, SourceError> {
    let charset = params
        .get("charset")
        .map(|c| String::from_utf8_lossy(c).to_ascii_uppercase())
        .unwrap_or_default();
    let coding = params.get("coding").map(|c| c.as_slice()).unwrap_or(b"0");
    let bad = |why: String| SourceError::Invalid {
        field: "text",
        message: why,
    };
    match charset.as_str() {
        "" | "UTF-8" | "UTF8" if coding != b"1" => String::from_utf8(raw.to_vec())
            .map_err(|e| bad(format!("text is not the UTF-8 its charset says: {e}"))),
        "UTF-16BE" | "UTF-16" | "UCS-2" | "UCS2" => {
            if raw.len() % 2 != 0 {
                return Err(bad(format!(
                    "text in {charset} has an odd number of bytes ({})",
                    raw.len()
                )));
            }
            let units: Vec<u16> = raw
                .chunks_exact(2)
                .map(|p| u16::from_be_bytes([p[0], p[1]]))
                .collect();
            String::from_utf16(&units).map_err(|e| bad(format!("text is not valid {charset}: {e}")))
        }
        // 8-bit data, or Latin-1 text: each byte is the character of that code.
        "8-BIT" | "ISO-8859-1" | "LATIN1" | "" | "UTF-8" | "UTF8" => {
            Ok(raw.iter().map(|&b| b as char).collect())
        }
        other => Err(SourceError::Invalid {
            field: "charset",
            message: format!(
                "charset {other:?} is not one Kannel sends: expected UTF-8, UTF-16BE or 8-BIT"
            ),
        }),
    }
}

async fn dlr(State(h): State<Arc<Hooks>>, RawQuery(q): RawQuery) -> Response {
    let params = form_bytes(q.unwrap_or_default().as_bytes());
    let get = |k: &str| {
        params
            .get(k)
            .map(|v| String::from_utf8_lossy(v).into_owned())
            .filter(|v| !v.is_empty())
    };
    let result = async {
        let message_id = get("message_id").ok_or(SourceError::missing(
            "message_id",
            "our message id, which the dlr-url carries",
        ))?;
        let code = get("status").ok_or(SourceError::missing(
            "status",
            "Kannel's DLR status (%d): 1, 2, 4, 8 or 16",
        ))?;
        let status = match code.as_str() {
            "1" => DeliveryStatus::Delivered,
            "2" | "16" => DeliveryStatus::Failed,
            "4" => DeliveryStatus::Queued,
            "8" => DeliveryStatus::Sent,
            other => {
                return Err(SourceError::Invalid {
                    field: "status",
                    message: format!("DLR status {other:?}: expected 1, 2, 4, 8 or 16"),
                })
            }
        };
        let answer = get("answer");
        let provider_status = match &answer {
            Some(a) => format!("{code} {a}"),
            None => code.clone(),
        };
        let error = (status == DeliveryStatus::Failed).then(|| provider_status.clone());
        h.reports
            .report(Report {
                message_id: Some(message_id),
                provider_id: None,
                identity: get("to"),
                status: Some(status),
                provider_status,
                error,
            })
            .await
            .map(drop)
    }
    .await;
    answer(result, ())
}
