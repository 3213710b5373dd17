//! Backends: the provider side. Each backend is a *source* (accepts the
//! provider's inbound format, writes `sms.inbound`, answers only after the
//! bus acknowledged) and a *sink* (reads `sms.send.<name>`, delivers, writes
//! `sms.events`).

pub mod tester;

use crate::bus::BusError;

/// Why a source refused an inbound message.
#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    /// The request is wrong: answer 400 naming the field.
    #[error("{field}: {message}")]
    Invalid {
        field: &'static str,
        message: String,
    },
    /// The bus could not store it: answer 503 so the provider retries.
    #[error("cannot store the message now: {0}")]
    Unavailable(#[from] BusError),
}

/// Check a phone number as sources accept it: an optional `+` and 1 to 20 digits.
pub fn check_identity(identity: &str) -> Result<&str, SourceError> {
    let id = identity.trim();
    let digits = id.strip_prefix('+').unwrap_or(id);
    if digits.is_empty() || digits.len() > 20 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err(SourceError::Invalid {
            field: "identity",
            message: format!("{identity:?} is not a phone number: expected digits with an optional leading +, at most 20"),
        });
    }
    Ok(id)
}
