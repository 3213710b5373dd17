//! The aggregator: event-time tumbling windows per source topic-partition,
//! with Kafka Streams' grace semantics, and the `through_offset` that
//! makes counts exactly-once over restarts. Pure (no bus, no clock): the
//! stage feeds it records and writes what [`Aggregator::flush`] returns.
//!
//! Each source topic-partition has a *stream time*: the largest event time
//! read from it. A window `[start, end)` takes events until the stream time
//! reaches `end + grace`; an event for a window past that is *late*: it is
//! not counted, and [`Recorded::late`] names the windows it was late for
//! (the stage counts and logs it). A closed window is written once more
//! with `closed: true` and forgotten.
//!
//! A cell (one window × one dimension value of one source partition)
//! remembers the offset of the last record it counted (`through_offset`).
//! A record at or below it is not counted again: a partition's next owner
//! restores the open cells from `sms.stats` ([`Aggregator::restore`]) and
//! reads on from the last committed offset, which is never past what the
//! written cells count.

use std::collections::HashMap;
use std::sync::Arc;

use super::observe::{Delta, Observation};
use crate::message::{Stats, StatsDimension, StatsWindow};

/// The windows counted and their grace.
#[derive(Debug, Clone)]
pub struct Settings {
    pub windows: Vec<StatsWindow>,
    /// Milliseconds after a window's end that it still takes events.
    pub grace_ms: i64,
}

/// A source topic and partition.
pub type Source = (Arc<str>, i32);

/// What [`Aggregator::record`] did with a record.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Recorded {
    /// Counted in at least one cell.
    pub counted: bool,
    /// The windows it came too late for.
    pub late: Vec<StatsWindow>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
struct CellKey {
    window: StatsWindow,
    start: i64,
    dimension: StatsDimension,
    /// Index into the partition's values.
    value: u32,
}

#[derive(Debug, Clone)]
struct Cell {
    counts: Stats,
    dirty: bool,
}

/// One source partition's windows.
#[derive(Debug, Default)]
struct Part {
    /// The largest event time read (or restored); `None` before any.
    stream_time: Option<i64>,
    cells: HashMap<CellKey, Cell>,
    ids: HashMap<String, u32>,
    names: Vec<String>,
}

impl Part {
    fn id(&mut self, value: &str) -> u32 {
        if let Some(id) = self.ids.get(value) {
            return *id;
        }
        let id = self.names.len() as u32;
        self.names.push(value.to_owned());
        self.ids.insert(value.to_owned(), id);
        id
    }

    /// Whether the window `[start, start + len)` is closed.
    fn closed(&self, window: StatsWindow, start: i64, grace: i64) -> bool {
        self.stream_time
            .is_some_and(|t| t >= start + window.millis() + grace)
    }
}

/// The open windows of every source partition this process counts.
#[derive(Debug)]
pub struct Aggregator {
    settings: Settings,
    parts: HashMap<Source, Part>,
}

/// An empty record of one cell.
fn empty(
    window: StatsWindow,
    start: i64,
    dimension: StatsDimension,
    value: &str,
    source: &Source,
) -> Stats {
    Stats::empty(window, start, dimension, value, &source.0, source.1)
}

fn add(s: &mut Stats, d: &Delta) {
    s.inbound += d.inbound;
    s.outbound += d.outbound;
    s.queued += d.queued;
    s.sent += d.sent;
    s.delivered += d.delivered;
    s.failed += d.failed;
    s.expired += d.expired;
    s.suppressed += d.suppressed;
    s.segments += d.segments;
    if let Some(ms) = d.accepted_to_sent {
        s.accepted_to_sent.record(ms);
    }
    if let Some(ms) = d.sent_to_delivered {
        s.sent_to_delivered.record(ms);
    }
}

impl Aggregator {
    pub fn new(settings: Settings) -> Self {
        Aggregator {
            settings,
            parts: HashMap::new(),
        }
    }

    pub fn settings(&self) -> &Settings {
        &self.settings
    }

    /// Whether `source` has state here (restored, or counted since).
    pub fn has(&self, source: &Source) -> bool {
        self.parts.contains_key(source)
    }

    /// Count the record at `offset` of `source`.
    pub fn record(&mut self, source: &Source, offset: i64, o: &Observation<'_>) -> Recorded {
        let grace = self.settings.grace_ms;
        let part = self.parts.entry(source.clone()).or_default();
        part.stream_time = Some(part.stream_time.map_or(o.at, |t| t.max(o.at)));
        let mut done = Recorded::default();
        for &window in &self.settings.windows {
            let start = window.start_of(o.at);
            if part.closed(window, start, grace) {
                done.late.push(window);
                continue;
            }
            for (dimension, value) in &o.dims {
                let key = CellKey {
                    window,
                    start,
                    dimension: *dimension,
                    value: part.id(value),
                };
                let cell = part.cells.entry(key).or_insert_with(|| Cell {
                    counts: empty(window, start, *dimension, value, source),
                    dirty: false,
                });
                if offset <= cell.counts.through_offset {
                    // Counted before this process took the partition.
                    continue;
                }
                add(&mut cell.counts, &o.delta);
                cell.counts.through_offset = offset;
                cell.dirty = true;
                done.counted = true;
            }
        }
        done
    }

    /// Take over `source`'s open cells as `sms.stats` holds them, and a
    /// stream time at least `stream_time` (what the records imply: the
    /// latest start of an open window, the end plus grace of a closed one).
    pub fn restore(&mut self, source: &Source, stream_time: Option<i64>, open: Vec<Stats>) {
        let part = self.parts.entry(source.clone()).or_default();
        part.stream_time = match (part.stream_time, stream_time) {
            (Some(a), Some(b)) => Some(a.max(b)),
            (a, b) => a.or(b),
        };
        for s in open {
            if s.closed || !self.settings.windows.contains(&s.window) {
                continue;
            }
            let key = CellKey {
                window: s.window,
                start: s.start,
                dimension: s.dimension,
                value: part.id(&s.value),
            };
            part.cells.insert(
                key,
                Cell {
                    counts: s,
                    dirty: false,
                },
            );
        }
    }

    /// Forget `source` (its partition went to another process).
    pub fn forget(&mut self, source: &Source) {
        self.parts.remove(source);
    }

    /// The cells changed since the last flush, and the ones whose window
    /// closed (written with `closed: true`, then forgotten), stamped `now`.
    pub fn flush(&mut self, now: i64) -> Vec<Stats> {
        let grace = self.settings.grace_ms;
        let mut out = Vec::new();
        for part in self.parts.values_mut() {
            let stream_time = part.stream_time;
            let closed =
                |k: &CellKey| stream_time.is_some_and(|t| t >= k.start + k.window.millis() + grace);
            let mut gone = Vec::new();
            for (key, cell) in part.cells.iter_mut() {
                let is_closed = closed(key);
                if cell.dirty || is_closed {
                    cell.counts.closed = is_closed;
                    cell.counts.updated_at = now;
                    out.push(cell.counts.clone());
                    cell.dirty = false;
                }
                if is_closed {
                    gone.push(*key);
                }
            }
            for key in gone {
                part.cells.remove(&key);
            }
            // Values no open cell names any more go too (keywords come and go).
            if part.names.len() > 1024 && part.names.len() > 4 * part.cells.len() {
                let mut names = Vec::new();
                let mut ids = HashMap::new();
                let cells = std::mem::take(&mut part.cells);
                for (mut key, cell) in cells {
                    let name = &part.names[key.value as usize];
                    let id = *ids.entry(name.clone()).or_insert_with(|| {
                        names.push(name.clone());
                        names.len() as u32 - 1
                    });
                    key.value = id;
                    part.cells.insert(key, cell);
                }
                part.names = names;
                part.ids = ids;
            }
        }
        out
    }

    /// Open cells held, over every partition.
    pub fn cells(&self) -> usize {
        self.parts.values().map(|p| p.cells.len()).sum()
    }
}

#[cfg(test)]
mod tests;
