//! `kafka.framing`, `kafka.topic_framing` and `kafka.schema_registry`:
//! Confluent framing and registries are for Kafka topics.

use crate::config::node::Path;
use crate::config::types::{KafkaMode, Pipeline};

use super::rules::topic_name;

pub(super) fn check(p: &Pipeline, report: &mut impl FnMut(Path, String)) {
    let kafka = Path::default().key("kafka");
    let k = &p.kafka;
    let on_kafka = k.mode != KafkaMode::Embedded;
    if !on_kafka && k.framing != Default::default() {
        report(
            kafka.key("framing"),
            "`framing` sets how records look on Kafka topics: the embedded bus keeps single-object framing (nothing outside smsflow reads it; `smsflow export` writes files for other tools)".into(),
        );
    }
    for topic in k.topic_framing.keys() {
        let at = kafka.key("topic_framing").key(topic);
        if !on_kafka {
            report(
                at,
                "`topic_framing` is for Kafka topics: the embedded bus keeps single-object framing"
                    .into(),
            );
        } else if let Err(why) = topic_name(topic, false) {
            report(at, why);
        }
    }
    let Some(registry) = &k.schema_registry else {
        return;
    };
    let at = kafka.key("schema_registry");
    if !on_kafka {
        report(
            at.clone(),
            "`schema_registry` is for Kafka topics: the embedded bus keeps single-object framing"
                .into(),
        );
    }
    match reqwest::Url::parse(&registry.url) {
        Ok(url) if matches!(url.scheme(), "http" | "https") && url.host().is_some() => {}
        Ok(url) => report(
            at.key("url"),
            format!(
                "{:?} is not an http(s) URL with a host (scheme {:?})",
                registry.url,
                url.scheme()
            ),
        ),
        Err(e) => report(
            at.key("url"),
            format!("{:?} is not a URL: {e}", registry.url),
        ),
    }
    if registry.password.is_some() && registry.username.is_none() {
        report(
            at.key("username"),
            "a `password` needs its `username` (basic auth)".into(),
        );
    }
}
