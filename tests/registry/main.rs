//! Analytics readers on Kafka: Confluent framing (`kafka.framing`), the
//! read-only schema registry the admin listener serves, a topic holding
//! both framings, and an external registry.
//!
//! - `api`: the registry's answers, as Confluent's clients expect them, and
//!   its refusals (writes, unknown ids and subjects, no credentials).
//! - `framing`: what producers write per topic, stages reading both
//!   framings (mock cluster); chDB and confluent-kafka reading the same
//!   dump of `sms.events` on tansu into identical rows; an external
//!   registry's ids.
//! - `config`: framing and registries refused where they cannot work.

#[path = "../common/mod.rs"]
mod common;

mod api;
mod config;
mod framing;

use smsflow::config::{KafkaMode, Pipeline};

/// A tester backend and an echo app; the admin listener on a free port.
pub const PIPELINE: &str = "http:\n  listen: 127.0.0.1:0\nbackends:\n  - type: tester\nroutes:\n  - app: echo\napps:\n  - type: echo\n";

pub fn pipeline(mode: KafkaMode) -> Pipeline {
    common::pipeline_from(PIPELINE, mode)
}
