//! Checks that need the whole file: names that must be unique or must exist,
//! regexes, shadowed routes, templates, and a reply path for every message.

use std::collections::HashMap;

use super::{locate, App, Backend, ConfigError, KafkaMode, Node, Path, Pipeline};
use crate::apps::template;
use crate::router::table::{RouteTable, TextRule};

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
        Some(super::Kind::Seq(items)) => items.len(),
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

    if let super::Chain::Apps(names) = &p.chain {
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

    if let Err(route_errors) = RouteTable::build(p) {
        for (path, message) in route_errors {
            report(path, message);
        }
    }
}

/// A backend's URLs, credentials and send/receive settings.
fn check_backend(b: &Backend, at: &Path, report: &mut impl FnMut(Path, String)) {
    let mut url = |key: &str, value: &str, example: &str| {
        if let Some(why) = url_error(value, example) {
            report(at.key(key), why);
        }
    };
    match b {
        Backend::Http { url: u, .. } => match template::placeholders(u) {
            Err(why) => report(at.key("url"), why),
            Ok(names) => {
                let known = crate::backends::http::PLACEHOLDERS;
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
                if let Some(why) = url_error(&filled, "https://gateway.example/send") {
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
    }
    if let Some(r) = b.receiving() {
        if let Some(c) = &r.country {
            if crate::backends::numbers::Country::parse(c).is_none() {
                report(
                    at.key("receive").key("country"),
                    format!("{c:?} is not a country code: expected an ISO 3166 code such as TZ, KE or US"),
                );
            }
        }
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
    if let Some(why) = crate::http::guard::admin_exposure(&p.http) {
        report(admin.key("listen"), why);
    }
    if let Some(why) = crate::backends::tester::remote_refusal(p) {
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
        if let Err(why) = crate::http::guard::check_hash(u.password_hash.expose()) {
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
