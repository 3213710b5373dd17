//! A campaign as operators see it (the API's JSON, the CLI's progress bar,
//! the page): its definition, and its progress counted from `sms.events`.

use serde::{Deserialize, Serialize};

use crate::message::{Campaign, CampaignState};
use crate::state::campaigns::Progress;

/// A campaign and where it stands.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CampaignView {
    pub campaign: Campaign,
    pub progress: ProgressView,
}

/// Counts and rates, derived once for every reader.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ProgressView {
    /// Recipients frozen at the start.
    pub recipients: u64,
    /// Recipients dealt with: released to the backend, or suppressed.
    pub reached: u64,
    /// Released, no outcome yet.
    pub queued: u64,
    pub sent: u64,
    pub delivered: u64,
    pub failed: u64,
    pub expired: u64,
    pub suppressed: u64,
    /// Recipients a cancelled (or ended) campaign never reached.
    pub not_sent: u64,
    /// Segments of the messages sent.
    pub segments: u64,
    /// The estimate's cost per segment × the segments sent.
    pub cost: f64,
    /// Delivered ÷ (delivered + failed + expired), when any has an outcome.
    pub delivery_rate: Option<f64>,
    /// Messages sent in the last complete minute.
    pub per_minute_now: u64,
    /// Seconds left at that rate, while running.
    pub eta_seconds: Option<u64>,
    /// Reached ÷ recipients, 0 to 100.
    pub percent: f64,
    /// (minute since the epoch, messages sent), oldest first.
    pub per_minute: Vec<(i64, u64)>,
    pub last_error: Option<String>,
}

impl CampaignView {
    pub fn new(campaign: Campaign, p: Progress, now_ms: i64) -> CampaignView {
        let recipients = campaign.audience.recipients.max(0) as u64;
        let reached = p.reached();
        let outcomes = p.delivered + p.failed + p.expired;
        let minute = now_ms.div_euclid(60_000);
        let per_minute_now = p.per_minute.get(&(minute - 1)).copied().unwrap_or(0);
        let left = recipients.saturating_sub(reached);
        let eta_seconds = (campaign.state == CampaignState::Running && per_minute_now > 0)
            .then(|| left * 60 / per_minute_now);
        let not_sent = match campaign.state {
            CampaignState::Cancelled | CampaignState::Completed => left,
            _ => 0,
        };
        let estimate = campaign.audience.segments.max(0) as f64;
        let cost = match estimate > 0.0 {
            true => campaign.audience.cost * p.segments as f64 / estimate,
            false => 0.0,
        };
        let progress = ProgressView {
            recipients,
            reached,
            queued: p.queued,
            sent: p.sent,
            delivered: p.delivered,
            failed: p.failed,
            expired: p.expired,
            suppressed: p.suppressed,
            not_sent,
            segments: p.segments,
            cost,
            delivery_rate: (outcomes > 0).then(|| p.delivered as f64 / outcomes as f64),
            per_minute_now,
            eta_seconds,
            percent: match recipients {
                0 => 100.0,
                n => (reached as f64 * 100.0 / n as f64).min(100.0),
            },
            per_minute: p.per_minute.into_iter().collect(),
            last_error: p.last_error,
        };
        CampaignView { campaign, progress }
    }
}
