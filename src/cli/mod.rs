//! The operator's command line beyond `run`: [`client`] (the admin API as
//! the CLI sees it), [`ops`] (`smsflow send`, `status`, `tail`), [`dlq`]
//! (`smsflow dlq list` and `replay`), [`campaign`] (`smsflow campaign`),
//! [`graph`] (the topology as text or Graphviz), [`replay`] (`smsflow
//! replay`, a what-if run), [`script`] (RapidSMS-style conversation
//! scripts, `smsflow test`), [`top`] (consumer lag, live) and
//! [`modem_sim`] (a simulated GSM modem on a pty).

pub mod campaign;
pub mod client;
pub mod dlq;
pub mod export;
pub mod graph;
pub mod modem_sim;
pub mod ops;
pub mod output;
pub mod replay;
pub mod script;
pub mod top;
