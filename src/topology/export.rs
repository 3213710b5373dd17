//! The `export` stage, built from the pipeline's `export:` section: not a
//! record-by-record [`crate::stage::Handler`] (its offsets are committed
//! per closed file), so it runs its own loop ([`crate::export::stage::run`]).

use crate::bus::{Consumer, Producer};
use crate::config::Pipeline;
use crate::export::{self, Exporter, Settings};
use crate::stage::{StageContext, StageControl};

use super::running::{Health, RunningStage};

/// The stage's name, also its group's suffix (`<group>.export`).
pub(super) const NAME: &str = "export";

/// The topics the stage reads.
pub(super) fn reads(p: &Pipeline) -> Vec<String> {
    export::topics(p)
}

/// Start the stage on `consumer`; `None` when `export:` is not configured.
pub(super) fn spawn(
    p: &Pipeline,
    ctx: StageContext,
    consumer: Consumer,
    producer: &Producer,
    control: StageControl,
    health: &Health,
) -> Option<RunningStage> {
    let settings = Settings::of(p.export.as_ref()?);
    health.member(&ctx.name, consumer.rebalances());
    let name = ctx.name.clone();
    let run = export::stage::run(
        ctx,
        consumer,
        producer.clone(),
        Exporter::new(settings),
        control.clone(),
    );
    Some(RunningStage::spawn(&name, run, control, health))
}
