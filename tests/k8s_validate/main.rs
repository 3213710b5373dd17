//! Offline validation of the Kubernetes manifests (docs/container.md):
//! `kubectl kustomize` renders every overlay under `k8s/overlays/` and the
//! fixture overlay here, and `tests/helpers/k8s_validate.py` checks the
//! output: kubernetes-validate `--strict` for Kubernetes 1.32 and the newest
//! version it bundles, the KEDA, Strimzi and prometheus-operator resources
//! against their vendored CRD schemas made strict (`crds/`), and the rules
//! on replicas, partitions, probes, resources and security contexts. Each
//! check is shown to reject a deliberately broken fixture (`fixtures/broken/`,
//! whose first line says which check must fail and with what message).
//! `dockerfile.rs` lints the top-level Dockerfile.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use common::Tool;

#[path = "../common/mod.rs"]
mod common;
mod dockerfile;

/// The checks of tests/helpers/k8s_validate.py.
const CHECKS: [&str; 5] = ["schema", "crd", "replicas", "partitions", "containers"];

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn fixtures() -> PathBuf {
    repo().join("tests/k8s_validate/fixtures")
}

/// `kubectl kustomize dir`, written to `out`; Err with kubectl's message.
fn render(dir: &Path, out: &Path) -> Result<(), String> {
    let o = Command::new(Tool::Kubectl.path())
        .arg("kustomize")
        .arg(dir)
        .output()
        .map_err(|e| format!("cannot run kubectl: {e}"))?;
    if !o.status.success() {
        return Err(format!(
            "kubectl kustomize {} failed: {}",
            dir.display(),
            String::from_utf8_lossy(&o.stderr).trim()
        ));
    }
    std::fs::write(out, &o.stdout).map_err(|e| format!("cannot write {}: {e}", out.display()))
}

/// The validator on `files`, with only `checks` when some are given.
fn validate(files: &[&Path], checks: &[&str]) -> Output {
    let mut cmd = Command::new(Tool::KubernetesValidate.path());
    cmd.arg(repo().join("tests/helpers/k8s_validate.py"));
    for c in checks {
        cmd.args(["--check", c]);
    }
    cmd.args(files)
        .output()
        .expect("run tests/helpers/k8s_validate.py")
}

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// Render `overlay` and validate it with every check; Err says what failed.
fn render_and_validate(overlay: &Path, tmp: &Path) -> Result<String, String> {
    let name = overlay.file_name().unwrap().to_string_lossy();
    let out = tmp.join(format!("{name}.yaml"));
    render(overlay, &out)?;
    let o = validate(&[&out], &[]);
    let report = text(&o);
    if o.status.code() != Some(0) {
        return Err(format!("{} did not validate:\n{report}", overlay.display()));
    }
    Ok(report)
}

#[test]
fn the_fixture_overlay_renders_and_passes_every_check() {
    require_tools!(Tool::Kubectl, Tool::KubernetesValidate);
    let tmp = tempfile::tempdir().unwrap();
    let report = render_and_validate(&fixtures().join("overlay"), tmp.path())
        .unwrap_or_else(|e| panic!("{e}"));
    // Deployment, Service, PodDisruptionBudget, ScaledObject,
    // ServiceMonitor, two KafkaTopics and the generated ConfigMap.
    assert!(
        report.contains("8 resources, checks schema, crd, replicas, partitions, containers"),
        "{report}"
    );
    assert!(report.contains(" 0 errors"), "{report}");
}

#[test]
fn every_overlay_under_k8s_renders_and_passes_every_check() {
    require_tools!(Tool::Kubectl, Tool::KubernetesValidate);
    let overlays = repo().join("k8s/overlays");
    let Ok(entries) = std::fs::read_dir(&overlays) else {
        let _ = std::io::Write::write_all(
            &mut std::io::stderr(),
            format!(
                "note: {} does not exist yet: nothing to render\n",
                overlays.display()
            )
            .as_bytes(),
        );
        return;
    };
    let mut dirs: Vec<PathBuf> = entries
        .map(|e| e.unwrap().path())
        .filter(|p| p.join("kustomization.yaml").is_file() || p.join("kustomization.yml").is_file())
        .collect();
    dirs.sort();
    assert!(
        !dirs.is_empty(),
        "{} holds no overlay (no directory with a kustomization.yaml)",
        overlays.display()
    );
    let tmp = tempfile::tempdir().unwrap();
    let failures: Vec<String> = dirs
        .iter()
        .filter_map(|d| render_and_validate(d, tmp.path()).err())
        .collect();
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}

#[test]
fn a_kustomization_naming_a_missing_file_fails_to_render() {
    require_tools!(Tool::Kubectl);
    let tmp = tempfile::tempdir().unwrap();
    let err = render(
        &fixtures().join("broken-overlay"),
        &tmp.path().join("out.yaml"),
    )
    .expect_err("a kustomization naming a missing file rendered");
    assert!(err.contains("missing.yaml"), "{err}");
}

/// A broken fixture: the check it must fail and the message it must give.
struct Broken {
    file: PathBuf,
    check: String,
    message: String,
}

fn broken_fixtures() -> Vec<Broken> {
    let dir = fixtures().join("broken");
    let mut all: Vec<Broken> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("read {}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "yaml"))
        .map(|file| {
            let first = std::fs::read_to_string(&file)
                .unwrap()
                .lines()
                .next()
                .unwrap_or_default()
                .to_owned();
            let expect = first.strip_prefix("# expect: ").unwrap_or_else(|| {
                panic!(
                    "{}: first line is not `# expect: CHECK: MESSAGE`",
                    file.display()
                )
            });
            let (check, message) = expect.split_once(": ").unwrap();
            Broken {
                check: check.to_owned(),
                message: message.to_owned(),
                file,
            }
        })
        .collect();
    all.sort_by(|a, b| a.file.cmp(&b.file));
    all
}

#[test]
fn each_check_rejects_its_broken_fixtures() {
    require_tools!(Tool::KubernetesValidate);
    let broken = broken_fixtures();
    for check in CHECKS {
        assert!(
            broken.iter().filter(|b| b.check == check).count() >= 2,
            "check {check} has fewer than two broken fixtures in fixtures/broken"
        );
    }
    let mut wrong = Vec::new();
    for b in &broken {
        assert!(
            CHECKS.contains(&b.check.as_str()),
            "{}: unknown check {}",
            b.file.display(),
            b.check
        );
        // The named check alone must fail it, with the expected message.
        let o = validate(&[&b.file], &[&b.check]);
        let out = text(&o);
        if o.status.code() != Some(1)
            || !out.contains(&format!("{}: ", b.check))
            || !out.contains(&b.message)
        {
            wrong.push(format!(
                "{} (check {}): exit {:?}, wanted 1 and {:?}:\n{out}",
                b.file.display(),
                b.check,
                o.status.code(),
                b.message
            ));
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}

#[test]
fn the_schema_check_runs_for_1_32_and_the_newest_bundled_version() {
    require_tools!(Tool::KubernetesValidate);
    let newest = Command::new(Tool::KubernetesValidate.path())
        .args([
            "-c",
            "import kubernetes_validate.utils as u; print(u.latest_version())",
        ])
        .output()
        .unwrap();
    let newest = String::from_utf8_lossy(&newest.stdout).trim().to_owned();
    let minor: String = newest.split('.').take(2).collect::<Vec<_>>().join(".");
    assert!(
        minor.starts_with("1."),
        "kubernetes-validate's newest version: {newest:?}"
    );
    let o = validate(
        &[&fixtures().join("broken/schema-unknown-field.yaml")],
        &["schema"],
    );
    let out = text(&o);
    for v in ["1.32", minor.as_str()] {
        assert!(
            out.contains(&format!(
                "Kubernetes {v}: spec: Additional properties are not allowed"
            )),
            "no error against Kubernetes {v}:\n{out}"
        );
    }
}

#[test]
fn unreadable_or_non_kubernetes_input_is_refused_with_a_reason() {
    require_tools!(Tool::KubernetesValidate);
    let tmp = tempfile::tempdir().unwrap();
    let missing = tmp.path().join("absent.yaml");
    let o = validate(&[&missing], &[]);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(text(&o).contains("cannot read"), "{}", text(&o));

    let list = tmp.path().join("list.yaml");
    std::fs::write(&list, "- just\n- a list\n").unwrap();
    let o = validate(&[&list], &[]);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(
        text(&o).contains("document 1 is not a Kubernetes resource"),
        "{}",
        text(&o)
    );

    // Fields of the wrong shape (a list for a mapping, a number for a
    // trigger): every check reports, none crashes.
    let o = validate(&[&fixtures().join("odd-shapes.yaml")], &[]);
    let out = text(&o);
    assert_eq!(o.status.code(), Some(1), "{out}");
    assert!(!out.contains("Traceback"), "{out}");
    for line in [
        "crd: ",
        "spec.triggers.1.metadata: 7 is not of type 'object'",
        "replicas: ",
        "partitions: ",
        "containers: ",
        "schema: ",
    ] {
        assert!(out.contains(line), "no {line:?} in:\n{out}");
    }
}
