//! smsflow: RapidSMS's backends, router and apps as a Kafka stream processor.
//!
//! Modules in the order data flows. A module imports only from modules
//! above it in this list (`tests/layout.rs` checks that no import points
//! the other way and that no two modules import each other):
//!
//! - [`sms`]: what every layer shares about short messages, importing
//!   nothing of smsflow: GSM 03.38 / UCS-2 encoding and segments, phone
//!   numbers, keyword and pattern rules, text templates.
//! - [`modem`]: SMS PDUs (3GPP TS 23.040) as a GSM modem speaks them in PDU
//!   mode: the AT link, the modem session, and a simulated modem for tests
//!   and `smsflow modem-sim` (the stage is in `backends::modem`).
//! - [`config`]: the pipeline YAML: types, `${VAR}` interpolation, validation.
//! - [`message`]: the domain types; [`schema`]: their Avro encoding.
//! - [`i18n`]: the texts of every language; [`metrics`]: every metric,
//!   defined once.
//! - [`bus`]: Kafka (rdkafka) and the embedded in-process bus, behind one interface.
//! - [`stage`]: the consume → handle → produce → mark-done loop every stage runs.
//! - [`http`]: what every HTTP endpoint shares: the listener, the guard
//!   (authentication, CSRF, limits), form parsing, JSON errors.
//! - [`state`]: tables kept from topics: contacts, opt-outs, poll answers,
//!   message status, the message log.
//! - [`analytics`]: statistics: event-time windows of message counts per
//!   backend, app, keyword and campaign, written to `sms.stats`.
//! - [`export`]: topics to Parquet and Avro files in a Hive-style layout,
//!   exactly once (the `export` stage, `smsflow export`).
//! - [`apps`]: the [`apps::App`] trait, the built-in apps, their stage and
//!   messaging (sending to contacts and groups).
//! - [`campaign`]: bulk campaigns: audiences, personalised texts, quiet
//!   hours, the expanding stage.
//! - [`backends`]: sources that write `sms.inbound` and sinks that read `sms.send.<backend>`.
//! - [`router`]: incoming phases and the route table; the outgoing phase.
//! - [`web`]: the HTTP servers (webhooks, probes) and the operator pages and JSON API.
//! - [`topology`]: a pipeline turned into running stages, and their shutdown order.
//! - [`replay`]: `smsflow replay`: a range of `sms.inbound` run again
//!   through the router and apps into `replay.<id>.` topics, compared with
//!   what was sent at the time.
//! - [`k8s`]: a pipeline turned into Kubernetes manifests (`smsflow k8s render`).
//! - [`cli`]: the operator's commands beyond `run` (send, status, tail,
//!   dlq, graph, conversation scripts).

pub mod sms;

pub mod modem;

pub mod config;

pub mod message;
pub mod schema;

pub mod i18n;
pub mod metrics;

pub mod bus;

pub mod stage;

pub mod http;

pub mod state;

pub mod analytics;
pub mod export;

pub mod apps;

pub mod campaign;

pub mod backends;

pub mod router;

pub mod web;

pub mod topology;

pub mod replay;

pub mod k8s;

pub mod cli;
