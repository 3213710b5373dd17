//! `analytics:` — the statistics stage: event-time tumbling windows over
//! `sms.inbound`, the app topics and `sms.events`, written to `topics.stats`.

use std::time::Duration;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::value::{humantime_serde_compat, HumanDuration};

/// A tumbling window's length.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum AnalyticsWindow {
    /// From each whole minute.
    Minute,
    /// From each whole hour (UTC).
    Hour,
    /// From each midnight UTC.
    Day,
}

impl AnalyticsWindow {
    /// The window as the file writes it.
    pub fn name(self) -> &'static str {
        match self {
            AnalyticsWindow::Minute => "minute",
            AnalyticsWindow::Hour => "hour",
            AnalyticsWindow::Day => "day",
        }
    }
}

/// `analytics:` — windowed counts of messages (the `analytics` stage).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct Analytics {
    /// The window lengths counted (each UTC-aligned: a minute, an hour, a
    /// day from midnight UTC).
    pub windows: Vec<AnalyticsWindow>,
    /// How long after its end a window still takes events (by event time:
    /// a window closes once an event at least its end plus this was read
    /// from the same partition). Later events are not counted; they are
    /// counted in `smsflow_analytics_late_events_total` and logged.
    #[serde(with = "humantime_serde_compat")]
    #[schemars(with = "HumanDuration")]
    pub grace: Duration,
    /// How often the changed windows are written to `topics.stats` (and
    /// the offsets of what they count committed).
    #[serde(with = "humantime_serde_compat")]
    #[schemars(with = "HumanDuration")]
    pub flush: Duration,
}

impl Default for Analytics {
    fn default() -> Self {
        Analytics {
            windows: vec![
                AnalyticsWindow::Minute,
                AnalyticsWindow::Hour,
                AnalyticsWindow::Day,
            ],
            grace: Duration::from_secs(300),
            flush: Duration::from_secs(1),
        }
    }
}
