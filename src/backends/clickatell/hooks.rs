//! What the callbacks need, and how one is proved (`apiKey`, a secret or
//! basic auth) before its body is read; Clickatell's numbers as identities.

use axum::http::HeaderMap;
use serde_json::{Map, Value};

use crate::backends::auth::{Shown, WebhookAuth};
use crate::backends::{json, Reports, Source, SourceError};

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
/// Clickatell gives numbers in international format without the `+`: add it,
/// so that identities are E.164 like other backends'. Short codes and
/// numbers starting with `0` stay as they are.
pub(super) fn international(number: &str) -> String {
    let n = number.trim();
    if n.len() > 5 && !n.starts_with('0') && n.bytes().all(|b| b.is_ascii_digit()) {
        format!("+{n}")
    } else {
        n.to_owned()
    }
}

/// The callback's body as a JSON object, once the callback is proved
/// (a forgery gets 401 or 403 whatever its body).
pub(super) fn checked_body(
    h: &Hooks,
    headers: &HeaderMap,
    query: Option<&str>,
    body: &[u8],
) -> Result<Map<String, Value>, SourceError> {
    let obj = json::object(body);
    h.check(headers, query, obj.as_ref().ok())?;
    obj
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identities_get_their_plus() {
        assert_eq!(international("255712345678"), "+255712345678");
        assert_eq!(international("+255712345678"), "+255712345678");
        assert_eq!(international("12345"), "12345");
        assert_eq!(international("0712345678"), "0712345678");
    }
}
