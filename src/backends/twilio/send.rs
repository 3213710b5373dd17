//! The sink's side: Twilio's Messages API request for a message, and its
//! reply (or error) as an [`Attempt`].

use futures::future::BoxFuture;
use futures::FutureExt;
use percent_encoding::{utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};
use reqwest::StatusCode;
use serde_json::Value;

use crate::backends::provider::{call, Answer, Attempt, Provider};
use crate::message::OutboundMessage;

/// What a query value keeps unencoded: RFC 3986's unreserved characters.
const QUERY_VALUE: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

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
pub(super) fn describe(code: Option<String>, message: Option<String>) -> Option<String> {
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
