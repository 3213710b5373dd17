//! Helpers shared by the integration tests.
#![allow(dead_code)]

use std::path::PathBuf;

use smsflow::config::{self, KafkaMode, Pipeline};

pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The demo pipeline on `mode`, its HTTP server on a free loopback port.
pub fn demo(mode: KafkaMode) -> Pipeline {
    let text = std::fs::read_to_string(root().join("pipelines/demo.yaml")).unwrap();
    pipeline_from(&text, mode)
}

pub fn pipeline_from(text: &str, mode: KafkaMode) -> Pipeline {
    let env = |k: &str| match k {
        "SMSFLOW_LISTEN" => Some("127.0.0.1:0".to_string()),
        _ => None,
    };
    let mut p = config::load_str(text, &env).unwrap_or_else(|e| panic!("{e:?}"));
    p.kafka = config::Kafka::with_mode(mode);
    p
}

pub fn scripts() -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(root().join("tests/scripts"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "txt"))
        .collect();
    v.sort();
    assert!(!v.is_empty());
    v
}
