//! The operator's command line beyond `run`: [`client`] (the admin API as
//! the CLI sees it), [`ops`] (`smsflow send`, `status`, `tail`), [`dlq`]
//! (`smsflow dlq list` and `replay`), [`graph`] (the topology as text or
//! Graphviz) and [`script`] (RapidSMS-style conversation scripts,
//! `smsflow test`).

pub mod client;
pub mod dlq;
pub mod graph;
pub mod ops;
pub mod output;
pub mod script;
