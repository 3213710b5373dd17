//! The handler of each kind of stage: a closed set, dispatched in one place.

use crate::analytics::AnalyticsStage;
use crate::apps::runner::AppStage;
use crate::backends::discard::DiscardSink;
use crate::backends::provider::ProviderSink;
use crate::backends::tester::TesterSink;
use crate::campaign::stage::CampaignStage;
use crate::router::{RouterIn, RouterOut};
use crate::stage::{self, Handler};

/// What one stage does with each record it reads.
// One per stage, built once: its size does not matter.
#[allow(clippy::large_enum_variant)]
pub(super) enum StageHandler {
    RouterIn(RouterIn),
    RouterOut(RouterOut),
    App(AppStage),
    Campaign(CampaignStage),
    Tester(TesterSink),
    Provider(ProviderSink),
    Discard(DiscardSink),
    Analytics(AnalyticsStage),
}

impl Handler for StageHandler {
    async fn handle(
        &mut self,
        record: &crate::bus::Record,
        out: &mut stage::Output,
    ) -> Result<(), stage::HandleError> {
        match self {
            StageHandler::RouterIn(h) => h.handle(record, out).await,
            StageHandler::RouterOut(h) => h.handle(record, out).await,
            StageHandler::App(h) => h.handle(record, out).await,
            StageHandler::Campaign(h) => h.handle(record, out).await,
            StageHandler::Tester(h) => h.handle(record, out).await,
            StageHandler::Provider(h) => h.handle(record, out).await,
            StageHandler::Discard(h) => h.handle(record, out).await,
            StageHandler::Analytics(h) => h.handle(record, out).await,
        }
    }
}
