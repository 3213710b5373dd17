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
//! **Delivery reports**: `GET /backend/<name>/dlr?message_id=...&secret=...&status=%d&answer=%A&to=%p`,
//! statuses 1 delivered, 2 failed, 4 buffered (queued), 8 SMSC accepted
//! (sent), 16 SMSC rejected (failed).
//!
//! **Authentication**: both URLs must carry the backend's `receive.secret`
//! (`secret=` in the query, which a `get-url` can hold; smsflow puts it in
//! every `dlr-url` it builds) or an `X-Smsflow-Secret` header: `401`
//! without it, `403` with a wrong one, and nothing is stored. Without it
//! anyone could inject messages, or mark a real message failed with a
//! forged report.

use std::collections::HashMap;
use std::sync::Arc;

use axum::extract::{RawQuery, State};
use axum::http::HeaderMap;
use axum::response::Response;
use axum::routing::get;
use axum::Router;
use futures::future::BoxFuture;
use futures::FutureExt;
use percent_encoding::{utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};

use super::provider::{call, Attempt, Provider};
use super::webhook::answer;
use super::{Hooks, Report, SourceError};
use crate::http::form_bytes;
use crate::message::{DeliveryStatus, Encoding, OutboundMessage};
use crate::sms;

/// What a secret may hold unescaped. Validation allows only these, so the
/// secret reaches Kannel as written: a `%` escape would be at risk of being
/// read as one of Kannel's own `%` codes.
const URL_SAFE: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

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
    /// The webhooks' shared secret, which the `dlr-url` carries back.
    pub secret: Option<String>,
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
            // Kannel fills in the %-codes; our own parameter comes first.
            q.push(("dlr-mask", self.dlr_mask.to_string()));
            let secret = match &self.secret {
                Some(s) => format!("&secret={}", utf8_percent_encode(s, URL_SAFE)),
                None => String::new(),
            };
            q.push((
                "dlr-url",
                format!(
                    "{}?message_id={}{secret}&status=%d&answer=%A&to=%p&ts=%T&smsc=%i",
                    self.dlr_url,
                    utf8_percent_encode(&msg.id, NON_ALPHANUMERIC)
                ),
            ));
        }
        q
    }
}

impl Provider for Kannel {
    fn send_one<'a>(&'a self, msg: &'a OutboundMessage) -> BoxFuture<'a, Attempt> {
        async move {
            let request = self.client.get(&self.sendsms_url).query(&self.query(msg));
            match call(request).await {
                Err(failed) => failed,
                // `202 0: Accepted for delivery`, `202 3: Queued for later delivery`.
                Ok(a) if a.status.is_success() => Attempt::Accepted {
                    provider_id: None,
                    status: format!("{} {}", a.status.as_u16(), a.body.trim()),
                },
                Ok(a) => a.failure(),
            }
        }
        .boxed()
    }
}

/// `GET /backend/<name>/` (get-url) and `GET /backend/<name>/dlr` (dlr-url).
pub fn routes(name: &str, hooks: Arc<Hooks>) -> Router {
    Router::new()
        .route(&format!("/backend/{name}/"), get(inbound))
        .route(&format!("/backend/{name}/dlr"), get(dlr))
        .with_state(hooks)
}

async fn inbound(
    State(h): State<Arc<Hooks>>,
    headers: HeaderMap,
    RawQuery(q): RawQuery,
) -> Response {
    if let Err(e) = h.auth.check(&headers, q.as_deref()) {
        return answer(Err(e), ());
    }
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
            .map_err(|e| e.renamed("identity", "from"))
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
            if !raw.len().is_multiple_of(2) {
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

async fn dlr(State(h): State<Arc<Hooks>>, headers: HeaderMap, RawQuery(q): RawQuery) -> Response {
    if let Err(e) = h.auth.check(&headers, q.as_deref()) {
        return answer(Err(e), ());
    }
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
            .map_err(|e| e.renamed("identity", "to").renamed("status", "answer"))
    }
    .await;
    answer(result, ())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::message::Connection;

    fn kannel() -> Kannel {
        Kannel {
            client: reqwest::Client::new(),
            sendsms_url: "http://k/cgi-bin/sendsms".into(),
            username: "u".into(),
            password: "p".into(),
            from: Some("15000".into()),
            smsc: None,
            dlr_mask: 31,
            dlr_url: "https://sms.example.org/backend/kannel/dlr".into(),
            secret: None,
        }
    }

    #[test]
    fn sendsms_asks_for_ucs2_only_when_the_text_needs_it() {
        let k = kannel();
        let mut msg =
            OutboundMessage::new(Connection::new("kannel", "+255700000001"), "Habari, ñ €");
        let q: HashMap<_, _> = k.query(&msg).into_iter().collect();
        assert_eq!(q["charset"], "UTF-8");
        assert!(!q.contains_key("coding"), "ñ and € are GSM-7");
        assert_eq!(q["to"], "+255700000001");
        assert_eq!(q["from"], "15000");
        assert_eq!(q["dlr-mask"], "31");
        let id = msg.id.replace('-', "%2D");
        assert_eq!(
            q["dlr-url"],
            format!("https://sms.example.org/backend/kannel/dlr?message_id={id}&status=%d&answer=%A&to=%p&ts=%T&smsc=%i")
        );
        msg.text = "Habari 😀".into();
        let q: HashMap<_, _> = k.query(&msg).into_iter().collect();
        assert_eq!(q["coding"], "2");
        // The secret goes into the dlr-url, so that Kannel's reports carry it.
        let k = Kannel {
            secret: Some("s3cret-_.~Kannel0".into()),
            ..kannel()
        };
        let q: HashMap<_, _> = k.query(&msg).into_iter().collect();
        assert_eq!(
            q["dlr-url"],
            format!("https://sms.example.org/backend/kannel/dlr?message_id={id}&secret=s3cret-_.~Kannel0&status=%d&answer=%A&to=%p&ts=%T&smsc=%i")
        );
        let k = Kannel {
            dlr_mask: 0,
            ..kannel()
        };
        assert!(!k.query(&msg).iter().any(|(n, _)| n.starts_with("dlr")));
    }

    fn params(pairs: &[(&str, &[u8])]) -> HashMap<String, Vec<u8>> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_vec()))
            .collect()
    }

    #[test]
    fn text_is_read_in_the_charset_kannel_names() {
        let utf16: Vec<u8> = "ñ 😀".encode_utf16().flat_map(u16::to_be_bytes).collect();
        let p = params(&[("charset", b"UTF-16BE"), ("coding", b"2")]);
        assert_eq!(decode_text(&utf16, &p).unwrap(), "ñ 😀");
        let p = params(&[("charset", b"UTF-8"), ("coding", b"0")]);
        assert_eq!(
            decode_text("two  spaces\n".as_bytes(), &p).unwrap(),
            "two  spaces\n"
        );
        assert!(matches!(
            decode_text(&[0xff, 0xfe], &p),
            Err(SourceError::Invalid { field: "text", .. })
        ));
        let p = params(&[("charset", b"8-BIT"), ("coding", b"1")]);
        assert_eq!(
            decode_text(&[b'H', 0x00, 0xff], &p).unwrap(),
            "H\u{0}\u{ff}"
        );
        let p = params(&[("charset", b"UTF-16BE")]);
        assert!(decode_text(&[0x00], &p).is_err(), "odd length");
        let p = params(&[("charset", b"EBCDIC")]);
        assert!(matches!(
            decode_text(b"x", &p),
            Err(SourceError::Invalid {
                field: "charset",
                ..
            })
        ));
    }
}
