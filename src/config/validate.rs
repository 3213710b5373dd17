//! Checks that need the whole file: names that must be unique or must exist,
//! regexes, shadowed routes, templates, and a reply path for every message.

use std::collections::HashMap;

use super::{locate, App, ConfigError, KafkaMode, Node, Path, Pipeline};
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
        ("dlq", &t.dlq),
    ] {
        let prefix = key.ends_with("_prefix");
        if let Err(why) = topic_name(name, prefix) {
            report(topics.key(key), why);
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
        if let super::Backend::Http { url, attempts, .. } = b {
            match reqwest::Url::parse(url) {
                Ok(u) if matches!(u.scheme(), "http" | "https") => {}
                Ok(u) => report(backends.index(i).key("url"), format!("{url:?} is a {} URL: expected http:// or https://", u.scheme())),
                Err(e) => report(backends.index(i).key("url"), format!("{url:?} is not a URL ({e}): expected for example https://gateway.example/send")),
            }
            if *attempts == 0 {
                report(
                    backends.index(i).key("attempts"),
                    "0 attempts: expected at least 1".into(),
                );
            }
        }
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
            match template::placeholders(text) {
                Err(why) => report(at.key("response"), why),
                Ok(names) => {
                    for n in names.iter().filter(|n| n.as_str() != "project") {
                        report(
                            at.key("response"),
                            format!(
                                "{{{n}}} in {text:?}: the default reply only knows {{project}}"
                            ),
                        );
                    }
                }
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
