//! What every HTTP endpoint of smsflow shares, whoever serves it: the
//! listener ([`serve`]: limits, timeouts, TLS-free plain HTTP/1.1), the
//! [`guard`] in front of every request (authentication, Host allow-list,
//! CSRF, security headers), form and query parsing, and the JSON error
//! answer. The servers themselves are assembled in [`crate::web::server`].

pub mod guard;
pub mod serve;

use std::collections::HashMap;

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::json;

/// A JSON error answer: `{"error": ..., "field": ...}`.
pub fn error(status: StatusCode, field: Option<&str>, message: impl Into<String>) -> Response {
    let mut body = json!({ "error": message.into() });
    if let Some(f) = field {
        body["field"] = json!(f);
    }
    (status, Json(body)).into_response()
}

/// A query string or form body as its (name, value) byte pairs, in order
/// and with repeats: `+` is a space, `%XX` a byte.
pub fn form_pairs(raw: &[u8]) -> impl Iterator<Item = (Vec<u8>, Vec<u8>)> + '_ {
    let decode = |part: &[u8]| -> Vec<u8> {
        let spaced: Vec<u8> = part
            .iter()
            .map(|&b| if b == b'+' { b' ' } else { b })
            .collect();
        percent_encoding::percent_decode(&spaced).collect()
    };
    raw.split(|&b| b == b'&')
        .filter(|p| !p.is_empty())
        .map(move |pair| {
            let mut kv = pair.splitn(2, |&b| b == b'=');
            let k = decode(kv.next().unwrap_or_default());
            let v = decode(kv.next().unwrap_or_default());
            (k, v)
        })
}

/// A query string or form body as raw bytes per parameter: texts in other
/// charsets than UTF-8 (Kannel's UTF-16BE) survive until their charset is
/// known. The last of repeated names wins.
pub fn form_bytes(raw: &[u8]) -> HashMap<String, Vec<u8>> {
    form_pairs(raw)
        .map(|(k, v)| (String::from_utf8_lossy(&k).into_owned(), v))
        .collect()
}
