//! The totals of a statistics window or range ([`super::stats`]): counts
//! added, latency histograms merged, and how the API shows them
//! (percentiles, the delivery rate).

use serde::Serialize;

use crate::message::{Latency, Stats};

/// The counts of a window (or of a range of windows), summed over source
/// partitions, with merged latency histograms.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Totals {
    pub inbound: i64,
    pub outbound: i64,
    pub queued: i64,
    pub sent: i64,
    pub delivered: i64,
    pub failed: i64,
    pub expired: i64,
    pub suppressed: i64,
    pub segments: i64,
    pub accepted_to_sent: Latency,
    pub sent_to_delivered: Latency,
    /// Every record summed says its window is final.
    pub closed: bool,
}

/// The names of the counts, as `by=` and the JSON answers spell them.
pub const COUNTS: [&str; 9] = [
    "inbound",
    "outbound",
    "queued",
    "sent",
    "delivered",
    "failed",
    "expired",
    "suppressed",
    "segments",
];

impl Totals {
    /// Nothing counted yet: the start of a sum (closed until a part is not).
    pub fn empty() -> Totals {
        Totals {
            closed: true,
            ..Totals::default()
        }
    }

    /// The count named `name` (one of [`COUNTS`]).
    pub fn count(&self, name: &str) -> Option<i64> {
        Some(match name {
            "inbound" => self.inbound,
            "outbound" => self.outbound,
            "queued" => self.queued,
            "sent" => self.sent,
            "delivered" => self.delivered,
            "failed" => self.failed,
            "expired" => self.expired,
            "suppressed" => self.suppressed,
            "segments" => self.segments,
            _ => return None,
        })
    }

    /// Delivered / sent, `None` when nothing was sent. Counted by event
    /// time, a window's reports may be for messages sent in an earlier
    /// one: the rate of a short window can exceed 1.
    pub fn delivery_rate(&self) -> Option<f64> {
        (self.sent > 0).then(|| self.delivered as f64 / self.sent as f64)
    }

    /// `other` added to these counts (a range of windows; `closed` when
    /// both are).
    pub fn add(&mut self, other: &Totals) {
        self.add_counts(other, 1);
        self.accepted_to_sent.merge(&other.accepted_to_sent);
        self.sent_to_delivered.merge(&other.sent_to_delivered);
        self.closed &= other.closed;
    }

    fn add_counts(&mut self, o: &Totals, sign: i64) {
        self.inbound += sign * o.inbound;
        self.outbound += sign * o.outbound;
        self.queued += sign * o.queued;
        self.sent += sign * o.sent;
        self.delivered += sign * o.delivered;
        self.failed += sign * o.failed;
        self.expired += sign * o.expired;
        self.suppressed += sign * o.suppressed;
        self.segments += sign * o.segments;
    }

    pub(super) fn of(s: &Stats) -> Totals {
        Totals {
            inbound: s.inbound,
            outbound: s.outbound,
            queued: s.queued,
            sent: s.sent,
            delivered: s.delivered,
            failed: s.failed,
            expired: s.expired,
            suppressed: s.suppressed,
            segments: s.segments,
            accepted_to_sent: trimmed(&s.accepted_to_sent),
            sent_to_delivered: trimmed(&s.sent_to_delivered),
            closed: s.closed,
        }
    }

    /// These totals as `/api/stats` answers them.
    pub fn summary(&self) -> Summary {
        Summary {
            inbound: self.inbound,
            outbound: self.outbound,
            queued: self.queued,
            sent: self.sent,
            delivered: self.delivered,
            failed: self.failed,
            expired: self.expired,
            suppressed: self.suppressed,
            segments: self.segments,
            delivery_rate: self.delivery_rate(),
            accepted_to_sent: Percentiles::of(&self.accepted_to_sent),
            sent_to_delivered: Percentiles::of(&self.sent_to_delivered),
            closed: self.closed,
        }
    }
}

/// A histogram without its empty tail (merging pads it again).
pub(super) fn trimmed(l: &Latency) -> Latency {
    let used = l.buckets.iter().rposition(|&n| n != 0).map_or(0, |i| i + 1);
    Latency {
        buckets: l.buckets[..used].to_vec(),
        ..l.clone()
    }
}

/// A latency histogram as its percentiles.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Percentiles {
    pub count: i64,
    pub p50_ms: Option<i64>,
    pub p95_ms: Option<i64>,
    pub p99_ms: Option<i64>,
    pub max_ms: Option<i64>,
    pub mean_ms: Option<i64>,
}

impl Percentiles {
    pub fn of(l: &Latency) -> Percentiles {
        let some = l.count > 0;
        Percentiles {
            count: l.count,
            p50_ms: l.quantile(0.5),
            p95_ms: l.quantile(0.95),
            p99_ms: l.quantile(0.99),
            max_ms: some.then_some(l.max_ms),
            mean_ms: some.then(|| l.sum_ms / l.count),
        }
    }
}

/// Totals as the JSON answers show them: the counts, the delivery rate
/// (`null` when nothing was sent) and the latency percentiles.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Summary {
    pub inbound: i64,
    pub outbound: i64,
    pub queued: i64,
    pub sent: i64,
    pub delivered: i64,
    pub failed: i64,
    pub expired: i64,
    pub suppressed: i64,
    pub segments: i64,
    pub delivery_rate: Option<f64>,
    pub accepted_to_sent: Percentiles,
    pub sent_to_delivered: Percentiles,
    pub closed: bool,
}
