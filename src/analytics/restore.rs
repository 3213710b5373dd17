//! What `sms.stats` holds of each source partition's open windows, as
//! read by a follower of the topic: a partition's next owner starts from it.
//!
//! Every record of a source partition is kept until its window is written
//! `closed` (then only the stream time it implies is kept: at least the
//! window's end plus the grace).

use std::collections::HashMap;
use std::sync::Mutex;

use crate::message::Stats;

#[derive(Debug, Default)]
struct Part {
    /// The least stream time the records imply.
    stream_time: Option<i64>,
    /// Open cells, by record key.
    open: HashMap<String, Stats>,
}

/// The open windows of every source partition, as the topic holds them.
#[derive(Debug, Default)]
pub struct Restored {
    grace_ms: i64,
    parts: Mutex<HashMap<(String, i32), Part>>,
}

impl Restored {
    pub fn new(grace_ms: i64) -> Self {
        Restored {
            grace_ms,
            parts: Mutex::default(),
        }
    }

    /// Apply one record read from `sms.stats`.
    pub fn apply(&self, s: Stats) {
        let mut parts = self.parts.lock().unwrap_or_else(|p| p.into_inner());
        let part = parts.entry((s.topic.clone(), s.partition)).or_default();
        let implied = match s.closed {
            true => s.start + s.window.millis() + self.grace_ms,
            false => s.start,
        };
        part.stream_time = Some(part.stream_time.map_or(implied, |t| t.max(implied)));
        let key = s.key();
        if s.closed {
            part.open.remove(&key);
            return;
        }
        // A record read back after a newer one of the same cell (two
        // owners for a moment) does not undo it.
        match part.open.get(&key) {
            Some(held) if held.through_offset > s.through_offset => {}
            _ => {
                part.open.insert(key, s);
            }
        }
    }

    /// The stream time and open cells of `topic`'s `partition`.
    pub fn of(&self, topic: &str, partition: i32) -> (Option<i64>, Vec<Stats>) {
        let parts = self.parts.lock().unwrap_or_else(|p| p.into_inner());
        match parts.get(&(topic.to_owned(), partition)) {
            Some(p) => (p.stream_time, p.open.values().cloned().collect()),
            None => (None, Vec::new()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::message::{StatsDimension, StatsWindow};

    fn stats(start: i64, through: i64, closed: bool) -> Stats {
        Stats {
            through_offset: through,
            inbound: through + 1,
            closed,
            ..Stats::empty(
                StatsWindow::Minute,
                start,
                StatsDimension::Total,
                "",
                "sms.inbound",
                2,
            )
        }
    }

    #[test]
    fn keeps_the_newest_open_cells_and_the_stream_time_closed_ones_imply() {
        let r = Restored::new(1_000);
        r.apply(stats(0, 5, false));
        r.apply(stats(0, 3, false));
        r.apply(stats(60_000, 9, false));
        let (t, open) = r.of("sms.inbound", 2);
        assert_eq!(t, Some(60_000));
        assert_eq!(open.len(), 2);
        assert!(open.iter().any(|s| s.start == 0 && s.through_offset == 5));
        r.apply(stats(0, 5, true));
        let (t, open) = r.of("sms.inbound", 2);
        assert_eq!(t, Some(61_000), "end + grace of the closed window");
        assert_eq!(open.len(), 1);
        assert_eq!(r.of("sms.inbound", 1), (None, Vec::new()));
    }
}
