//! The sink's side: one `POST /messages` for up to `batch` recipients of
//! one text, and each recipient's outcome read from the reply.

use futures::future::BoxFuture;
use futures::FutureExt;
use reqwest::header::{ACCEPT, AUTHORIZATION};
use serde_json::{json, Map, Value};

use crate::backends::json;
use crate::backends::provider::{call, http_failure, Answer, Attempt, Provider};
use crate::message::OutboundMessage;

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
}
