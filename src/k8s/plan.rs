//! What to render: the options, and the Deployments ("units") a pipeline
//! becomes — one per stage (`prod`), or one for the whole pipeline (`dev`).

use anyhow::bail;

use super::names;
use super::source::Source;
use crate::topology::StageKind;

/// How the pipeline is spread over Deployments.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// A Deployment per stage, each scaled on its consumer group's lag.
    Prod,
    /// One Deployment running every stage, one replica.
    Dev,
    /// `Prod` for a pipeline on Kafka, `Dev` for one on the embedded bus
    /// (whose stages cannot be apart).
    Auto,
}

/// What `smsflow k8s render` was asked for.
#[derive(Debug, Clone)]
pub struct Options {
    pub mode: Mode,
    /// Only these stages' resources (prod); empty: every stage and the
    /// shared resources (ConfigMap, KafkaTopics, ServiceMonitor).
    pub stages: Vec<String>,
    pub namespace: Option<String>,
    pub image: String,
    /// The Strimzi `Kafka` cluster the `KafkaTopic`s belong to.
    pub kafka_cluster: String,
}

impl Options {
    pub fn new(mode: Mode) -> Options {
        Options {
            mode,
            stages: Vec::new(),
            namespace: None,
            image: DEFAULT_IMAGE.to_owned(),
            kafka_cluster: "kafka".to_owned(),
        }
    }
}

/// The image when `--image` is not given (kustomize's `images:` replaces it).
pub const DEFAULT_IMAGE: &str = concat!("smsflow:", env!("CARGO_PKG_VERSION"));

/// The Secret every `${VAR}` comes from.
pub const SECRET: &str = "smsflow-env";
/// The ConfigMap holding the pipeline file.
pub const CONFIG_MAP: &str = "smsflow-pipeline";

/// The consumer lag per replica KEDA aims at: it runs
/// `ceil(total lag / LAG_THRESHOLD)` replicas, between its min and max.
pub const LAG_THRESHOLD: u32 = 100;
/// Replicas of a stage that may have several, at least (capped by partitions).
pub const MIN_REPLICAS: i32 = 2;

/// One Deployment.
#[derive(Debug, Clone)]
pub struct Unit {
    /// The object name: `smsflow-<stage>`, or `smsflow` for the whole pipeline.
    pub name: String,
    /// The stage it runs (`--stage`), or None for every stage.
    pub stage: Option<String>,
    /// The topic its consumer group lags on, with the group, when KEDA scales it.
    pub scaled: Option<Scaled>,
    /// Whether it serves provider webhooks (a public Service).
    pub webhooks: bool,
}

/// How KEDA scales a unit.
#[derive(Debug, Clone)]
pub struct Scaled {
    pub group: String,
    pub topic: String,
    pub min: i32,
    /// The topic's partitions: more consumers than that would sit idle.
    pub max: i32,
}

/// The units of `src` under `opts`, in the pipeline's data-flow order.
pub fn units(src: &Source, opts: &Options) -> anyhow::Result<Vec<Unit>> {
    let mode = match (opts.mode, src.on_kafka()) {
        (Mode::Auto, true) => Mode::Prod,
        (Mode::Auto, false) => Mode::Dev,
        (m, _) => m,
    };
    match mode {
        Mode::Dev | Mode::Auto => {
            if !opts.stages.is_empty() {
                bail!("--stage picks the Deployments of --mode prod; --mode dev runs every stage in one");
            }
            Ok(vec![Unit {
                name: names::APP.to_owned(),
                stage: None,
                scaled: None,
                webhooks: !src.webhook_backends.is_empty(),
            }])
        }
        Mode::Prod => prod_units(src, opts),
    }
}

fn prod_units(src: &Source, opts: &Options) -> anyhow::Result<Vec<Unit>> {
    if !src.on_kafka() {
        bail!("the pipeline is not on Kafka (kafka.mode: kafka): its stages cannot run in pods of their own. \
               Use kafka.mode: kafka with kafka.brokers, or --mode dev for one pod running every stage");
    }
    let all: Vec<&str> = src.stages.iter().map(|s| s.name.as_str()).collect();
    for s in &opts.stages {
        if !all.contains(&s.as_str()) {
            bail!(
                "no stage {s:?} in this pipeline; its stages are: {}",
                all.join(", ")
            );
        }
    }
    let mut units: Vec<Unit> = Vec::new();
    for s in &src.stages {
        if !opts.stages.is_empty() && !opts.stages.contains(&s.name) {
            continue;
        }
        let name = names::unit(&s.name);
        if let Some(u) = units.iter().find(|u| u.name == name) {
            bail!(
                "stages {:?} and {:?} would both be Deployment {name}: rename one",
                u.stage.as_deref().unwrap_or_default(),
                s.name
            );
        }
        let (webhooks, single) = match &s.kind {
            StageKind::Backend { backend } => (
                src.webhook_backends.contains(backend),
                src.single_backends.contains(backend),
            ),
            _ => (false, false),
        };
        let scaled = match (single, s.reads.first()) {
            (false, Some(topic)) => {
                let max = src.partitions(topic).unwrap_or(1).max(1);
                Some(Scaled {
                    group: format!("{}.{}", src.group, s.name),
                    topic: topic.clone(),
                    min: MIN_REPLICAS.min(max),
                    max,
                })
            }
            _ => None,
        };
        units.push(Unit {
            name,
            stage: Some(s.name.clone()),
            scaled,
            webhooks,
        });
    }
    Ok(units)
}

/// The labels of every object of `unit` (its pods' selector is the first two).
pub fn labels(unit: &str) -> serde_json::Value {
    serde_json::json!({
        "app.kubernetes.io/name": names::APP,
        "app.kubernetes.io/component": unit,
        "app.kubernetes.io/part-of": names::APP,
        "app.kubernetes.io/managed-by": "smsflow-k8s-render",
    })
}

/// The labels that select `unit`'s pods.
pub fn selector(unit: &str) -> serde_json::Value {
    serde_json::json!({
        "app.kubernetes.io/name": names::APP,
        "app.kubernetes.io/component": unit,
    })
}

/// An object's `metadata`: its name, the namespace asked for, `labels`.
pub fn meta(name: &str, opts: &Options, labels: serde_json::Value) -> serde_json::Value {
    let mut m = serde_json::json!({ "name": name, "labels": labels });
    if let Some(ns) = &opts.namespace {
        m["namespace"] = ns.as_str().into();
    }
    m
}
