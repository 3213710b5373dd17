//! The top-level Dockerfile: hadolint finds nothing in it and rejects a
//! deliberately bad one (`fixtures/Dockerfile.bad`), and the image it
//! describes runs `smsflow` as a numeric non-root user (what Kubernetes'
//! `runAsNonRoot` can check without reading /etc/passwd).

use std::process::Command;

use crate::common::Tool;
use crate::{repo, require_tools};

fn hadolint(file: &std::path::Path) -> (Option<i32>, String) {
    let o = Command::new(Tool::Hadolint.path())
        .arg("--no-color")
        .arg(file)
        .output()
        .expect("run hadolint");
    let mut out = String::from_utf8_lossy(&o.stdout).into_owned();
    out.push_str(&String::from_utf8_lossy(&o.stderr));
    (o.status.code(), out)
}

#[test]
fn hadolint_passes_the_dockerfile_and_rejects_a_bad_one() {
    require_tools!(Tool::Hadolint);
    let (code, out) = hadolint(&repo().join("Dockerfile"));
    assert_eq!(code, Some(0), "hadolint on Dockerfile:\n{out}");
    let (code, out) = hadolint(&repo().join("tests/k8s_validate/fixtures/Dockerfile.bad"));
    assert_eq!(code, Some(1), "hadolint on Dockerfile.bad:\n{out}");
    for rule in ["DL3002", "DL3007", "DL3009", "DL3015"] {
        assert!(out.contains(rule), "hadolint did not report {rule}:\n{out}");
    }
}

/// The instruction lines of a Dockerfile, continuations joined.
fn instructions(text: &str) -> Vec<String> {
    let mut all = Vec::new();
    let mut cur = String::new();
    for line in text.lines() {
        let t = line.trim();
        if t.starts_with('#') || (t.is_empty() && cur.is_empty()) {
            continue;
        }
        match t.strip_suffix('\\') {
            Some(part) => cur.push_str(part),
            None => {
                cur.push_str(t);
                all.push(std::mem::take(&mut cur));
            }
        }
    }
    all
}

/// Why the final stage of `text` is not a non-root `smsflow` image, if not.
fn final_stage_problems(text: &str) -> Vec<String> {
    let all = instructions(text);
    let start = all
        .iter()
        .rposition(|i| i.to_uppercase().starts_with("FROM "))
        .unwrap_or(0);
    let stage = &all[start..];
    let mut problems = Vec::new();
    match stage.iter().rev().find_map(|i| i.strip_prefix("USER ")) {
        None => problems.push("the final stage sets no USER".to_owned()),
        Some(u) => {
            let user = u.trim().split(':').next().unwrap_or_default();
            if !user.parse::<u32>().is_ok_and(|n| n != 0) {
                problems.push(format!(
                    "the final USER is {u:?}, not a numeric non-root uid"
                ));
            }
        }
    }
    if !stage.iter().any(|i| i == r#"ENTRYPOINT ["smsflow"]"#) {
        problems.push(r#"the final stage has no ENTRYPOINT ["smsflow"]"#.to_owned());
    }
    problems
}

#[test]
fn the_image_runs_smsflow_as_a_numeric_non_root_user() {
    let text = std::fs::read_to_string(repo().join("Dockerfile")).unwrap();
    let problems = final_stage_problems(&text);
    assert!(problems.is_empty(), "Dockerfile: {}", problems.join("; "));
    let bad =
        std::fs::read_to_string(repo().join("tests/k8s_validate/fixtures/Dockerfile.bad")).unwrap();
    assert_eq!(
        final_stage_problems(&bad),
        ["the final USER is \"root\", not a numeric non-root uid"]
    );
    let named = "FROM a AS b\nUSER 10001\nFROM c\nUSER smsflow\nENTRYPOINT [\"sh\"]\n";
    assert_eq!(final_stage_problems(named).len(), 2);
}
