//! A pipeline turned into Kubernetes manifests (`smsflow k8s render`).
//!
//! [`source`] reads the pipeline file as the pods will (its listeners set
//! to `0.0.0.0`); [`plan`] decides the Deployments — one per stage in
//! [`Mode::Prod`], one for every stage in [`Mode::Dev`]; [`workload`] makes
//! each Deployment, its Services and PodDisruptionBudget; [`platform`] the
//! ConfigMap, the Strimzi `KafkaTopic`s, the KEDA `ScaledObject`s and the
//! Prometheus `ServiceMonitor`. No value of a `${VAR}` is ever read into
//! the output: the pods take each variable from the Secret [`SECRET`].
//! docs/kubernetes.md explains the choices.

pub mod names;
pub mod plan;
pub mod platform;
pub mod source;
pub mod workload;

use std::path::Path;

use serde_json::Value;

pub use plan::{Mode, Options, CONFIG_MAP, DEFAULT_IMAGE, LAG_THRESHOLD, SECRET};
use source::Source;

/// The manifests of the pipeline file at `path`, in a stable order: the
/// ConfigMap, the KafkaTopics (by name), the ServiceMonitor, then each
/// unit's Deployment, Services, PodDisruptionBudget and ScaledObject in the
/// pipeline's data-flow order. With `--stage`, only those stages' objects.
pub fn documents(path: &Path, opts: &Options) -> anyhow::Result<Vec<Value>> {
    documents_with(path, opts, &|k| std::env::var(k).ok())
}

/// [`documents`], with `env` for the pipeline's `${VAR}`s instead of the
/// process environment.
pub fn documents_with(
    path: &Path,
    opts: &Options,
    env: &dyn Fn(&str) -> Option<String>,
) -> anyhow::Result<Vec<Value>> {
    let src = Source::read(path, env)?;
    let units = plan::units(&src, opts)?;
    let hash = platform::content_hash(&src);
    let mut docs = Vec::new();
    if opts.stages.is_empty() {
        docs.push(platform::config_map(&src, opts));
        if src.on_kafka() {
            docs.extend(platform::kafka_topics(&src, opts));
        }
        docs.extend(platform::service_monitor(&src, opts));
    }
    for unit in &units {
        docs.push(workload::deployment(&src, opts, unit, &hash));
        docs.extend(workload::services(&src, opts, unit));
        docs.push(workload::disruption_budget(opts, unit));
        docs.extend(platform::scaled_object(&src, opts, unit));
    }
    Ok(docs)
}

/// [`documents`] as multi-document YAML.
pub fn render(path: &Path, opts: &Options) -> anyhow::Result<String> {
    to_yaml(&documents(path, opts)?)
}

/// Documents as multi-document YAML (`---` between them).
pub fn to_yaml(docs: &[Value]) -> anyhow::Result<String> {
    let mut out = String::new();
    for d in docs {
        out.push_str("---\n");
        out.push_str(&serde_saphyr::to_string(d)?);
        if !out.ends_with('\n') {
            out.push('\n');
        }
    }
    Ok(out)
}
