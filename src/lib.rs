//! smsflow: RapidSMS's backends, router and apps as a Kafka stream processor.
//!
//! Modules in the order data flows:
//!
//! - [`config`]: the pipeline YAML: types, `${VAR}` interpolation, validation.
//! - [`message`]: the domain types; [`schema`]: their Avro encoding.
//! - [`bus`]: Kafka (rdkafka) and the embedded in-process bus, behind one interface.
//! - [`backends`]: sources that write `sms.inbound` and sinks that read `sms.send.<backend>`.
//! - [`router`]: incoming phases and the route table; the outgoing phase.
//! - [`apps`]: the [`apps::App`] trait and the built-in apps.
//! - [`sms`]: GSM 03.38 / UCS-2 encoding and segment counts.
//! - [`stage`]: the consume → handle → produce → mark-done loop every stage runs.
//! - [`topology`]: a pipeline turned into running stages, and their shutdown order.
//! - [`http`]: the one HTTP server; [`metrics`]: every metric, defined once.
//! - [`web`]: the web pages and JSON API (message log, contacts, messaging, polls, status).
//! - [`script`]: RapidSMS-style conversation scripts (`smsflow test`).
//! - [`graph`]: the topology as text or Graphviz; [`ops`]: `smsflow send` and `tail`;
//!   [`dlq`]: `smsflow dlq list` and `replay`.

pub mod apps;
pub mod backends;
pub mod bus;
pub mod client;
pub mod config;
pub mod contacts;
pub mod dlq;
pub mod graph;
pub mod http;
pub mod i18n;
pub mod message;
pub mod messagelog;
pub mod messaging;
pub mod metrics;
pub mod ops;
pub mod optout;
pub mod router;
pub mod schema;
pub mod script;
pub mod sms;
pub mod stage;
pub mod status;
pub mod table;
pub mod topology;
pub mod web;
