//! The `analytics` stage, built from the pipeline's `analytics:` section.

use std::sync::Arc;

use crate::analytics::stage::{Options, Topics};
use crate::analytics::{AnalyticsStage, Settings};
use crate::bus::{Bus, BusError, Producer, Rebalances};
use crate::config::{AnalyticsWindow, Pipeline};
use crate::message::StatsWindow;

/// The topics the stage reads: `sms.inbound`, every app's topic, `sms.events`.
pub(super) fn reads(p: &Pipeline) -> Vec<String> {
    let t = &p.topics;
    std::iter::once(t.inbound.clone())
        .chain(p.apps.iter().map(|a| t.app(a.name())))
        .chain([t.events.clone()])
        .collect()
}

/// The stage (one per process that runs it), following `rebalances`.
pub(super) async fn stage(
    p: &Pipeline,
    bus: &Bus,
    producer: &Producer,
    group: &str,
    rebalances: Arc<Rebalances>,
) -> Result<AnalyticsStage, BusError> {
    let a = p.analytics.clone().unwrap_or_default();
    let t = &p.topics;
    let windows = a
        .windows
        .iter()
        .map(|w| match w {
            AnalyticsWindow::Minute => StatsWindow::Minute,
            AnalyticsWindow::Hour => StatsWindow::Hour,
            AnalyticsWindow::Day => StatsWindow::Day,
        })
        .collect();
    let topics = Topics {
        inbound: Arc::from(t.inbound.as_str()),
        events: Arc::from(t.events.as_str()),
        stats: Arc::from(t.stats.as_str()),
        dlq: Arc::from(t.dlq.as_str()),
    };
    let options = Options {
        settings: Settings {
            windows,
            grace_ms: i64::try_from(a.grace.as_millis()).unwrap_or(i64::MAX),
        },
        flush: a.flush,
        restore_timeout: p.kafka.restore_timeout,
    };
    Ok(AnalyticsStage::start(bus, producer, group, topics, options)
        .await?
        .follow_assignment(rebalances))
}
