//! `smsflow k8s render` and the `k8s/` directory: the manifests a pipeline
//! becomes (one Deployment per stage, no secret value anywhere, KEDA capped
//! by partitions, clear errors), the committed kustomize base and overlays
//! kept equal to a fresh render (`SMSFLOW_BLESS=1 cargo test --test k8s`
//! rewrites them) and rendered by `kubectl kustomize`, and the manifests run
//! as local processes against tansu: what they declare, the binary does.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde_json::Value;
use smsflow::k8s::{self, Mode, Options};

#[path = "../common/mod.rs"]
mod common;

mod contract;
mod golden;
mod render;

/// The production pipeline every test renders.
pub fn production() -> PathBuf {
    common::root().join("pipelines/production.yaml")
}

/// Values for the production pipeline's Secret: distinctive strings that
/// must never appear in the manifests.
pub fn secrets() -> BTreeMap<&'static str, String> {
    BTreeMap::from([
        ("KAFKA_BROKERS", "kafka-secret-host-7f3a:9092".to_owned()),
        (
            "SMSFLOW_PUBLIC_URL",
            "https://secret-host-91bc.example.org".to_owned(),
        ),
        (
            "SMSFLOW_ADMIN_TOKEN",
            "admin-token-secret-5d2e8c41b7".to_owned(),
        ),
        ("SMSFLOW_PROJECT", "project-secret-e4a1".to_owned()),
        (
            "TWILIO_ACCOUNT_SID",
            "AC5ec2e7a9d1b3f5e7a9d1b3f5e7a9d1b3".to_owned(),
        ),
        ("TWILIO_AUTH_TOKEN", "twilio-auth-secret-0c9b7d".to_owned()),
        ("TWILIO_FROM", "+15005550006".to_owned()),
    ])
}

/// The manifests of `file` under `opts`, with [`secrets`] as the environment.
pub fn render_with(file: &Path, opts: &Options) -> anyhow::Result<Vec<Value>> {
    let env = secrets();
    k8s::documents_with(file, opts, &|k| env.get(k).cloned())
}

/// The production pipeline's manifests in `mode`.
pub fn render(mode: Mode) -> Vec<Value> {
    render_with(&production(), &Options::new(mode)).unwrap()
}

/// The documents of `kind`.
pub fn of_kind<'a>(docs: &'a [Value], kind: &str) -> Vec<&'a Value> {
    docs.iter().filter(|d| d["kind"] == kind).collect()
}

/// The document of `kind` named `name`.
pub fn named<'a>(docs: &'a [Value], kind: &str, name: &str) -> &'a Value {
    docs.iter()
        .find(|d| d["kind"] == kind && d["metadata"]["name"] == name)
        .unwrap_or_else(|| panic!("no {kind} {name}"))
}

/// Multi-document YAML parsed into values (empty documents dropped).
pub fn parse_yaml(text: &str) -> Vec<Value> {
    let docs: Vec<Value> = serde_saphyr::from_str_multiple::<Value, Vec<Value>>(text).unwrap();
    docs.into_iter().filter(|d| !d.is_null()).collect()
}

/// The stage a Deployment runs (`--stage`'s argument), or None for the whole pipeline.
pub fn stage_of(deployment: &Value) -> Option<String> {
    let args = deployment["spec"]["template"]["spec"]["containers"][0]["args"]
        .as_array()
        .unwrap();
    let i = args.iter().position(|a| a == "--stage")?;
    Some(args[i + 1].as_str().unwrap().to_owned())
}
