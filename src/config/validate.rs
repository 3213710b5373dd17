//! Checks that need the whole file: names that must be unique or must exist,
//! regexes, shadowed routes, templates, and a reply path for every message.

use std::collections::HashMap;

use super::backends::Backend;
use super::error::ConfigError;
use super::node::{Node, Path};
use super::read::locate;
use super::types::{App, KafkaMode, Pipeline};
use crate::sms::keyword::TextRule;
use crate::sms::template;

pub(super) fn check(p: &Pipeline, root: &Node, errors: &mut Vec<ConfigError>) {
    let mut report = |path: Path, message: String| {
        let (line, column) = locate(root, &path);
        errors.push(ConfigError::new(line, column, path, message));
    };
    let top = Path::default();

    let kafka = top.key("kafka");
    match (p.kafka.mode, &p.kafka.brokers) {
        (KafkaMode::Kafka, None) => report(
            kafka.key("brokers"),
            "mode kafka needs `brokers`, for example `127.0.0.1:9092`".into(),
        ),
        (KafkaMode::Kafka, Some(b)) if b.trim().is_empty() => report(
            kafka.key("brokers"),
            "`brokers` is empty: expected `host:port[,host:port...]`".into(),
        ),
        (KafkaMode::Embedded | KafkaMode::Mock, Some(_)) => report(
            kafka.key("brokers"),
            "`brokers` is only used with `mode: kafka`".into(),
        ),
        _ => {}
    }
    if p.kafka.partition_capacity == 0 {
        report(
            kafka.key("partition_capacity"),
            "0 records per partition: expected at least 1".into(),
        );
    }

    if let Some(u) = &p.http.public_url {
        if let Some(why) = url_error(u, "https://sms.example.org") {
            report(top.key("http").key("public_url"), why);
        }
    }
    check_http(p, &mut report);

    let topics = top.key("topics");
    if p.topics.partitions < 1 {
        report(
            topics.key("partitions"),
            format!("{} partitions: expected at least 1", p.topics.partitions),
        );
    }
    if p.topics.replication < 1 {
        report(
            topics.key("replication"),
            format!("replication {}: expected at least 1", p.topics.replication),
        );
    }
    let t = &p.topics;
    for (key, name) in [
        ("inbound", &t.inbound),
        ("outbound", &t.outbound),
        ("app_prefix", &t.app_prefix),
        ("send_prefix", &t.send_prefix),
        ("events", &t.events),
        ("contacts", &t.contacts),
        ("optouts", &t.optouts),
        ("log", &t.log),
        ("polls", &t.polls),
        ("dlq", &t.dlq),
    ] {
        let prefix = key.ends_with("_prefix");
        if let Err(why) = topic_name(name, prefix) {
            report(topics.key(key), why);
        }
    }

    check_languages(p, &mut report);
    check_polls(p, &mut report);
    if let Some(o) = &p.optout {
        let at = top.key("optout");
        for (field, text) in [
            ("stop_reply", &o.stop_reply),
            ("start_reply", &o.start_reply),
            ("help_reply", &o.help_reply),
        ] {
            if let Some(why) = project_only(text, "an opt-out answer") {
                report(at.key(field), why);
            }
        }
        for (field, words) in [("stop", &o.stop), ("start", &o.start), ("help", &o.help)] {
            for (i, w) in words.iter().enumerate() {
                if w.trim().is_empty() || w.trim().contains(char::is_whitespace) {
                    report(
                        at.key(field).index(i),
                        format!("{w:?} is not a keyword: expected one word, such as STOP"),
                    );
                }
            }
        }
    }

    let backends = top.key("backends");
    // Only when the file declares none: items that failed to read were reported already.
    let declared = match root.get(&backends).map(|n| &n.kind) {
        Some(super::node::Kind::Seq(items)) => items.len(),
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
        check_backend(b, &backends.index(i), &mut report);
        check_webhook_auth(b, p.http.listen, &backends.index(i), &mut report);
        if let Err(why) = topic_name(&t.send(b.name()), false) {
            report(
                backends.index(i).key("name"),
                format!("backend name {:?} makes a bad topic name: {why}", b.name()),
            );
        }
    }

    let apps = top.key("apps");
    let mut seen: HashMap<&str, usize> = HashMap::new();
    for (i, a) in p.apps.iter().enumerate() {
        let at = apps.index(i);
        if let Some(first) = seen.insert(a.name(), i) {
            report(at.key("name"), format!("duplicate app name {:?} (also apps[{first}]): each app is a stage and needs its own name", a.name()));
        }
        if let Err(why) = topic_name(&t.app(a.name()), false) {
            report(
                at.key("name"),
                format!("app name {:?} makes a bad topic name: {why}", a.name()),
            );
        }
        if let App::Autoresponder {
            keyword,
            pattern,
            exact,
            reply,
            help,
            ..
        } = a
        {
            if keyword.is_none() && pattern.is_none() && exact.is_none() {
                report(
                    at.clone(),
                    "an autoresponder needs a trigger: one of keyword, pattern, exact".into(),
                );
                continue;
            }
            match TextRule::from_config(keyword.as_deref(), pattern.as_deref(), exact.as_deref()) {
                Err((field, why)) => report(at.key(field), why),
                Ok(rule) => {
                    let mut known = rule.capture_names();
                    known.extend(["rest".to_owned(), "project".to_owned()]);
                    for (field, text) in [("reply", Some(reply)), ("help", help.as_ref())] {
                        let Some(text) = text else { continue };
                        match template::placeholders(text) {
                            Err(why) => report(at.key(field), why),
                            Ok(names) => {
                                for n in names.iter().filter(|n| !known.contains(n)) {
                                    report(at.key(field), format!("{{{n}}} in {text:?} is not something the trigger provides: expected one of {}", known.iter().map(|k| format!("{{{k}}}")).collect::<Vec<_>>().join(", ")));
                                }
                            }
                        }
                    }
                }
            }
        }
        if let App::Default {
            response: Some(text),
            ..
        } = a
        {
            if let Some(why) = project_only(text, "the default reply") {
                report(at.key("response"), why);
            }
        }
    }

    if let super::types::Chain::Apps(names) = &p.chain {
        for (i, name) in names.iter().enumerate() {
            if !p.apps.iter().any(|a| a.name() == name) {
                let known: Vec<&str> = p.apps.iter().map(App::name).collect();
                report(
                    top.key("chain").index(i),
                    format!(
                        "no app {name:?} to chain; the apps are: {}",
                        known.join(", ")
                    ),
                );
            }
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
                let known = super::access::HTTP_URL_PLACEHOLDERS;
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
        Backend::Tester { .. } | Backend::Discard { .. } => {}
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
            if let Err(e) = super::files::ca_certificates(path) {
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

/// Why `value` is not an http(s) URL.
fn url_error(value: &str, example: &str) -> Option<String> {
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
fn insecure_url(value: &str) -> Option<String> {
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
fn topic_name(name: &str, prefix: bool) -> Result<(), String> {
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

/// Languages: codes unique, the default among them, texts only for them, and
/// every text a valid template.
fn check_languages(p: &Pipeline, report: &mut impl FnMut(Path, String)) {
    let at = Path::default().key("languages");
    let l = &p.languages;
    let codes: Vec<String> = l.available.iter().map(|x| x.code.to_lowercase()).collect();
    for (i, lang) in l.available.iter().enumerate() {
        let code = lang.code.trim();
        if code.is_empty()
            || code.len() > 16
            || !code
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        {
            report(
                at.key("available").index(i).key("code"),
                format!("{code:?} is not a language code: expected a tag such as en, fr or pt-BR"),
            );
        } else if codes[..i].contains(&code.to_lowercase()) {
            report(
                at.key("available").index(i).key("code"),
                format!("language {code:?} is listed twice"),
            );
        }
        if lang.name.trim().is_empty() {
            report(
                at.key("available").index(i).key("name"),
                "a language needs a name, such as French".into(),
            );
        }
    }
    if !codes.contains(&l.default.to_lowercase()) {
        report(
            at.key("default"),
            format!(
                "default language {:?} is not among `available` ({})",
                l.default,
                codes.join(", ")
            ),
        );
    }
    for (lang, texts) in &l.texts {
        let here = at.key("texts").key(lang);
        if !codes.contains(&lang.to_lowercase()) {
            report(
                here.clone(),
                format!(
                    "texts for {lang:?}, which is not among `languages.available` ({})",
                    codes.join(", ")
                ),
            );
        }
        for (key, text) in texts {
            if !key.contains('.') {
                report(here.key(key), format!("text key {key:?} names no app: expected `<app>.<text>`, such as registration.registered"));
            }
            if let Err(why) = template::placeholders(text) {
                report(here.key(key), why);
            }
        }
    }
}

/// Polls: at least two choices, each once.
fn check_polls(p: &Pipeline, report: &mut impl FnMut(Path, String)) {
    for (i, app) in p.apps.iter().enumerate() {
        let App::Poll {
            choices, question, ..
        } = app
        else {
            continue;
        };
        let at = Path::default().key("apps").index(i);
        if question.trim().is_empty() {
            report(at.key("question"), "a poll needs a question".into());
        } else if let Some(why) = project_only(question, "a poll's question") {
            report(at.key("question"), why);
        }
        if choices.len() < 2 {
            report(
                at.key("choices"),
                format!("{} choice(s): a poll needs at least two", choices.len()),
            );
        }
        for (j, c) in choices.iter().enumerate() {
            if c.trim().is_empty() || c.contains(char::is_whitespace) {
                report(
                    at.key("choices").index(j),
                    format!("{c:?} is not a choice: expected one word, such as yes"),
                );
            } else if choices[..j].iter().any(|d| d.eq_ignore_ascii_case(c)) {
                report(
                    at.key("choices").index(j),
                    format!("choice {c:?} is listed twice"),
                );
            }
        }
    }
}

/// Why `text` is not a template that uses at most `{project}`, if it is not.
fn project_only(text: &str, what: &str) -> Option<String> {
    match template::placeholders(text) {
        Err(why) => Some(why),
        Ok(names) => names
            .iter()
            .find(|n| n.as_str() != "project")
            .map(|n| format!("{{{n}}} in {text:?}: {what} only knows {{project}} (write {{{{ and }}}} for literal braces)")),
    }
}

/// The listeners: the admin one apart from the public one, authenticated
/// unless on loopback, its credentials well formed (never quoted), limits
/// above zero.
fn check_http(p: &Pipeline, report: &mut impl FnMut(Path, String)) {
    let http = Path::default().key("http");
    let admin = http.key("admin");
    let a = &p.http.admin;
    let at = p.http.admin_listen();
    if at == p.http.listen && at.port() != 0 {
        report(
            admin.key("listen"),
            format!("{at} is also http.listen: the admin listener needs an address of its own"),
        );
    }
    if let Some(why) = super::access::admin_exposure(&p.http) {
        report(admin.key("listen"), why);
    }
    if let Some(why) = super::access::remote_refusal(p) {
        report(admin.key("allow_remote_tester"), why);
    }
    for (i, t) in a.tokens.iter().enumerate() {
        let n = t.expose().chars().count();
        if n < 16 || t.expose().chars().any(char::is_whitespace) {
            report(
                admin.key("tokens").index(i),
                format!("token {} has {n} characters or contains a blank: expected at least 16 characters and no blanks (give it through ${{VAR}})", i + 1),
            );
        }
    }
    let mut names = std::collections::HashSet::new();
    for (i, u) in a.users.iter().enumerate() {
        let at = admin.key("users").index(i);
        if u.name.is_empty() || u.name.contains(':') {
            report(
                at.key("name"),
                "a user name is not empty and has no `:`".into(),
            );
        } else if !names.insert(u.name.as_str()) {
            report(
                at.key("name"),
                format!("user {:?} is declared twice", u.name),
            );
        }
        if let Err(why) = super::access::check_hash(u.password_hash.expose()) {
            report(
                at.key("password_hash"),
                format!("the password hash {why}; make one with `smsflow hash-password`"),
            );
        }
    }
    for (key, hosts) in [
        (http.key("hosts"), &p.http.hosts),
        (admin.key("hosts"), &a.hosts),
    ] {
        for (i, h) in hosts.iter().enumerate() {
            let ok = h.parse::<std::net::IpAddr>().is_ok()
                || (!h.is_empty()
                    && h.chars()
                        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-')));
            if !ok {
                report(
                    key.clone().index(i),
                    format!("{h:?} is not a host name: expected a name such as sms.example.org, without scheme, port or path"),
                );
            }
        }
    }
    let limits = http.key("limits");
    let l = &p.http.limits;
    if l.max_body_bytes < 1024 {
        report(
            limits.key("max_body_bytes"),
            format!("{} bytes: expected at least 1024", l.max_body_bytes),
        );
    }
    if l.max_connections == 0 {
        report(
            limits.key("max_connections"),
            "0 connections: expected at least 1".into(),
        );
    }
    for (key, d) in [
        ("header_read_timeout", l.header_read_timeout),
        ("request_timeout", l.request_timeout),
    ] {
        if d.is_zero() {
            report(limits.key(key), "0s: expected a duration above zero".into());
        }
    }
}
