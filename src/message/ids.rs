//! Message ids (random, and derived from what caused a message, so that
//! doing the same work again writes the same ids) and the clock.

use std::time::{SystemTime, UNIX_EPOCH};

use sha1::{Digest as _, Sha1};

/// The id of campaign `campaign`'s message to `phone`: the same on every
/// run and every replica, so no recipient is sent one twice.
pub fn campaign_message_id(campaign: &str, phone: &str) -> String {
    derived_id(phone, &format!("campaign:{campaign}"), 0)
}

/// A fresh message id: a random UUID in hyphenated text form.
pub fn new_id() -> String {
    uuid::Uuid::new_v4().to_string()
}

/// The id of the `n`-th message `app` wrote in answer to message `cause`:
/// a UUID v5 of the three, so that handling the same message again (after a
/// crash, at least once) writes the same ids, and sinks can tell a repeat
/// from a new message.
///
/// Hashed here with the `sha1` crate, which uses the CPU's SHA instructions
/// where it has them, rather than by `uuid::Uuid::new_v5` (a portable SHA-1):
/// the same ids, at a fraction of the cost on the router's hot path.
pub fn derived_id(cause: &str, app: &str, n: usize) -> String {
    let hash = Sha1::new()
        .chain_update(NAMESPACE.as_bytes())
        .chain_update(cause)
        .chain_update("/")
        .chain_update(app)
        .chain_update("/")
        .chain_update(itoa::Buffer::new().format(n))
        .finalize();
    let mut bytes = [0u8; 16];
    bytes.copy_from_slice(&hash[..16]);
    uuid::Builder::from_sha1_bytes(bytes)
        .into_uuid()
        .to_string()
}

/// The namespace of [`derived_id`]'s UUIDs.
const NAMESPACE: uuid::Uuid = uuid::Uuid::from_u128(0x5f1c_0c3e_8a4b_4d2e_9b1a_5d6f_7e8f_9a0b);

/// The id of the inbound message that backend `backend`'s provider calls
/// `external_id` (Kannel's `%I`, Twilio's `MessageSid`, ...): a provider
/// that sends the same message again (it got no answer: smsflow was killed
/// after storing it) gives it the same id, so the replies derived from it
/// are the same messages and each sink sends them once, also after a
/// restart has emptied the dedupe window's memory.
pub fn inbound_id(backend: &str, external_id: &str) -> String {
    derived_id(external_id, &format!("inbound:{backend}"), 0)
}

/// Milliseconds since the Unix epoch, now.
pub fn now_millis() -> i64 {
    // A clock before 1970 is a broken machine, not input: read it as 0.
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The ids are those `uuid::Uuid::new_v5` gives (the ids earlier
    /// versions wrote): a change would make every repeat look new.
    #[test]
    fn derived_ids_are_the_uuid_v5_of_cause_app_and_n() {
        for (cause, app, n) in [("m1", "echo", 0), ("", "", 7), ("é/x", "a/b", usize::MAX)] {
            let name = format!("{cause}/{app}/{n}");
            let v5 = uuid::Uuid::new_v5(&NAMESPACE, name.as_bytes()).to_string();
            assert_eq!(derived_id(cause, app, n), v5, "{name}");
        }
        assert_eq!(
            derived_id("m1", "echo", 0),
            "f97c14e7-21f5-5314-9522-a2f6129f6ee5" // Python: uuid.uuid5(NAMESPACE, "m1/echo/0")
        );
    }
}
