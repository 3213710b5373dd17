//! `backends:`: at least one, each named once, its URLs, credentials and
//! send/receive settings, and who may call its webhooks.

use std::collections::HashMap;

use crate::config::backends::Backend;
use crate::config::node::{Kind, Node, Path};
use crate::config::types::Pipeline;
use crate::sms::template;

use super::rules::{insecure_url, topic_name, url_error};

/// Every backend: declared, named once, and each well formed.
pub(super) fn check(p: &Pipeline, root: &Node, report: &mut impl FnMut(Path, String)) {
    let top = Path::default();
    let t = &p.topics;
    let backends = top.key("backends");
    // Only when the file declares none: items that failed to read were reported already.
    let declared = match root.get(&backends).map(|n| &n.kind) {
        Some(Kind::Seq(items)) => items.len(),
        _ => 0,
    };
    if declared == 0 {
        report(backends.clone(), "no backend: inbound messages have no source and replies nowhere to go; add one, for example `- type: tester`".into());
    }
    let mut seen: HashMap<&str, usize> = HashMap::new();
    for (i, b) in p.backends.iter().enumerate() {
        if let Some(first) = seen.insert(b.name(), i) {
            report(backends.index(i).key("name"), format!("duplicate backend name {:?} (also backends[{first}]): each backend needs its own name", b.name()));
        }
        check_backend(b, &backends.index(i), report);
        check_webhook_auth(b, p.http.listen, &backends.index(i), report);
        if let Err(why) = topic_name(&t.send(b.name()), false) {
            report(
                backends.index(i).key("name"),
                format!("backend name {:?} makes a bad topic name: {why}", b.name()),
            );
        }
    }
}

/// A backend's URLs, credentials and send/receive settings.
fn check_backend(b: &Backend, at: &Path, report: &mut impl FnMut(Path, String)) {
    let allow_insecure = b.sending().is_some_and(|s| s.allow_insecure);
    let mut url = |key: &str, value: &str, example: &str| {
        if let Some(why) = url_error(value, example) {
            report(at.key(key), why);
        } else if let Some(why) = insecure_url(value).filter(|_| !allow_insecure) {
            report(at.key(key), why);
        }
    };
    match b {
        Backend::Http { url: u, .. } => match template::placeholders(u) {
            Err(why) => report(at.key("url"), why),
            Ok(names) => {
                let known = crate::config::backends::HTTP_URL_PLACEHOLDERS;
                for n in names.iter().filter(|n| !known.contains(&n.as_str())) {
                    report(
                        at.key("url"),
                        format!(
                            "{{{n}}} in the url is not a message field: expected one of {}",
                            known.map(|k| format!("{{{k}}}")).join(", ")
                        ),
                    );
                }
                // Placeholders are not valid in every part of a URL: check it filled in.
                let filled = template::render(u, |_| Some("x".into()));
                let why = url_error(&filled, "https://gateway.example/send")
                    .or_else(|| insecure_url(&filled).filter(|_| !allow_insecure));
                if let Some(why) = why {
                    report(
                        at.key("url"),
                        why.replace(&format!("{filled:?}"), &format!("{u:?}")),
                    );
                }
            }
        },
        Backend::Kannel { sendsms_url, .. } => url(
            "sendsms_url",
            sendsms_url,
            "http://127.0.0.1:13013/cgi-bin/sendsms",
        ),
        Backend::Twilio { api_url, .. } => url("api_url", api_url, "https://api.twilio.com"),
        Backend::Clickatell { api_url, .. } => {
            url("api_url", api_url, "https://platform.clickatell.com")
        }
        Backend::Vumi { sendsms_url, .. } => url(
            "sendsms_url",
            sendsms_url,
            "https://vumi.example/api/messages",
        ),
        Backend::Tester { .. } | Backend::Discard { .. } | Backend::Modem(_) => {}
    }
    match b {
        Backend::Twilio {
            from,
            messaging_service_sid,
            account_sid,
            ..
        } => {
            if from.is_none() == messaging_service_sid.is_none() {
                report(
                    at.clone(),
                    "give exactly one of `from` (a number) and `messaging_service_sid`".into(),
                );
            }
            if account_sid.trim().is_empty() {
                report(
                    at.key("account_sid"),
                    "empty account_sid: expected AC...".into(),
                );
            }
        }
        Backend::Kannel { dlr_mask, .. } if *dlr_mask > 63 => report(
            at.key("dlr_mask"),
            format!("dlr_mask {dlr_mask}: expected a sum of 1, 2, 4, 8, 16 and 32"),
        ),
        Backend::Clickatell { batch: 0, .. } => {
            report(at.key("batch"), "batch 0: expected at least 1".into())
        }
        Backend::Modem(m) => {
            if m.port.trim().is_empty() {
                report(
                    at.key("port"),
                    "empty port: expected a serial device, such as /dev/ttyUSB0".into(),
                );
            }
            if m.baud == 0 {
                report(
                    at.key("baud"),
                    "baud 0: expected a speed such as 115200".into(),
                );
            }
            if !["SM", "ME", "MT", "SR", "BM"].contains(&m.storage.as_str()) {
                report(
                    at.key("storage"),
                    format!(
                        "storage {:?}: expected SM (SIM), ME (modem) or MT (both)",
                        m.storage
                    ),
                );
            }
            if let Some(pin) = m.pin.as_ref().filter(|p| !p.is_empty()) {
                if !(4..=8).contains(&pin.len()) || !pin.bytes().all(|b| b.is_ascii_digit()) {
                    report(at.key("pin"), "a PIN is 4 to 8 digits".into());
                }
            }
            for (i, command) in m.init.iter().enumerate() {
                if !command
                    .get(..2)
                    .is_some_and(|a| a.eq_ignore_ascii_case("AT"))
                {
                    report(
                        at.key("init").index(i),
                        format!("{command:?} is not an AT command (they start with AT)"),
                    );
                }
            }
        }
        Backend::Vumi {
            sendsms_user,
            sendsms_pass,
            ..
        } if sendsms_user.is_some() != sendsms_pass.is_some() => report(
            at.clone(),
            "give both sendsms_user and sendsms_pass, or neither".into(),
        ),
        _ => {}
    }
    if let Some(s) = b.sending() {
        let send = at.key("send");
        if s.attempts == 0 {
            report(
                send.key("attempts"),
                "0 attempts: expected at least 1".into(),
            );
        }
        if s.concurrency == 0 {
            report(
                send.key("concurrency"),
                "concurrency 0: expected at least 1".into(),
            );
        }
        for (key, rate) in [("rate", s.rate), ("segment_rate", s.segment_rate)] {
            if let Some(r) = rate.filter(|r| !(r.is_finite() && *r > 0.0)) {
                report(
                    send.key(key),
                    format!("{key} {r}: expected a number above 0 (per second)"),
                );
            }
        }
        if s.timeout.is_zero() {
            report(
                send.key("timeout"),
                "timeout 0s: expected a duration above 0".into(),
            );
        }
        if let Some(path) = &s.ca_file {
            if let Err(e) = crate::config::files::ca_certificates(path) {
                report(send.key("ca_file"), e.to_string());
            }
        }
    }
    if let Some(r) = b.receiving() {
        if let Some(c) = &r.country {
            if crate::sms::numbers::Country::parse(c).is_none() {
                report(
                    at.key("receive").key("country"),
                    format!("{c:?} is not a country code: expected an ISO 3166 code such as TZ, KE or US"),
                );
            }
        }
    }
}

/// The shortest `receive.secret` accepted: guessing it must be hopeless.
const MIN_SECRET: usize = 16;

/// Every backend whose webhooks are reachable proves who calls them, or says
/// `receive.insecure: true`; its `receive:` limits let something in. Errors
/// name keys, never their values (secrets).
fn check_webhook_auth(
    b: &Backend,
    listen: std::net::SocketAddr,
    at: &Path,
    report: &mut impl FnMut(Path, String),
) {
    let Some(r) = b.receiving() else {
        return;
    };
    let receive = at.key("receive");
    let name = b.name();
    for (key, limit) in [
        ("max_text", r.max_text),
        ("max_id", r.max_id),
        ("max_identity", r.max_identity),
        ("max_field", r.max_field),
    ] {
        if limit == 0 {
            report(receive.key(key), format!("{key} 0: expected at least 1"));
        }
    }
    if let Backend::Twilio { validate, .. } = b {
        for (key, set) in [
            ("secret", r.secret.is_some()),
            ("username", r.username.is_some()),
            ("password", r.password.is_some()),
        ] {
            if set {
                report(receive.key(key), format!("backend {name:?}: receive.{key} is not used by twilio, whose webhooks are checked by their X-Twilio-Signature (made with auth_token); remove it"));
            }
        }
        if !validate && r.insecure && !listen.ip().is_loopback() {
            report(receive.key("insecure"), format!("backend {name:?}: receive.insecure: true with validate: false, but http.listen ({listen}) is reachable from other machines: keep validate (the default)"));
        }
        if !validate && !r.insecure {
            report(at.key("validate"), format!("backend {name:?}: validate: false accepts webhooks anyone can forge; add receive.insecure: true to say that is meant (only where no one else reaches the listener), or remove validate: false"));
        }
        return;
    }
    if r.username.is_some() != r.password.is_some() {
        report(
            receive.clone(),
            format!("backend {name:?}: give both receive.username and receive.password (HTTP basic auth), or neither"),
        );
    }
    if let Some(secret) = &r.secret {
        if secret.chars().count() < MIN_SECRET {
            report(receive.key("secret"), format!("backend {name:?}: receive.secret is shorter than {MIN_SECRET} characters: use a long random one, for example from `openssl rand -hex 24`"));
        }
        if !secret
            .bytes()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'-' | b'.' | b'_' | b'~'))
        {
            report(receive.key("secret"), format!("backend {name:?}: receive.secret may only hold letters, digits and - . _ ~ (it goes into URLs as it is), for example from `openssl rand -hex 24`"));
        }
    }
    // Unauthenticated webhooks are only for a listener no one else reaches.
    if r.insecure && !listen.ip().is_loopback() {
        report(receive.key("insecure"), format!("backend {name:?}: receive.insecure: true, but http.listen ({listen}) is reachable from other machines: anyone there could inject messages and delivery reports; give receive.secret (or username and password) instead, or listen on 127.0.0.1"));
    }
    if r.insecure && r.has_credentials() {
        report(receive.key("insecure"), format!("backend {name:?}: receive.insecure: true and credentials (receive.secret, username, password) are both given: remove insecure, or the credentials"));
    }
    if !r.insecure && !r.has_credentials() {
        let how = match b {
            Backend::Kannel { .. } => "receive.secret (smsflow checks it as `secret=` in Kannel's get-url, and puts it in every dlr-url)",
            Backend::Vumi { .. } => "receive.username and receive.password (HTTP basic auth, as in https://user:pass@host/backend/<name>/ at Vumi), or receive.secret",
            Backend::Clickatell { .. } => "receive.secret (`secret=` in the callback URLs: Clickatell's status callbacks carry no apiKey), or receive.username and receive.password",
            _ => "receive.secret (`secret=` in the URL the gateway calls, or an X-Smsflow-Secret header), or receive.username and receive.password",
        };
        report(at.clone(), format!("backend {name:?} accepts webhooks from anyone: add {how}, given through ${{VAR}}; or receive.insecure: true where no one else reaches the listener"));
    }
}
