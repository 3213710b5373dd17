//! What a backend's webhook answers: a stored message or report, or the
//! failure as the HTTP status a provider understands (400 naming the field,
//! 401/403 for missing or wrong credentials, 413, 503 so that it retries).

use std::collections::HashMap;

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};

use crate::bus::BusError;
use crate::http::{error, form_bytes};

/// Why a source refused an inbound message.
#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    /// The request is wrong: answer 400 naming the field.
    #[error("{field}: {message}")]
    Invalid {
        field: &'static str,
        message: String,
    },
    /// The request carries no credential (no secret, no basic auth): answer
    /// 401, asking for basic auth when the backend takes it.
    #[error("{message}")]
    Unauthorized { message: String, basic: bool },
    /// The request is not the provider's (a bad signature, a wrong secret): answer 403.
    #[error("{0}")]
    Forbidden(String),
    /// The text is longer than the backend's `receive.max_text`: answer 413
    /// naming the limit.
    #[error("{field}: {message}")]
    TooLarge { field: String, message: String },
    /// An id or another field is longer than its `receive:` limit: answer
    /// 400 naming the field and the limit.
    #[error("{field}: {message}")]
    TooLong { field: String, message: String },
    /// The bus could not store it: answer 503 so the provider retries.
    #[error("cannot store the message now: {0}")]
    Unavailable(#[from] BusError),
}

impl SourceError {
    /// `field` is missing from the request.
    pub fn missing(field: &'static str, what: &str) -> SourceError {
        SourceError::Invalid {
            field,
            message: format!("missing field {field}: {what}"),
        }
    }

    /// The error about `from` (the shared source's name for a field, such
    /// as `identity`) under the name the provider gave it (`to`).
    pub fn renamed(self, from: &str, to: &'static str) -> SourceError {
        match self {
            SourceError::Invalid { field, message } if field == from => {
                SourceError::Invalid { field: to, message }
            }
            SourceError::TooLarge { field, message } if field == from => SourceError::TooLarge {
                field: to.to_owned(),
                message,
            },
            SourceError::TooLong { field, message } if field == from => SourceError::TooLong {
                field: to.to_owned(),
                message,
            },
            e => e,
        }
    }
}

/// 400 naming the field for a bad request, 403 for a forged one, 503 when
/// the bus cannot store it (so the provider retries).
pub fn source_error(e: SourceError) -> Response {
    match e {
        SourceError::Invalid { field, message } => {
            error(StatusCode::BAD_REQUEST, Some(field), message)
        }
        SourceError::Unauthorized { message, basic } => {
            let mut r = error(StatusCode::UNAUTHORIZED, None, message);
            if basic {
                r.headers_mut().insert(
                    axum::http::header::WWW_AUTHENTICATE,
                    axum::http::HeaderValue::from_static("Basic realm=\"smsflow webhooks\""),
                );
            }
            r
        }
        SourceError::Forbidden(message) => error(StatusCode::FORBIDDEN, None, message),
        SourceError::TooLarge { field, message } => {
            error(StatusCode::PAYLOAD_TOO_LARGE, Some(&field), message)
        }
        SourceError::TooLong { field, message } => {
            error(StatusCode::BAD_REQUEST, Some(&field), message)
        }
        e @ SourceError::Unavailable(_) => {
            error(StatusCode::SERVICE_UNAVAILABLE, None, e.to_string())
        }
    }
}

/// [`form_bytes`] with every value UTF-8, or the name of the first that is not.
pub fn form_text(raw: &[u8]) -> Result<HashMap<String, String>, SourceError> {
    form_bytes(raw)
        .into_iter()
        .map(|(k, v)| match String::from_utf8(v) {
            Ok(v) => Ok((k, v)),
            Err(_) => Err(SourceError::Invalid {
                field: "charset",
                message: format!("parameter {k} is not UTF-8"),
            }),
        })
        .collect()
}

/// The answer to a stored inbound message or report, or to its failure.
pub fn answer(result: Result<(), SourceError>, ok: impl IntoResponse) -> Response {
    match result {
        Ok(()) => ok.into_response(),
        Err(e) => source_error(e),
    }
}
