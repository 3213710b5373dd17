//! The statistics, kept from `sms.stats` (compacted) for the dashboard and
//! `/api/stats`.
//!
//! Each record holds one window × one dimension value as far as one source
//! partition goes, and replaces the earlier record of its key. The book
//! keeps, per window × dimension value, the sum over source partitions:
//! counts added, latency histograms merged ([`crate::message::Latency::merge`]). While a
//! partition's record is open it is kept, and a record that replaces it is
//! summed instead of it (nothing is counted twice); once it says `closed`
//! (final) it is added to the window's closed sum and only its partition is
//! remembered: a closed record read again is not counted again.
//!
//! Memory is bounded by time: windows that started more than [`Horizon`]
//! ago (by the wall clock) are dropped, and records for them are not kept;
//! by default 48 hours of minutes, 60 days of hours and 400 days of days.
//! A record starting more than a day ahead of the clock is not kept either
//! (a skewed clock would otherwise pin it for ever). Histograms are kept
//! cut after their last non-empty bucket. Measured (6 source partitions,
//! histograms of a few buckets): about 1 KB per window × value once its
//! records closed, 0.8 KB per open record; 48 hours of minutes of 20
//! values, all closed, take 59 MB.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::{Arc, RwLock, RwLockReadGuard, RwLockWriteGuard};

use tokio::sync::watch;

use super::totals::trimmed;
pub use super::totals::{Percentiles, Summary, Totals, COUNTS};
use crate::message::{now_millis, Stats, StatsDimension, StatsWindow};
use crate::schema::{self, DecodeError};

const HOUR_MS: i64 = 3_600_000;
const DAY_MS: i64 = 24 * HOUR_MS;

/// How long the book keeps each window length, in milliseconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Horizon {
    pub minute: i64,
    pub hour: i64,
    pub day: i64,
}

impl Default for Horizon {
    fn default() -> Self {
        Horizon {
            minute: 48 * HOUR_MS,
            hour: 60 * DAY_MS,
            day: 400 * DAY_MS,
        }
    }
}

impl Horizon {
    /// How far back windows of `w` are kept.
    pub fn of(&self, w: StatsWindow) -> i64 {
        match w {
            StatsWindow::Minute => self.minute,
            StatsWindow::Hour => self.hour,
            StatsWindow::Day => self.day,
        }
    }
}

/// A source partition: its topic (by number, see `Inner::topics`) and
/// its partition.
type Part = (u16, i32);

/// One window × one dimension value: the latest record of each source
/// partition still open, the sum of those that closed (final: their
/// records are not kept), and the sum of both.
struct Slot {
    open: HashMap<Part, Totals>,
    closed: HashSet<Part>,
    closed_sum: Totals,
    /// `closed_sum` and the open records, while any is open.
    sum: Option<Box<Totals>>,
}

impl Default for Slot {
    fn default() -> Self {
        Slot {
            open: HashMap::new(),
            closed: HashSet::new(),
            closed_sum: Totals::empty(),
            sum: None,
        }
    }
}

impl Slot {
    fn sum(&self) -> &Totals {
        self.sum.as_deref().unwrap_or(&self.closed_sum)
    }

    /// Take `t` as `part`'s latest record; false when the part had closed
    /// (its counts are final and counted).
    fn put(&mut self, part: Part, t: Totals) -> bool {
        if self.closed.contains(&part) {
            return false;
        }
        if t.closed {
            self.open.remove(&part);
            self.closed.insert(part);
            self.closed_sum.add(&t);
            self.closed_sum = trimmed_totals(&self.closed_sum);
        } else {
            self.open.insert(part, t);
        }
        // The sum again from the open records (a handful: one per source
        // partition): a histogram's maximum cannot be taken out of a sum.
        self.sum = (!self.open.is_empty()).then(|| {
            let mut sum = self.closed_sum.clone();
            for p in self.open.values() {
                sum.add(p);
            }
            Box::new(trimmed_totals(&sum))
        });
        true
    }
}

/// `t` with its histograms cut after their last non-empty bucket.
fn trimmed_totals(t: &Totals) -> Totals {
    Totals {
        accepted_to_sent: trimmed(&t.accepted_to_sent),
        sent_to_delivered: trimmed(&t.sent_to_delivered),
        ..t.clone()
    }
}

type Values = HashMap<(StatsDimension, String), Slot>;

#[derive(Default)]
struct Inner {
    /// (window, start) → its dimension values.
    windows: BTreeMap<(StatsWindow, i64), Values>,
    /// Records not kept: outside the horizon.
    skipped: u64,
    /// Source topics by number (a handful).
    topics: Vec<String>,
}

impl Inner {
    fn topic(&mut self, name: &str) -> u16 {
        match self.topics.iter().position(|t| t == name) {
            Some(i) => i as u16,
            None => {
                self.topics.push(name.to_owned());
                (self.topics.len() - 1) as u16
            }
        }
    }
}

/// What a series, a top list or a total is asked for: windows of `window`
/// starting in `from..to` (ms since the epoch, UTC).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Range {
    pub window: StatsWindow,
    pub from: i64,
    pub to: i64,
}

/// One window of a series.
#[derive(Debug, Clone, PartialEq)]
pub struct Point {
    pub start: i64,
    pub totals: Totals,
}

/// The statistics from `sms.stats`.
pub struct StatsBook {
    horizon: Horizon,
    inner: RwLock<Inner>,
    /// Bumped on every record applied.
    changes: watch::Sender<u64>,
}

impl StatsBook {
    /// An empty book keeping the default [`Horizon`].
    pub fn new() -> Arc<Self> {
        Self::with_horizon(Horizon::default())
    }

    pub fn with_horizon(horizon: Horizon) -> Arc<Self> {
        Arc::new(StatsBook {
            horizon,
            inner: RwLock::default(),
            changes: watch::Sender::new(0),
        })
    }

    fn read(&self) -> RwLockReadGuard<'_, Inner> {
        self.inner.read().unwrap_or_else(|p| p.into_inner())
    }

    fn write(&self) -> RwLockWriteGuard<'_, Inner> {
        self.inner.write().unwrap_or_else(|p| p.into_inner())
    }

    /// Changes each time a record is applied.
    pub fn changes(&self) -> watch::Receiver<u64> {
        self.changes.subscribe()
    }

    /// Apply a record of `sms.stats` (an empty payload, a tombstone, is
    /// nothing to count).
    pub fn apply(&self, payload: &[u8]) -> Result<(), DecodeError> {
        if payload.is_empty() {
            return Ok(());
        }
        self.put(&schema::stats().decode(payload)?, now_millis());
        Ok(())
    }

    /// Keep `s`, the latest record of its key, with the clock at `now`.
    /// Whether it was kept (false: outside the horizon, or its source
    /// partition's record of the window had closed: final, counted).
    pub fn put(&self, s: &Stats, now: i64) -> bool {
        let mut inner = self.write();
        let cutoff = now - self.horizon.of(s.window);
        // Windows fallen out of the horizon go, whatever this record is.
        for w in [StatsWindow::Minute, StatsWindow::Hour, StatsWindow::Day] {
            let cut = now - self.horizon.of(w);
            let old: Vec<_> = inner
                .windows
                .range((w, i64::MIN)..(w, cut))
                .map(|(k, _)| *k)
                .collect();
            for k in old {
                inner.windows.remove(&k);
            }
        }
        if s.start < cutoff || s.start > now + DAY_MS {
            inner.skipped += 1;
            return false;
        }
        let part = (inner.topic(&s.topic), s.partition);
        let kept = inner
            .windows
            .entry((s.window, s.start))
            .or_default()
            .entry((s.dimension, s.value.clone()))
            .or_default()
            .put(part, Totals::of(s));
        drop(inner);
        if kept {
            self.changes.send_modify(|n| *n += 1);
        }
        kept
    }

    /// Records not kept because their window was outside the horizon.
    pub fn skipped(&self) -> u64 {
        self.read().skipped
    }

    /// Records held (the latest of each source partition whose window is
    /// not closed), and windows × values.
    pub fn size(&self) -> (usize, usize) {
        let inner = self.read();
        let values = inner.windows.values().flat_map(|v| v.values());
        values.fold((0, 0), |(r, s), slot| (r + slot.open.len(), s + 1))
    }

    /// The windows of `dimension` = `value` in `range` that have counts,
    /// oldest first.
    pub fn series(&self, range: Range, dimension: StatsDimension, value: &str) -> Vec<Point> {
        let key = (dimension, value.to_owned());
        self.read()
            .windows
            .range((range.window, range.from)..(range.window, range.to.max(range.from)))
            .filter_map(|(&(_, start), values)| {
                let slot = values.get(&key)?;
                Some(Point {
                    start,
                    totals: slot.sum().clone(),
                })
            })
            .collect()
    }

    /// The totals of `dimension` = `value` over `range`.
    pub fn total(&self, range: Range, dimension: StatsDimension, value: &str) -> Totals {
        let mut sum = Totals::empty();
        for p in self.series(range, dimension, value) {
            sum.add(&p.totals);
        }
        sum
    }

    /// Every value of `dimension` seen in `range`, with its totals over
    /// the range, by value.
    pub fn values(&self, range: Range, dimension: StatsDimension) -> BTreeMap<String, Totals> {
        let mut out: BTreeMap<String, Totals> = BTreeMap::new();
        let inner = self.read();
        let windows = inner
            .windows
            .range((range.window, range.from)..(range.window, range.to.max(range.from)));
        for (_, values) in windows {
            for ((d, v), slot) in values {
                if *d == dimension {
                    out.entry(v.clone())
                        .or_insert_with(Totals::empty)
                        .add(slot.sum());
                }
            }
        }
        out
    }

    /// The `n` values of `dimension` with the highest count `by` (one of
    /// [`COUNTS`]) over `range`, highest first (ties by value); values
    /// whose count is 0 are left out. `None` for an unknown count.
    pub fn top(
        &self,
        range: Range,
        dimension: StatsDimension,
        by: &str,
        n: usize,
    ) -> Option<Vec<(String, Totals)>> {
        Totals::default().count(by)?;
        let mut all: Vec<(String, Totals)> = self
            .values(range, dimension)
            .into_iter()
            .filter(|(_, t)| t.count(by).unwrap_or(0) > 0)
            .collect();
        all.sort_by(|a, b| {
            let (x, y) = (a.1.count(by), b.1.count(by));
            y.cmp(&x).then_with(|| a.0.cmp(&b.0))
        });
        all.truncate(n);
        Some(all)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::message::Latency;

    const T0: i64 = 1_764_000_000_000; // 2025-11-24 16:00 UTC, a minute start

    fn rec(start: i64, dim: StatsDimension, value: &str, partition: i32, sent: i64) -> Stats {
        let mut l = Latency::default();
        for _ in 0..sent {
            l.record(100 * (partition as i64 + 1));
        }
        Stats {
            window: StatsWindow::Minute,
            start,
            dimension: dim,
            value: value.into(),
            topic: "sms.events".into(),
            partition,
            through_offset: sent,
            inbound: 2 * sent,
            outbound: sent,
            queued: 0,
            sent,
            delivered: sent / 2,
            failed: 1,
            expired: 0,
            suppressed: 0,
            segments: sent,
            accepted_to_sent: l.clone(),
            sent_to_delivered: Latency::default(),
            closed: false,
            updated_at: start,
        }
    }

    fn minutes(from: i64, to: i64) -> Range {
        Range {
            window: StatsWindow::Minute,
            from,
            to,
        }
    }

    #[test]
    fn partitions_are_summed_and_replaced_records_not_counted_twice() {
        let book = StatsBook::new();
        let now = T0 + 300_000;
        let total = StatsDimension::Total;
        assert!(book.put(&rec(T0, total, "", 0, 4), now));
        assert!(book.put(&rec(T0, total, "", 1, 6), now));
        // Partition 0's counts grow: its record replaces the first one.
        assert!(book.put(&rec(T0, total, "", 0, 10), now));
        assert!(book.put(&rec(T0 + 60_000, total, "", 0, 1), now));
        let s = book.series(minutes(T0, T0 + 120_000), total, "");
        assert_eq!(
            s.iter().map(|p| p.start).collect::<Vec<_>>(),
            [T0, T0 + 60_000]
        );
        let t = &s[0].totals;
        assert_eq!((t.sent, t.inbound, t.delivered, t.failed), (16, 32, 8, 2));
        assert_eq!(t.accepted_to_sent.count, 16);
        assert_eq!(t.delivery_rate(), Some(0.5));
        assert!(!t.closed);
        assert_eq!(book.total(minutes(T0, T0 + 120_000), total, "").sent, 17);
        // The range's end is exclusive.
        assert_eq!(book.total(minutes(T0, T0 + 60_000), total, "").sent, 16);
        assert_eq!(book.size(), (3, 2));
        let none = Totals::default();
        assert_eq!(none.delivery_rate(), None);
        assert_eq!(none.summary().accepted_to_sent.p50_ms, None);
    }

    #[test]
    fn closed_records_are_final_and_only_their_sum_is_kept() {
        let book = StatsBook::new();
        let total = StatsDimension::Total;
        let closed = |p, sent| Stats {
            closed: true,
            ..rec(T0, total, "", p, sent)
        };
        assert!(book.put(&rec(T0, total, "", 0, 4), T0));
        assert!(book.put(&rec(T0, total, "", 1, 2), T0));
        // Partition 0 closes at 5: it replaces its open record of 4.
        assert!(book.put(&closed(0, 5), T0));
        assert_eq!(book.size(), (1, 1), "only partition 1's record is held");
        // Read again (a writer that restarted): not counted again.
        assert!(!book.put(&closed(0, 5), T0));
        assert!(!book.put(&rec(T0, total, "", 0, 9), T0));
        let range = minutes(T0, T0 + 60_000);
        let t = book.total(range, total, "");
        assert_eq!((t.sent, t.accepted_to_sent.count, t.closed), (7, 7, false));
        assert!(book.put(&closed(1, 3), T0));
        let t = book.total(range, total, "");
        assert_eq!((t.sent, t.accepted_to_sent.count, t.closed), (8, 8, true));
        assert_eq!(Percentiles::of(&t.accepted_to_sent).p99_ms, Some(200));
        assert_eq!(book.size(), (0, 1));
    }

    #[test]
    fn percentiles_come_from_the_merged_histograms() {
        let book = StatsBook::new();
        let backend = StatsDimension::Backend;
        // Partition 0: 90 latencies of 100 ms; partition 4: 10 of 500 ms.
        book.put(&rec(T0, backend, "kannel", 0, 90), T0);
        book.put(&rec(T0, backend, "kannel", 4, 10), T0);
        let t = book.total(minutes(T0, T0 + 60_000), backend, "kannel");
        let p = Percentiles::of(&t.accepted_to_sent);
        assert_eq!(p.count, 100);
        assert_eq!(
            (p.p50_ms, p.p95_ms, p.p99_ms),
            (Some(100), Some(500), Some(500))
        );
        assert_eq!((p.max_ms, p.mean_ms), (Some(500), Some(140)));
        let only_0 = Percentiles::of(&rec(T0, backend, "kannel", 0, 90).accepted_to_sent);
        assert_eq!(
            only_0.p95_ms,
            Some(100),
            "one partition alone says otherwise"
        );
    }

    #[test]
    fn top_values_are_ordered_by_the_count_asked_for() {
        let book = StatsBook::new();
        let kw = StatsDimension::Keyword;
        book.put(&rec(T0, kw, "join", 0, 3), T0);
        book.put(&rec(T0 + 60_000, kw, "join", 0, 3), T0);
        book.put(&rec(T0, kw, "stop", 0, 5), T0);
        book.put(&rec(T0, kw, "help", 1, 1), T0);
        book.put(&rec(T0, kw, "idle", 1, 0), T0);
        let range = minutes(T0, T0 + 3_600_000);
        let top = book.top(range, kw, "inbound", 2).unwrap();
        let names: Vec<(&str, i64)> = top.iter().map(|(v, t)| (v.as_str(), t.inbound)).collect();
        assert_eq!(names, [("join", 12), ("stop", 10)]);
        let all = book.top(range, kw, "sent", 10).unwrap();
        assert_eq!(all.len(), 3, "a value counting 0 is left out");
        assert!(book.top(range, kw, "bananas", 2).is_none());
        assert_eq!(book.values(range, StatsDimension::Backend).len(), 0);
    }

    #[test]
    fn memory_is_bounded_by_the_horizon() {
        let book = StatsBook::with_horizon(Horizon {
            minute: 10 * 60_000,
            ..Horizon::default()
        });
        let total = StatsDimension::Total;
        for m in 0..30 {
            book.put(&rec(T0 + m * 60_000, total, "", 0, 1), T0 + m * 60_000);
        }
        // Minutes 19..=29 started at most 10 minutes before the last clock.
        assert_eq!(book.size(), (11, 11));
        let all = minutes(T0 - 3_600_000, T0 + 3_600_000);
        assert_eq!(book.total(all, total, "").sent, 11);
        // Too old, or more than a day ahead: not kept, and counted.
        let now = T0 + 29 * 60_000;
        assert!(!book.put(&rec(T0, total, "", 1, 1), now));
        assert!(!book.put(&rec(now + 2 * DAY_MS, total, "", 1, 1), now));
        assert_eq!(book.skipped(), 2);
        assert_eq!(book.size(), (11, 11));
    }

    #[test]
    fn records_are_read_from_their_avro_encoding() {
        let book = StatsBook::new();
        let now = now_millis();
        let start = StatsWindow::Minute.start_of(now);
        let rx = book.changes();
        let bytes = schema::stats()
            .encode(&rec(start, StatsDimension::Total, "", 0, 7))
            .unwrap();
        book.apply(&bytes).unwrap();
        book.apply(&[]).unwrap();
        assert!(rx.has_changed().unwrap());
        assert_eq!(
            book.total(minutes(start, start + 60_000), StatsDimension::Total, "")
                .sent,
            7
        );
        assert!(book.apply(b"not avro").is_err());
    }
}
