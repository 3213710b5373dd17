//! Kubernetes names: what a stage or a topic is called in the cluster.

use sha1::{Digest, Sha1};

/// The prefix of every object's name and the value of `app.kubernetes.io/name`.
pub const APP: &str = "smsflow";

/// Longest DNS label (Service names, label values).
const MAX_LABEL: usize = 63;

/// A DNS-1123 label made of `s`: lowercase letters, digits and `-`, every
/// other character a `-`, runs of `-` merged, none at either end. Over 63
/// characters, cut with a short hash of `s` so that two long names stay
/// apart. `app:echo` → `app-echo`.
pub fn label(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        let c = c.to_ascii_lowercase();
        let c = if c.is_ascii_lowercase() || c.is_ascii_digit() {
            c
        } else {
            '-'
        };
        if !(c == '-' && (out.is_empty() || out.ends_with('-'))) {
            out.push(c);
        }
    }
    let out = out.trim_end_matches('-').to_owned();
    fit(&out, s, MAX_LABEL)
}

/// `name`, or when longer than `max`, its start and 8 hex digits of the
/// hash of `original`.
pub fn fit(name: &str, original: &str, max: usize) -> String {
    if name.len() <= max {
        return name.to_owned();
    }
    let hash = &hex(original.as_bytes())[..8];
    let keep = name[..max - 9].trim_end_matches('-');
    format!("{keep}-{hash}")
}

/// The Deployment (and Service, PodDisruptionBudget, ScaledObject) name
/// of a stage: `smsflow-<stage as a label>`, short enough that the admin
/// Service's `-admin` suffix still fits in a label.
pub fn unit(stage: &str) -> String {
    let name = format!("{APP}-{}", label(stage));
    fit(&name, stage, MAX_LABEL - "-admin".len())
}

/// Whether `s` may be a Kubernetes object name (a DNS-1123 subdomain:
/// lowercase letters, digits, `-` and `.`, alphanumeric at both ends, at
/// most 253 characters) as it is.
pub fn is_subdomain(s: &str) -> bool {
    let ok_char = |c: char| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '.';
    let alnum = |c: char| c.is_ascii_lowercase() || c.is_ascii_digit();
    !s.is_empty()
        && s.len() <= 253
        && s.chars().all(ok_char)
        && s.starts_with(alnum)
        && s.ends_with(alnum)
        && s.split('.')
            .all(|part| !part.is_empty() && part.starts_with(alnum) && part.ends_with(alnum))
}

/// Lowercase hex of the SHA-1 of `bytes` (content hashes, name suffixes).
pub fn hex(bytes: &[u8]) -> String {
    Sha1::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stage_names_become_labels() {
        assert_eq!(unit("app:echo"), "smsflow-app-echo");
        assert_eq!(unit("backend:My_Twilio"), "smsflow-backend-my-twilio");
        assert_eq!(unit("router-in"), "smsflow-router-in");
        assert_eq!(label("--a::b--"), "a-b");
        let long = format!("app:{}", "x".repeat(100));
        let other = format!("app:{}y", "x".repeat(100));
        assert!(unit(&long).len() <= 57, "{}", unit(&long));
        assert_ne!(unit(&long), unit(&other));
        assert!(label(&long).len() <= 63);
    }

    #[test]
    fn subdomains() {
        for ok in ["sms.inbound", "sms.send.twilio.sent", "a-b"] {
            assert!(is_subdomain(ok), "{ok}");
        }
        for bad in ["sms_inbound", "Sms.In", "a..b", "-a", "a.", ""] {
            assert!(!is_subdomain(bad), "{bad}");
        }
    }
}
