//! Webhook signatures: `X-Twilio-Signature` computed as Twilio does, and
//! checked against a request's URL and parameters.

use std::collections::{BTreeMap, BTreeSet};

use axum::http::HeaderMap;
use base64::prelude::{Engine as _, BASE64_STANDARD};
use hmac::{Hmac, KeyInit, Mac};
use sha1::Sha1;

use crate::backends::SourceError;

/// The header Twilio signs webhooks with.
pub const SIGNATURE_HEADER: &str = "X-Twilio-Signature";

/// The header of webhooks signed with a Webhooks shared key instead.
const SETTINGS_HEADER: &str = "X-Twilio-Webhooks-Signature-Settings";

type HmacSha1 = Hmac<Sha1>;

/// Refuse (403) a request whose `X-Twilio-Signature` is missing or not
/// the auth token's for `url` and `params`.
pub(super) fn check_signature(
    auth_token: &str,
    url: &str,
    headers: &HeaderMap,
    params: &[(String, String)],
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
            .any(|u| mac(auth_token, u, params).verify_slice(&tag).is_ok());
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

#[cfg(test)]
mod tests {
    use super::*;

    fn pairs(p: &[(&str, &str)]) -> Vec<(String, String)> {
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
}
