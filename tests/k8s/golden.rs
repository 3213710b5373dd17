//! `k8s/` is the production pipeline rendered: a kustomize base with what
//! both overlays share (the ConfigMap, the KafkaTopics, the ServiceMonitor)
//! and the overlays' own objects, `dev` (one process) and `prod` (a
//! Deployment per stage). `SMSFLOW_BLESS=1 cargo test --test k8s` rewrites
//! them; `kubectl kustomize` renders each overlay to exactly the render.

use std::process::Command;

use serde_json::Value;
use smsflow::k8s::{to_yaml, Mode};

use super::common::{self, Tool};
use super::{parse_yaml, render};

/// Objects both overlays have, in the base.
const SHARED: &[&str] = &["ConfigMap", "KafkaTopic", "ServiceMonitor"];

const HEADER: &str = "# Generated from pipelines/production.yaml by `smsflow k8s render` \
                      (SMSFLOW_BLESS=1 cargo test --test k8s rewrites it): do not edit.\n";

fn split(docs: Vec<Value>) -> (Vec<Value>, Vec<Value>) {
    docs.into_iter()
        .partition(|d| SHARED.iter().any(|k| d["kind"] == *k))
}

/// Every generated file of `k8s/` and what it must hold.
fn generated() -> Vec<(&'static str, String)> {
    let (base, prod) = split(render(Mode::Prod));
    let (dev_base, dev) = split(render(Mode::Dev));
    assert_eq!(base, dev_base, "dev and prod differ in the shared objects");
    let file = |docs: &[Value]| format!("{HEADER}{}", to_yaml(docs).unwrap());
    vec![
        ("k8s/base/resources.yaml", file(&base)),
        ("k8s/overlays/prod/stages.yaml", file(&prod)),
        ("k8s/overlays/dev/stages.yaml", file(&dev)),
    ]
}

/// Where committed files differ from `fresh` (None: all equal).
fn stale(fresh: &[(&str, String)]) -> Option<String> {
    let bad: Vec<&str> = fresh
        .iter()
        .filter(|(path, text)| {
            std::fs::read_to_string(common::root().join(path))
                .ok()
                .as_deref()
                != Some(text)
        })
        .map(|(path, _)| *path)
        .collect();
    (!bad.is_empty()).then(|| bad.join(", "))
}

#[test]
fn the_committed_manifests_are_the_render_of_the_production_pipeline() {
    let fresh = generated();
    if std::env::var_os("SMSFLOW_BLESS").is_some() {
        for (path, text) in &fresh {
            let file = common::root().join(path);
            std::fs::create_dir_all(file.parent().unwrap()).unwrap();
            std::fs::write(file, text).unwrap();
        }
    }
    if let Some(files) = stale(&fresh) {
        panic!("{files}: stale; run `SMSFLOW_BLESS=1 cargo test --test k8s` and commit the result");
    }
    // The check sees a difference when there is one.
    let mut changed = fresh.clone();
    changed[1].1.push_str("# edited\n");
    assert_eq!(
        stale(&changed).as_deref(),
        Some("k8s/overlays/prod/stages.yaml")
    );
}

/// `kubectl kustomize` of a directory under `k8s/`: its documents, or the error.
fn kustomize(dir: &std::path::Path) -> Result<Vec<Value>, String> {
    let out = Command::new(Tool::Kubectl.path())
        .arg("kustomize")
        .arg(dir)
        .output()
        .unwrap();
    match out.status.success() {
        true => Ok(parse_yaml(&String::from_utf8(out.stdout).unwrap())),
        false => Err(String::from_utf8_lossy(&out.stderr).into_owned()),
    }
}

fn sorted(mut docs: Vec<Value>) -> Vec<String> {
    let mut out: Vec<String> = docs.drain(..).map(|d| d.to_string()).collect();
    out.sort();
    out
}

#[test]
fn kubectl_kustomize_renders_each_overlay_to_the_render() {
    crate::require_tools!(Tool::Kubectl);
    for (overlay, mode) in [("dev", Mode::Dev), ("prod", Mode::Prod)] {
        let dir = common::root().join("k8s/overlays").join(overlay);
        let got = kustomize(&dir).unwrap_or_else(|e| panic!("k8s/overlays/{overlay}: {e}"));
        let (got, want) = (sorted(got), sorted(render(mode)));
        let missing: Vec<&String> = want.iter().filter(|d| !got.contains(d)).collect();
        assert!(
            got.len() == want.len() && missing.is_empty(),
            "k8s/overlays/{overlay}: kubectl kustomize gives {} objects, the render {}; \
             not in kustomize's output: {missing:?}",
            got.len(),
            want.len()
        );
    }
    // A broken overlay fails.
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("kustomization.yaml"),
        "resources: [missing.yaml]\n",
    )
    .unwrap();
    assert!(kustomize(dir.path()).is_err());
}
