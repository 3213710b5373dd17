//! The generated pipeline reference: `schemas/pipeline.schema.json` and
//! `docs/pipeline-reference.md` are what `smsflow::config::schema` makes of
//! the config types today (`SMSFLOW_BLESS=1 cargo test --test reference`
//! rewrites them), the schema accepts every pipeline file we ship and a
//! pipeline with every default, and refuses what smsflow refuses.

use std::path::{Path, PathBuf};

use serde_json::Value;
use smsflow::config::{self, schema};

mod common;

/// `path` under the crate's root holds `fresh`, or (with `SMSFLOW_BLESS`
/// set) is rewritten to; otherwise a message saying how to fix it.
fn check_generated(path: &str, fresh: &str) -> Result<(), String> {
    let file = common::root().join(path);
    if std::env::var_os("SMSFLOW_BLESS").is_some() {
        if let Some(dir) = file.parent() {
            std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        }
        return std::fs::write(&file, fresh).map_err(|e| format!("{}: {e}", file.display()));
    }
    let committed = std::fs::read_to_string(&file).unwrap_or_default();
    if committed == fresh {
        return Ok(());
    }
    let line = committed
        .lines()
        .zip(fresh.lines())
        .position(|(a, b)| a != b)
        .unwrap_or_else(|| committed.lines().count().min(fresh.lines().count()))
        + 1;
    Err(format!(
        "{path} is stale (first difference at line {line}): the config types changed. \
         Run `{}` to regenerate it, and commit the result.",
        schema::BLESS
    ))
}

#[test]
fn the_committed_schema_and_reference_are_up_to_date() {
    let json = schema::json_schema();
    let results = [
        check_generated(schema::SCHEMA_PATH, &schema::json_schema_text()),
        check_generated(schema::REFERENCE_PATH, &schema::reference_markdown(&json)),
    ];
    let errors: Vec<String> = results.into_iter().filter_map(Result::err).collect();
    assert!(errors.is_empty(), "{}", errors.join("\n"));
}

/// The schema, compiled: as generated, which is the committed one when
/// the test above passes (reading the file here would race its blessing).
fn validator() -> jsonschema::Validator {
    jsonschema::validator_for(&schema::json_schema()).expect("the schema compiles")
}

/// A pipeline's text as the schema sees it (before `${VAR}` interpolation,
/// as an editor does), with every error the schema finds.
fn schema_errors(validator: &jsonschema::Validator, text: &str) -> Vec<String> {
    let node = config::Node::parse(text).unwrap_or_else(|e| panic!("not YAML: {e}"));
    validator
        .iter_errors(&node.to_json())
        .map(|e| format!("{}: {e}", e.instance_path()))
        .collect()
}

/// The pipeline files we ship: `pipelines/*.yaml` and `examples/*.yaml`.
fn shipped_pipelines() -> Vec<PathBuf> {
    let mut files = Vec::new();
    for dir in ["pipelines", "examples"] {
        let dir = common::root().join(dir);
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.extension().is_some_and(|e| e == "yaml" || e == "yml") {
                files.push(path);
            }
        }
    }
    files.sort();
    files
}

#[test]
fn every_shipped_pipeline_fits_the_schema_and_points_an_editor_at_it() {
    let validator = validator();
    let files = shipped_pipelines();
    assert!(files.len() >= 2, "pipeline files not found: {files:?}");
    for file in files {
        let text = std::fs::read_to_string(&file).unwrap();
        let first = text.lines().next().unwrap_or_default();
        let relative = relative_schema_path(&file);
        assert_eq!(
            first,
            format!("# yaml-language-server: $schema={relative}"),
            "{}: the first line points editors at the schema",
            file.display()
        );
        let errors = schema_errors(&validator, &text);
        assert!(errors.is_empty(), "{}: {errors:#?}", file.display());
    }
}

/// The schema's path as seen from `file`'s directory (both under the root).
fn relative_schema_path(file: &Path) -> String {
    let dir = file.parent().unwrap().strip_prefix(common::root()).unwrap();
    let up = "../".repeat(dir.components().count());
    format!("{up}{}", schema::SCHEMA_PATH)
}

/// The smallest pipeline smsflow runs.
const MINIMAL: &str = "backends:\n  - type: tester\napps:\n  - type: echo\n";

#[test]
fn a_pipeline_with_every_default_fits_the_schema() {
    // Serialized, a loaded pipeline spells out every default the types
    // give: each must be a value the schema accepts.
    let validator = validator();
    let p = smsflow::topology::load_str(MINIMAL, &|_| None).unwrap();
    let json = serde_json::to_value(&p).unwrap();
    let errors: Vec<String> = validator
        .iter_errors(&json)
        .map(|e| format!("{}: {e}", e.instance_path()))
        .collect();
    assert!(errors.is_empty(), "{errors:#?}\n{json:#}");
    // And the schema's defaults are the loader's.
    let s = schema::json_schema();
    let default = |pointer: &str| s.pointer(pointer).cloned().unwrap_or(Value::Null);
    assert_eq!(default("/properties/project/default"), json["project"]);
    assert_eq!(
        default("/properties/shutdown_timeout/default"),
        json["shutdown_timeout"]
    );
    assert_eq!(default("/properties/topics/default"), json["topics"]);
    assert_eq!(default("/properties/http/default"), json["http"]);
}

#[test]
fn the_schema_accepts_what_smsflow_accepts() {
    let validator = validator();
    let good = [
        "kafka: mock\n",
        "kafka:\n  mode: kafka\n  brokers: ${BROKERS:-127.0.0.1:9092}\n  config: {acks: all}\n",
        // A section switched on by being there, with its defaults.
        "optout:\nmessagelog: {}\n",
        "chain: [echo]\n",
        // Keys with fixed values, from the environment.
        "kafka: ${BUS:-embedded}\n",
        "kafka:\n  mode: ${MODE:-embedded}\n",
        "chain: true\n",
        "max_routes: 5\n",
        // Durations, literal and from the environment.
        "shutdown_timeout: 1m 30s\nhttp:\n  accept_timeout: ${ACCEPT:-5s}\n",
        "http:\n  listen: ${LISTEN:-0.0.0.0:8080}\n  limits: {max_body_bytes: 1024}\n",
    ];
    for change in good {
        let text = with(change);
        if let Err(e) = smsflow::topology::load_str(&text, &|_| None) {
            panic!("smsflow refuses {change:?}: {e:?}");
        }
        let errors = schema_errors(&validator, &text);
        assert!(errors.is_empty(), "{change:?}: {errors:#?}");
    }
}

#[test]
fn the_schema_refuses_what_smsflow_refuses() {
    let validator = validator();
    assert!(schema_errors(&validator, MINIMAL).is_empty());
    let bad = [
        // An unknown section, an unknown key in a section, in a backend.
        ("projekt: x\n", "projekt"),
        ("topics:\n  inbund: x\n", "inbund"),
        ("backends:\n  - type: tester\n    colour: red\n", "colour"),
        // Wrong types: a string for a number, a list for a string.
        ("topics:\n  partitions: eight\n", "partitions"),
        ("project: [a, b]\n", "project"),
        // A backend type that does not exist, an app without its keys.
        ("backends:\n  - type: carrier-pigeon\n", "carrier-pigeon"),
        ("apps:\n  - type: poll\n    name: p\n", "poll"),
        // Not a duration, not a bus.
        ("shutdown_timeout: soon\n", "soon"),
        ("kafka: zookeeper\n", "zookeeper"),
        ("kafka:\n  mode: kafak\n", "kafak"),
    ];
    for (change, what) in bad {
        let text = with(change);
        let smsflow = smsflow::topology::load_str(&text, &|_| None);
        assert!(smsflow.is_err(), "smsflow accepts {change:?}");
        let errors = schema_errors(&validator, &text);
        assert!(!errors.is_empty(), "the schema accepts {change:?}");
        let all = errors.join("\n");
        assert!(all.contains(what), "{change:?}: {all}");
    }
}

/// [`MINIMAL`] with `change`'s sections in place of its own.
fn with(change: &str) -> String {
    let replaces = |section: &str| change.starts_with(&format!("{section}:"));
    let mut text = String::from(change);
    if !replaces("backends") {
        text.push_str("backends:\n  - type: tester\n");
    }
    if !replaces("apps") {
        text.push_str("apps:\n  - type: echo\n");
    }
    text
}
