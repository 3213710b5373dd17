//! The small rules several sections share: URLs, Kafka topic names, and
//! texts that may only name `{project}`.

use crate::sms::template;

/// Why `value` is not an http(s) URL.
pub(super) fn url_error(value: &str, example: &str) -> Option<String> {
    match reqwest::Url::parse(value) {
        Ok(u) if matches!(u.scheme(), "http" | "https") => None,
        Ok(u) => Some(format!(
            "{value:?} is a {} URL: expected http:// or https://",
            u.scheme()
        )),
        Err(e) => Some(format!(
            "{value:?} is not a URL ({e}): expected for example {example}"
        )),
    }
}

/// Why a provider URL would send credentials and texts unencrypted: plain
/// `http://` to a host that is not loopback.
pub(super) fn insecure_url(value: &str) -> Option<String> {
    let u = reqwest::Url::parse(value).ok()?;
    if u.scheme() != "http" {
        return None;
    }
    let host = u.host_str()?;
    let loopback = host.eq_ignore_ascii_case("localhost")
        || host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback());
    (!loopback).then(|| {
        format!(
            "{value:?} is plain http:// to a host that is not loopback: use https://, or set send.allow_insecure: true to send credentials and texts unencrypted"
        )
    })
}

/// Kafka's rule for topic names: 1–249 of `[a-zA-Z0-9._-]`.
pub(super) fn topic_name(name: &str, prefix: bool) -> Result<(), String> {
    if name.is_empty() && !prefix {
        return Err("empty topic name".into());
    }
    if name.len() > 249 {
        return Err(format!(
            "topic name {name:?} is longer than Kafka's 249 characters"
        ));
    }
    if let Some(c) = name
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-')))
    {
        return Err(format!(
            "{c:?} in topic name {name:?}: Kafka allows only letters, digits, '.', '_' and '-'"
        ));
    }
    Ok(())
}

/// Why `text` is not a template that uses at most `{project}`, if it is not.
pub(super) fn project_only(text: &str, what: &str) -> Option<String> {
    match template::placeholders(text) {
        Err(why) => Some(why),
        Ok(names) => names
            .iter()
            .find(|n| n.as_str() != "project")
            .map(|n| format!("{{{n}}} in {text:?}: {what} only knows {{project}} (write {{{{ and }}}} for literal braces)")),
    }
}
