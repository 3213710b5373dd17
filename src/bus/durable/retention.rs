//! Retention: what a sweep deletes (records every group is done with, once
//! old or beyond the newest `retention_records`; a compacted topic's
//! superseded records), and forgetting a group no stage joins any more.

use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use redb::ReadableTable;
use tracing::info;

use super::store::{lock, Shared, OFFSETS};

impl Shared {
    /// Retention (see the module doc), inside `tx`.
    pub(super) fn retain(
        &self,
        tx: &redb::WriteTransaction,
        now: SystemTime,
    ) -> Result<u64, redb::Error> {
        let now_ms = now
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as i64);
        let cutoff = now_ms.saturating_sub(self.retention.as_millis() as i64);
        let forget = self.opened.elapsed() >= self.retention;
        let mut deleted = 0;
        let mut offsets = tx.open_table(OFFSETS)?;
        for t in self.topics.values() {
            let mut records = tx.open_table(t.records())?;
            for (i, part) in t.partitions.iter().enumerate() {
                let (end, needed) = {
                    let mut part = lock(part);
                    if forget {
                        let gone: Vec<Arc<str>> = part
                            .groups
                            .iter()
                            .filter(|(_, g)| !g.live)
                            .map(|(name, _)| name.clone())
                            .collect();
                        for g in gone {
                            info!(group = %g, topic = %t.name, "forgetting a group no stage joined for the retention time");
                            part.groups.remove(&g);
                            offsets.remove((&*g, &*t.name, i as i32))?;
                        }
                    }
                    (part.end, part.needed_from())
                };
                let p = i as i32;
                let below = needed.unwrap_or(i64::MAX);
                let mut doomed = Vec::new();
                if t.compacted {
                    if needed.is_some() {
                        // Superseded records the groups have now all read.
                        let keys = tx.open_table(t.keys())?;
                        for entry in records.range((p, i64::MIN)..(p, below))? {
                            let (k, v) = entry?;
                            let offset = k.value().1;
                            let latest = keys.get((p, v.value().1))?.map(|l| l.value());
                            if latest != Some(offset) {
                                doomed.push(offset);
                            }
                        }
                    }
                } else {
                    for entry in records.range((p, i64::MIN)..(p, below))? {
                        let (k, v) = entry?;
                        let offset = k.value().1;
                        let old = v.value().0 <= cutoff;
                        let beyond = self
                            .retention_records
                            .is_some_and(|n| end - offset > n as i64);
                        if !(old || beyond) {
                            break;
                        }
                        doomed.push(offset);
                    }
                }
                for offset in doomed {
                    records.remove((p, offset))?;
                    deleted += 1;
                }
            }
        }
        Ok(deleted)
    }
}
