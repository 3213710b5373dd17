//! The objects around the Deployments: the pipeline's ConfigMap, Strimzi
//! `KafkaTopic`s, KEDA `ScaledObject`s and the Prometheus `ServiceMonitor`.

use serde_json::{json, Map, Value};

use super::names;
use super::plan::{self, Options, Unit, CONFIG_MAP, LAG_THRESHOLD, SECRET};
use super::source::{Brokers, Source};

/// The ConfigMap of the pipeline file (and the translation files it names).
pub fn config_map(src: &Source, opts: &Options) -> Value {
    let data: Map<String, Value> = src
        .files
        .iter()
        .map(|(key, (_, text))| (key.clone(), Value::from(text.as_str())))
        .collect();
    json!({
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": plan::meta(CONFIG_MAP, opts, plan::labels(names::APP)),
        "data": data,
    })
}

/// The content hash of the ConfigMap, put in every pod template: a changed
/// pipeline changes the template, so the Deployments roll their pods.
pub fn content_hash(src: &Source) -> String {
    let mut bytes = Vec::new();
    for (key, (_, text)) in &src.files {
        bytes.extend_from_slice(key.as_bytes());
        bytes.push(0);
        bytes.extend_from_slice(text.as_bytes());
        bytes.push(0);
    }
    names::hex(&bytes)
}

/// A Strimzi `KafkaTopic` for every topic: partitions, replicas, and the
/// topic config smsflow itself would create it with.
pub fn kafka_topics(src: &Source, opts: &Options) -> Vec<Value> {
    let mut topics: Vec<&crate::bus::TopicSpec> = src.topics.iter().collect();
    topics.sort_by(|a, b| a.name.cmp(&b.name));
    topics
        .into_iter()
        .map(|t| {
            let valid = names::is_subdomain(&t.name);
            let name = match valid {
                true => t.name.clone(),
                false => names::label(&t.name),
            };
            let mut labels = plan::labels(names::APP);
            labels["strimzi.io/cluster"] = opts.kafka_cluster.as_str().into();
            let config: Map<String, Value> = t
                .kafka_config()
                .into_iter()
                .map(|(k, v)| (k.to_owned(), Value::from(v)))
                .collect();
            let mut spec = json!({"partitions": t.partitions, "replicas": t.replication});
            if !config.is_empty() {
                spec["config"] = Value::Object(config);
            }
            if !valid {
                spec["topicName"] = t.name.as_str().into();
            }
            json!({
                "apiVersion": "kafka.strimzi.io/v1beta2",
                "kind": "KafkaTopic",
                "metadata": plan::meta(&name, opts, labels),
                "spec": spec,
            })
        })
        .collect()
}

/// A KEDA `ScaledObject` scaling `unit` on its consumer group's lag on the
/// topic it reads. None for a unit that must run alone.
pub fn scaled_object(src: &Source, opts: &Options, unit: &Unit) -> Option<Value> {
    let s = unit.scaled.as_ref()?;
    let mut trigger = json!({
        "consumerGroup": s.group,
        "topic": s.topic,
        "lagThreshold": LAG_THRESHOLD.to_string(),
        "offsetResetPolicy": "earliest",
        "allowIdleConsumers": "false",
        "scaleToZeroOnInvalidOffset": "false",
    });
    match src.brokers.as_ref()? {
        Brokers::Env(var) => trigger["bootstrapServersFromEnv"] = var.as_str().into(),
        Brokers::Literal(b) => trigger["bootstrapServers"] = b.as_str().into(),
    }
    Some(json!({
        "apiVersion": "keda.sh/v1alpha1",
        "kind": "ScaledObject",
        "metadata": plan::meta(&unit.name, opts, plan::labels(&unit.name)),
        "spec": {
            "scaleTargetRef": {"name": unit.name},
            "minReplicaCount": s.min,
            "maxReplicaCount": s.max,
            "pollingInterval": 15,
            "cooldownPeriod": 300,
            "triggers": [{"type": "kafka", "metadata": trigger}],
        },
    }))
}

/// The `ServiceMonitor` scraping `/metrics` on every admin Service, with the
/// admin listener's bearer token from the Secret. None when the admin
/// listener stays on the pods' loopback.
pub fn service_monitor(src: &Source, opts: &Options) -> Option<Value> {
    src.admin.as_ref()?;
    let mut endpoint =
        json!({"port": "admin", "path": "/metrics", "interval": "30s", "scheme": "http"});
    if let Some(token) = &src.metrics_token {
        endpoint["authorization"] =
            json!({"type": "Bearer", "credentials": {"name": SECRET, "key": token}});
    }
    Some(json!({
        "apiVersion": "monitoring.coreos.com/v1",
        "kind": "ServiceMonitor",
        "metadata": plan::meta(names::APP, opts, plan::labels(names::APP)),
        "spec": {
            "selector": {"matchLabels": {
                "app.kubernetes.io/name": names::APP,
                "smsflow.io/listener": "admin",
            }},
            "endpoints": [endpoint],
        },
    }))
}
