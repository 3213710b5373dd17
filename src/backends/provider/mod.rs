//! The sink every provider backend shares: it reads `sms.send.<backend>`,
//! hands each message to the provider at the configured rate with bounded
//! concurrency, retries transient failures with backoff, never sends a
//! message id twice (the [`SentLog`](super::sent::SentLog)), and writes a
//! delivery event for every outcome. A provider only says how to make one
//! request ([`Provider`]).
//!
//! Each record is finished in a delivery task
//! ([`Output::later`](crate::stage::Output::later)): the stage goes on
//! reading while up to `concurrency` requests are in flight, and a record's
//! offset is marked done, in order, once its sent-log entry and its event
//! are stored. An event that cannot be encoded dead-letters the record
//! instead (`smsflow dlq replay` repeats the event once fixed).
//!
//! Shutdown ends every wait: a message still waiting for the rate limit is
//! left unfinished (not marked done, so it is read again after a restart and
//! sent then); one waiting between tries is recorded `retry` in the sent-log
//! and left unfinished too, so that the restart sends it again. Nothing is
//! marked `failed` because the process stopped: at least once, as the tries
//! themselves are.
//!
//! Where things are: `request` (one try: the [`Provider`] trait, an
//! [`Attempt`], an HTTP answer read as one, the HTTP client), `sink` (the
//! stage's handler) and `delivery` (rate limits, concurrency, the tries
//! and what each outcome is finished with).

mod delivery;
mod request;
mod sink;

pub use request::{call, client, http_failure, Answer, Attempt, Provider};
pub use sink::ProviderSink;
