//! Twilio's Programmable Messaging (REST API `2010-04-01`; signatures as the
//! official helper library's `RequestValidator` computes and checks them).
//!
//! **Inbound**: in the Twilio console, a number's (or Messaging Service's)
//! "A message comes in" webhook is `POST <public url>/backend/<name>/`, a
//! form with `From`, `To`, `Body`, `MessageSid` (older: `SmsSid`),
//! `AccountSid`, `NumSegments`, `MessagingServiceSid`, `NumMedia`, ... It is
//! answered `200` with empty TwiML (`text/xml`, `<Response></Response>`: no
//! reply from Twilio itself; replies go out through the API) once the
//! message is on the bus; `400` naming the field (`From`, `Body`,
//! `MessageSid`, `Content-Type`, ...) for a bad request, `403` for a missing
//! or wrong signature, `503` when the bus cannot store it (Twilio retries).
//! `From` is the identity and `Body` the text, exactly as sent (Twilio
//! decodes GSM-7 and UCS-2; the form carries UTF-8). `MessageSid` is the
//! message's `external_id`, so a webhook Twilio repeats is stored once.
//! Every other parameter is kept in the message's `fields`, its name in
//! lower snake case: `To` → `to`, `AccountSid` → `account_sid`,
//! `NumSegments` → `num_segments`, `MessagingServiceSid` →
//! `messaging_service_sid`, `MediaUrl0` → `media_url0`, `FromCountry` →
//! `from_country` (empty values are left out). An MMS without text has an
//! empty `Body` and is refused (`400`, as RapidSMS's rtwilio does).
//!
//! **Outbound**: one request per message, `POST
//! <api_url>/2010-04-01/Accounts/<account_sid>/Messages.json` with HTTP
//! basic auth (account SID, auth token) and the form `To`, `From` or
//! `MessagingServiceSid`, `Body` (UTF-8 as it is: Twilio picks GSM-7 or
//! UCS-2 and splits segments itself) and `StatusCallback`
//! (`<public url>/backend/<name>/status?message_id=<our id>`). A 2xx reply's
//! `sid` is the provider id and its `status` (`queued`, `accepted`, ...)
//! the provider status; a reply whose `status` is `failed`, `undelivered`
//! or `canceled`, or that has an `error_code`, is a permanent failure. Twilio's errors
//! (`{"code": 21211, "message": "...", "more_info": "...", "status": 400}`)
//! become `<code>: <message>`; a 4xx is permanent, 408, 429 and 5xx are
//! retried (`Retry-After` honoured).
//!
//! **Status callbacks**: `POST <public url>/backend/<name>/status?message_id=...`
//! with `MessageSid`, `MessageStatus` (or `SmsSid`, `SmsStatus`), `To`,
//! `ErrorCode`, `ErrorMessage`. `queued`, `accepted`, `scheduled` and
//! `sending` are queued; `sent` sent; `delivered` and `read` delivered;
//! `undelivered`, `failed` and `canceled` failed (the error is
//! `<ErrorCode>: <ErrorMessage>`); any other status gets `400`. The
//! provider status is `MessageStatus`, followed by ` <ErrorCode>` when there
//! is one. Without `message_id` in the URL, our message is found by its
//! `MessageSid` in the sink's sent-log. Answered `200` with an empty body
//! once the event is stored; a repeated callback is answered and not stored
//! twice.
//!
//! **Signatures** (when `validate`, the default): `X-Twilio-Signature` must
//! be base64(HMAC-SHA1(auth token, URL + each POST parameter's name and
//! value)), names sorted, a name's distinct values sorted. The URL is
//! `http.public_url` followed by the request's path and query: it must be
//! the URL as configured in Twilio, also behind a proxy. As the official
//! library does, the URL is tried without its port and with it (the
//! scheme's default port when it names none). Webhooks signed with a
//! Webhooks shared key (`X-Twilio-Webhooks-Signature-Settings`) are
//! refused: only the auth token signature is supported.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{OriginalUri, State};
use axum::http::{header, HeaderMap, Uri};
use axum::response::Response;
use axum::routing::post;
use axum::Router;
use base64::prelude::{Engine as _, BASE64_STANDARD};
use futures::future::BoxFuture;
use futures::FutureExt;
use hmac::{Hmac, KeyInit, Mac};
use percent_encoding::{utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};
use reqwest::StatusCode;
use serde_json::Value;
use sha1::Sha1;

use super::provider::{call, Answer, Attempt, Provider};
use super::webhook::answer;
use super::{Report, Reports, Source, SourceError};
use crate::message::{DeliveryStatus, OutboundMessage};

/// The header Twilio signs webhooks with.
pub const SIGNATURE_HEADER: &str = "X-Twilio-Signature";

/// The header of webhooks signed with a Webhooks shared key instead.
const SETTINGS_HEADER: &str = "X-Twilio-Webhooks-Signature-Settings";

/// The answer to an inbound message: Twilio sends nothing back.
pub const EMPTY_TWIML: &str = r#"<?xml version="1.0" encoding="UTF-8"?><Response></Response>"#;

/// What a query value keeps unencoded: RFC 3986's unreserved characters.
const QUERY_VALUE: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

type HmacSha1 = Hmac<Sha1>;

/// How the sink reaches Twilio's Messages API.
pub struct Twilio {
    pub client: reqwest::Client,
    /// Default `https://api.twilio.com`, without a trailing `/`.
    pub api_url: String,
    pub account_sid: String,
    pub auth_token: String,
    pub from: Option<String>,
    pub messaging_service_sid: Option<String>,
    /// `<public url>/backend/<name>/status`.
    pub status_callback: String,
}

impl Twilio {
    /// `<api_url>/2010-04-01/Accounts/<account_sid>/Messages.json`.
    pub fn messages_url(&self) -> String {
        format!(
            "{}/2010-04-01/Accounts/{}/Messages.json",
            self.api_url,
            utf8_percent_encode(&self.account_sid, QUERY_VALUE)
        )
    }

    /// The Messages API form for `msg`.
    pub fn form(&self, msg: &OutboundMessage) -> Vec<(&'static str, String)> {
        let mut f = vec![("To", msg.connection.identity.clone())];
        if let Some(from) = &self.from {
            f.push(("From", from.clone()));
        }
        if let Some(sid) = &self.messaging_service_sid {
            f.push(("MessagingServiceSid", sid.clone()));
        }
        f.push(("Body", msg.text.clone()));
        // Not through a URL parser: Twilio signs the callback URL exactly as
        // given here, and the webhook checks it against `public` as written.
        let sep = if self.status_callback.contains('?') {
            '&'
        } else {
            '?'
        };
        f.push((
            "StatusCallback",
            format!(
                "{}{sep}message_id={}",
                self.status_callback,
                utf8_percent_encode(&msg.id, QUERY_VALUE)
            ),
        ));
        f
    }

    async fn request(&self, msg: &OutboundMessage) -> Attempt {
        let request = self
            .client
            .post(self.messages_url())
            .basic_auth(&self.account_sid, Some(&self.auth_token))
            .form(&self.form(msg));
        match call(request).await {
            Err(failed) => failed,
            Ok(a) if a.status.is_success() => created(a.status, &a.body),
            Ok(a) => refused(&a),
        }
    }
}

impl Provider for Twilio {
    fn send_one<'a>(&'a self, msg: &'a OutboundMessage) -> BoxFuture<'a, Attempt> {
        self.request(msg).boxed()
    }
}

/// A JSON member as text: a non-empty string, or a number (`error_code`
/// and `code` are numbers).
fn member(v: &Value, key: &str) -> Option<String> {
    match v.get(key)? {
        Value::String(s) if !s.trim().is_empty() => Some(s.trim().to_owned()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

/// `<code>: <message>`, or what there is of it.
fn describe(code: Option<String>, message: Option<String>) -> Option<String> {
    match (code, message) {
        (Some(c), Some(m)) => Some(format!("{c}: {m}")),
        (c, m) => c.or(m),
    }
}

/// A 2xx reply: the created message resource (`sid`, `status`,
/// `error_code`, `error_message`).
fn created(http: StatusCode, body: &str) -> Attempt {
    // Twilio took the request: a body it garbled is still a message it has
    // (sending it again would send it twice).
    let reply = serde_json::from_str::<Value>(body).unwrap_or(Value::Null);
    let sid = member(&reply, "sid");
    let status = member(&reply, "status").unwrap_or_else(|| http.as_u16().to_string());
    let code = member(&reply, "error_code");
    if code.is_some() || matches!(status.as_str(), "failed" | "undelivered" | "canceled") {
        let mut error = describe(code, member(&reply, "error_message"))
            .unwrap_or_else(|| format!("Twilio status {status}"));
        if let Some(sid) = sid {
            error.push_str(&format!(" (message {sid})"));
        }
        Attempt::Rejected { error, status }
    } else {
        Attempt::Accepted {
            provider_id: sid,
            status,
        }
    }
}

/// A failed reply: transient or permanent as [`http_failure`] says, with
/// Twilio's error (`code`, `message`) as the error when it gave one.
fn refused(answer: &Answer) -> Attempt {
    let http = answer.status;
    let attempt = answer.failure();
    let reply = serde_json::from_str::<Value>(&answer.body).unwrap_or(Value::Null);
    let Some(error) = describe(member(&reply, "code"), member(&reply, "message")) else {
        return attempt;
    };
    match attempt {
        Attempt::Rejected { status, .. } => Attempt::Rejected { error, status },
        Attempt::Retry { after, .. } => Attempt::Retry {
            error: format!("HTTP {http}: {error}"),
            after,
        },
        accepted => accepted,
    }
}

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
        check_signature(h, &format!("{}{path}", h.public), headers, &params)?;
    }
    Ok(params)
}

/// Refuse (403) a request whose `X-Twilio-Signature` is missing or not
/// the auth token's for `url` and `params`.
fn check_signature(
    h: &Hooks,
    url: &str,
    headers: &HeaderMap,
    params: &Params,
) -> Result<(), SourceError> {
    if let Some(settings) = headers.get(SETTINGS_HEADER) {
        return Err(SourceError::Forbidden(format!(
            "this webhook is signed with a Webhooks shared key ({SETTINGS_HEADER}: {}); only the auth token signature is supported: remove the Webhook Rule that matches {url}",
            String::from_utf8_lossy(settings.as_bytes())
        )));
    }
    let Some(given) = headers.get(SIGNATURE_HEADER) else {
        return Err(SourceError::Forbidden(format!(
            "missing header {SIGNATURE_HEADER}: webhooks must be signed by Twilio"
        )));
    };
    let tag = BASE64_STANDARD.decode(given.as_bytes()).unwrap_or_default();
    let valid = !tag.is_empty()
        && port_variants(url)
            .iter()
            .any(|u| mac(&h.auth_token, u, params).verify_slice(&tag).is_ok());
    if valid {
        Ok(())
    } else {
        tracing::warn!(%url, "webhook with a wrong X-Twilio-Signature refused");
        Err(SourceError::Forbidden(format!(
            "{SIGNATURE_HEADER} does not match: expected the auth token's signature of {url} and the POST parameters (http.public_url must be the URL configured in Twilio)"
        )))
    }
}

/// The string Twilio signs: `url`, then each parameter's name and value,
/// names sorted, and a name's distinct values sorted (so an identical
/// pair sent twice counts once, as in the official library).
fn signed_text(url: &str, params: &[(String, String)]) -> String {
    let mut sorted: BTreeMap<&str, BTreeSet<&str>> = BTreeMap::new();
    for (k, v) in params {
        sorted.entry(k).or_default().insert(v);
    }
    let mut s = url.to_owned();
    for (k, values) in sorted {
        for v in values {
            s.push_str(k);
            s.push_str(v);
        }
    }
    s
}

fn mac(auth_token: &str, url: &str, params: &[(String, String)]) -> HmacSha1 {
    // HMAC takes a key of any length: this never fails.
    let mut mac = HmacSha1::new_from_slice(auth_token.as_bytes()).expect("any key length");
    mac.update(signed_text(url, params).as_bytes());
    mac
}

/// The `X-Twilio-Signature` Twilio computes for a POST of `params` to
/// `url` (the full URL, query included) with `auth_token`.
pub fn signature(auth_token: &str, url: &str, params: &[(String, String)]) -> String {
    BASE64_STANDARD.encode(mac(auth_token, url, params).finalize().into_bytes())
}

/// `url` without its port, and with it (the scheme's default port when it
/// names none): the two URLs the official `RequestValidator.validate`
/// tries, since Twilio signs some URLs with the port and some without.
fn port_variants(url: &str) -> [String; 2] {
    let Some(scheme_end) = url.find("://") else {
        return [url.to_owned(), url.to_owned()];
    };
    let start = scheme_end + 3;
    let end = url[start..]
        .find(['/', '?', '#'])
        .map_or(url.len(), |i| start + i);
    // The host (after any user info); a port is after its last `:`, unless
    // that `:` is inside an IPv6 address's brackets.
    let host = start + url[start..end].rfind('@').map_or(0, |i| i + 1);
    let colon = url[host..end]
        .rfind(':')
        .map(|i| host + i)
        .filter(|&i| !url[i..end].contains(']'));
    let port = colon.and_then(|i| url[i + 1..end].parse::<u16>().ok().filter(|&p| p != 0));
    match (colon, port) {
        (Some(i), Some(_)) => [format!("{}{}", &url[..i], &url[end..]), url.to_owned()],
        _ => {
            let default = if url[..scheme_end].eq_ignore_ascii_case("https") {
                443
            } else {
                80
            };
            [
                url.to_owned(),
                format!("{}:{default}{}", &url[..end], &url[end..]),
            ]
        }
    }
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

    fn refused_with(
        status: StatusCode,
        headers: &reqwest::header::HeaderMap,
        body: &str,
    ) -> Attempt {
        refused(&Answer {
            status,
            headers: headers.clone(),
            body: body.into(),
        })
    }
    use reqwest::header::{HeaderValue, RETRY_AFTER};
    use std::time::Duration;

    fn pairs(p: &[(&str, &str)]) -> Params {
        p.iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn the_documented_signature() {
        let params = pairs(&[
            ("CallSid", "CA1234567890ABCDE"),
            ("Caller", "+14158675309"),
            ("Digits", "1234"),
            ("From", "+14158675309"),
            ("To", "+18005551212"),
        ]);
        let url = "https://mycompany.com/myapp.php?foo=1&bar=2";
        assert_eq!(
            signature("12345", url, &params),
            "RSOYDt4T1cUTdK1PDd93/VVr8B8="
        );
        // The order parameters come in does not matter.
        let mut reversed = params.clone();
        reversed.reverse();
        assert_eq!(
            signature("12345", url, &reversed),
            "RSOYDt4T1cUTdK1PDd93/VVr8B8="
        );
    }

    #[test]
    fn signed_text_sorts_names_then_distinct_values() {
        let p = pairs(&[("b", "2"), ("a", "z"), ("a", "y"), ("B", ""), ("a", "z")]);
        assert_eq!(signed_text("u", &p), "uBayazb2");
    }

    #[test]
    fn urls_with_and_without_their_port() {
        assert_eq!(
            port_variants("https://sms.example.org/hooks/backend/t/?a=1"),
            [
                "https://sms.example.org/hooks/backend/t/?a=1".to_owned(),
                "https://sms.example.org:443/hooks/backend/t/?a=1".to_owned()
            ]
        );
        assert_eq!(
            port_variants("http://u:p@10.0.0.1:8080/x"),
            [
                "http://u:p@10.0.0.1/x".to_owned(),
                "http://u:p@10.0.0.1:8080/x".to_owned()
            ]
        );
        assert_eq!(
            port_variants("http://[::1]"),
            ["http://[::1]".to_owned(), "http://[::1]:80".to_owned()]
        );
        assert_eq!(
            port_variants("http://[::1]:81?q"),
            ["http://[::1]?q".to_owned(), "http://[::1]:81?q".to_owned()]
        );
        assert_eq!(port_variants("nonsense"), ["nonsense", "nonsense"]);
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
    fn the_request_form() {
        let mut t = Twilio {
            client: reqwest::Client::new(),
            api_url: "https://api.twilio.com".into(),
            account_sid: "AC1".into(),
            auth_token: "t".into(),
            from: Some("+15005550006".into()),
            messaging_service_sid: None,
            status_callback: "https://sms.example.org/backend/twilio/status".into(),
        };
        let mut msg = OutboundMessage::new(
            crate::message::Connection::new("twilio", "+255700000001"),
            "Habari, ñ € 😀",
        );
        msg.id = "a b-c".into();
        assert_eq!(
            t.messages_url(),
            "https://api.twilio.com/2010-04-01/Accounts/AC1/Messages.json"
        );
        assert_eq!(
            t.form(&msg),
            vec![
                ("To", "+255700000001".to_owned()),
                ("From", "+15005550006".to_owned()),
                ("Body", "Habari, ñ € 😀".to_owned()),
                (
                    "StatusCallback",
                    "https://sms.example.org/backend/twilio/status?message_id=a%20b-c".to_owned()
                ),
            ]
        );
        t.from = None;
        t.messaging_service_sid = Some("MG1".into());
        assert_eq!(t.form(&msg)[1], ("MessagingServiceSid", "MG1".to_owned()));
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

    #[test]
    fn replies_become_attempts() {
        assert_eq!(
            created(
                StatusCode::CREATED,
                r#"{"sid": "SM1", "status": "queued", "error_code": null, "error_message": null}"#
            ),
            Attempt::Accepted {
                provider_id: Some("SM1".into()),
                status: "queued".into()
            }
        );
        assert_eq!(
            created(
                StatusCode::CREATED,
                r#"{"sid": "SM2", "status": "failed", "error_code": 30007, "error_message": "Carrier violation"}"#
            ),
            Attempt::Rejected {
                error: "30007: Carrier violation (message SM2)".into(),
                status: "failed".into()
            }
        );
        assert_eq!(
            created(StatusCode::OK, "not json"),
            Attempt::Accepted {
                provider_id: None,
                status: "200".into()
            }
        );
        let none = reqwest::header::HeaderMap::new();
        assert_eq!(
            refused_with(
                StatusCode::BAD_REQUEST,
                &none,
                r#"{"code": 21211, "message": "The 'To' number +1 is not a valid phone number.", "more_info": "https://www.twilio.com/docs/errors/21211", "status": 400}"#
            ),
            Attempt::Rejected {
                error: "21211: The 'To' number +1 is not a valid phone number.".into(),
                status: "400".into()
            }
        );
        let mut h = reqwest::header::HeaderMap::new();
        h.insert(RETRY_AFTER, HeaderValue::from_static("1"));
        assert_eq!(
            refused_with(
                StatusCode::TOO_MANY_REQUESTS,
                &h,
                r#"{"code": 20429, "message": "Too Many Requests", "status": 429}"#
            ),
            Attempt::Retry {
                error: "HTTP 429 Too Many Requests: 20429: Too Many Requests".into(),
                after: Some(Duration::from_secs(1))
            }
        );
        assert!(matches!(
            refused_with(StatusCode::SERVICE_UNAVAILABLE, &none, "<html>down</html>"),
            Attempt::Retry { after: None, .. }
        ));
        assert!(matches!(
            refused_with(StatusCode::UNAUTHORIZED, &none, ""),
            Attempt::Rejected { .. }
        ));
    }
}
