//! Checks that need the whole file: names that must be unique or must exist,
//! regexes, shadowed routes, templates, and a reply path for every message.
//! One file per section of the pipeline; [`rules`] holds what they share.

use crate::config::error::ConfigError;
use crate::config::node::{Node, Path};
use crate::config::read::locate;
use crate::config::types::{KafkaMode, Pipeline};

mod analytics;
mod apps;
mod backends;
mod campaigns;
mod export;
mod http;
mod languages;
mod registry;
mod rules;

use rules::{project_only, topic_name};

pub(super) fn check(p: &Pipeline, root: &Node, errors: &mut Vec<ConfigError>) {
    let mut report = |path: Path, message: String| {
        let (line, column) = locate(root, &path);
        errors.push(ConfigError::new(line, column, path, message));
    };
    check_kafka(p, &mut report);
    registry::check(p, &mut report);
    http::check(p, &mut report);
    check_topics(p, &mut report);
    languages::check(p, &mut report);
    apps::check_polls(p, &mut report);
    check_optout(p, &mut report);
    backends::check(p, root, &mut report);
    apps::check(p, &mut report);
    apps::check_chain(p, &mut report);
    campaigns::check(p, &mut report);
    analytics::check(p, &mut report);
    export::check(p, &mut report);
}

/// `kafka:`: brokers for Kafka (and only for it), a partition capacity.
fn check_kafka(p: &Pipeline, report: &mut impl FnMut(Path, String)) {
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
    // Before `kafka.producer`/`kafka.consumer` existed, `consumer.` keys
    // of `config` went to consumers; librdkafka knows no such names.
    for key in p.kafka.config.keys() {
        for side in ["consumer", "producer"] {
            if let Some(rest) = key.strip_prefix(side).and_then(|k| k.strip_prefix('.')) {
                report(
                    kafka.key("config").key(key),
                    format!(
                        "`{key}`: a setting for {side}s only goes under `kafka.{side}` as `{rest}`"
                    ),
                );
            }
        }
    }
    if p.topics.sent_memory == 0 {
        report(
            top.key("topics").key("sent_memory"),
            "0 sent-log entries in memory: expected at least 1".into(),
        );
    }
    if p.kafka.partition_capacity == 0 {
        report(
            kafka.key("partition_capacity"),
            "0 records per partition: expected at least 1".into(),
        );
    }
}

/// `topics:`: partitions, replication, and names Kafka accepts.
fn check_topics(p: &Pipeline, report: &mut impl FnMut(Path, String)) {
    let top = Path::default();
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
        ("stats", &t.stats),
    ] {
        let prefix = key.ends_with("_prefix");
        if let Err(why) = topic_name(name, prefix) {
            report(topics.key(key), why);
        }
    }
}

/// `optout:`: its answers, and one word per keyword.
fn check_optout(p: &Pipeline, report: &mut impl FnMut(Path, String)) {
    let top = Path::default();
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
}
