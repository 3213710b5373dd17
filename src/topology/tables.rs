//! The tables a pipeline keeps from its topics (contacts, opt-outs, polls,
//! log, events), followed before any stage starts.

use anyhow::Context;

use crate::bus::{Bus, Producer};
use crate::config::Pipeline;
use crate::state::table::Follower;
use crate::state::Tables;

/// The pipeline's tables, and the followers that keep them up to date
/// (dropped after the stages, at shutdown).
pub(super) async fn follow(
    bus: &Bus,
    producer: &Producer,
    p: &Pipeline,
) -> anyhow::Result<(Tables, Vec<Follower>)> {
    let tables = Tables::new(p);
    let followers = tables
        .follow(bus, producer, p)
        .await
        .context("cannot read the pipeline's tables (contacts, opt-outs, polls, log, events)")?;
    Ok((tables, followers))
}
