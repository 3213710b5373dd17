//! Consumer lag from librdkafka's statistics (`statistics.interval.ms`), as
//! the gauge `smsflow_consumer_lag{stage,topic,partition}`: for each
//! partition assigned to this process, the records the stage's group has
//! still to finish there, computed as KEDA's Kafka scaler and
//! `kafka-consumer-groups --describe` do (end offset minus committed offset).
//!
//! Each consumer reports through its own [`LagReporter`]: a series it set is
//! removed when the partition is no longer assigned to it (revoked after a
//! rebalance) and when the consumer is dropped, so that no partition keeps
//! reporting a lag nobody here is working off.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{LazyLock, Mutex, MutexGuard};

use rdkafka::statistics::Partition;
use rdkafka::Statistics;

use crate::metrics::metrics;

/// One series: stage, topic, partition.
type Series = (String, String, i32);

/// Which reporter set each series last. When a partition moves between two
/// members in the same process, only its current owner removes it.
static OWNERS: LazyLock<Mutex<HashMap<Series, u64>>> = LazyLock::new(Mutex::default);

fn owners() -> MutexGuard<'static, HashMap<Series, u64>> {
    // The map stays consistent whatever panicked while holding it.
    OWNERS.lock().unwrap_or_else(|e| e.into_inner())
}

/// `statistics.interval.ms` for a consumer of `topics`: a group member
/// (subscribed to topics) reports its lag every 5 s; a reader by assignment
/// (no topics) does not, its group being a throwaway of its own.
pub fn interval(topics: &[&str]) -> &'static str {
    if topics.is_empty() {
        "0"
    } else {
        "5000"
    }
}

/// Reports one consumer's lag under its stage's name.
pub struct LagReporter {
    id: u64,
    stage: String,
}

impl LagReporter {
    /// A reporter for `stage`: a stage's consumer group is named
    /// `<kafka.group>.<stage>`, and reports under the name without the prefix.
    pub fn new(stage: &str) -> LagReporter {
        static NEXT: AtomicU64 = AtomicU64::new(1);
        LagReporter {
            id: NEXT.fetch_add(1, Ordering::Relaxed),
            stage: stage.to_owned(),
        }
    }

    /// Set the gauge of every partition `stats` shows assigned, and remove
    /// the series this reporter set before for partitions no longer so.
    pub fn record(&self, stats: &Statistics) {
        let gauge = &metrics().consumer_lag;
        let mut now = HashSet::new();
        let mut owners = owners();
        for (topic, t) in &stats.topics {
            for p in t.partitions.values() {
                let Some(lag) = partition_lag(p) else {
                    continue;
                };
                let partition = p.partition.to_string();
                gauge
                    .with_label_values(&[self.stage.as_str(), topic, &partition])
                    .set(lag);
                let series = (self.stage.clone(), topic.clone(), p.partition);
                owners.insert(series.clone(), self.id);
                now.insert(series);
            }
        }
        owners.retain(|series, owner| {
            let gone = *owner == self.id && !now.contains(series);
            if gone {
                remove(series);
            }
            !gone
        });
    }
}

impl Drop for LagReporter {
    fn drop(&mut self) {
        owners().retain(|series, owner| {
            let mine = *owner == self.id;
            if mine {
                remove(series);
            }
            !mine
        });
    }
}

fn remove((stage, topic, partition): &Series) {
    // Absent already is fine: nothing to remove.
    let _ = metrics().consumer_lag.remove_label_values(&[
        stage.as_str(),
        topic.as_str(),
        &partition.to_string(),
    ]);
}

/// What the group has still to finish on `p`, if `p` is a real partition
/// assigned to this consumer (`desired`) whose end is known. librdkafka's
/// `consumer_lag` when it has one; with no committed offset yet, the records
/// the partition holds (stages start at the oldest, `auto.offset.reset:
/// earliest`); a committed offset past the end a broker reports is 0.
pub fn partition_lag(p: &Partition) -> Option<i64> {
    // read_committed (librdkafka's default) ends at the last stable offset.
    let end = if p.ls_offset >= 0 {
        p.ls_offset
    } else {
        p.hi_offset
    };
    if p.partition < 0 || !p.desired || end < 0 {
        return None;
    }
    if p.consumer_lag >= 0 {
        return Some(p.consumer_lag);
    }
    let from = if p.committed_offset >= 0 {
        p.committed_offset
    } else {
        p.lo_offset.max(0)
    };
    Some((end - from).max(0))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Statistics librdkafka emitted for a member of `demo.router-in`
    /// reading `sms.inbound` (2 partitions) on tansu: partition 0 holds 5
    /// records, 2 committed; partition 1 holds 3, none committed; `-1` is
    /// librdkafka's internal unassigned partition.
    fn fixture() -> Statistics {
        serde_json::from_str(include_str!("lag_stats.json")).unwrap()
    }

    /// The value of the series, as `/metrics` shows it.
    fn shown(stage: &str, topic: &str, partition: i32) -> Option<String> {
        let prefix = format!(
            "smsflow_consumer_lag{{partition=\"{partition}\",stage=\"{stage}\",topic=\"{topic}\"}} "
        );
        crate::metrics::render()
            .lines()
            .find_map(|l| l.strip_prefix(&prefix).map(str::to_owned))
    }

    #[test]
    fn assigned_partitions_show_what_is_left_and_the_internal_one_is_skipped() {
        let stats = fixture();
        let r = LagReporter::new("unit-router-in");
        r.record(&stats);
        assert_eq!(
            shown("unit-router-in", "sms.inbound", 0).as_deref(),
            Some("3")
        );
        // Nothing committed: all it holds.
        assert_eq!(
            shown("unit-router-in", "sms.inbound", 1).as_deref(),
            Some("3")
        );
        assert_eq!(shown("unit-router-in", "sms.inbound", -1), None);
    }

    #[test]
    fn a_revoked_partition_stops_reporting_and_so_does_a_dropped_consumer() {
        let mut stats = fixture();
        let r = LagReporter::new("unit-revoke");
        r.record(&stats);
        assert!(shown("unit-revoke", "sms.inbound", 1).is_some());
        let t = stats.topics.get_mut("sms.inbound").unwrap();
        let p1 = t.partitions.get_mut(&1).unwrap();
        p1.desired = false;
        p1.fetch_state = "none".into();
        r.record(&stats);
        assert_eq!(shown("unit-revoke", "sms.inbound", 1), None);
        assert_eq!(shown("unit-revoke", "sms.inbound", 0).as_deref(), Some("3"));
        drop(r);
        assert_eq!(shown("unit-revoke", "sms.inbound", 0), None);
    }

    #[test]
    fn a_partition_moved_to_another_member_here_is_kept_by_its_new_owner() {
        let stats = fixture();
        let (a, b) = (LagReporter::new("unit-move"), LagReporter::new("unit-move"));
        a.record(&stats);
        b.record(&stats); // b now owns both series
        drop(a);
        assert_eq!(shown("unit-move", "sms.inbound", 0).as_deref(), Some("3"));
    }

    #[test]
    fn lag_follows_the_offsets() {
        let mut p = fixture().topics["sms.inbound"].partitions[&0].clone();
        assert_eq!(partition_lag(&p), Some(3));
        // Caught up: librdkafka says 0.
        p.consumer_lag = 0;
        assert_eq!(partition_lag(&p), Some(0));
        // A committed offset past a short reported end.
        (p.consumer_lag, p.committed_offset) = (-1, 9);
        assert_eq!(partition_lag(&p), Some(0));
        // No committed offset: from the oldest held.
        (p.committed_offset, p.lo_offset) = (-1001, 2);
        assert_eq!(partition_lag(&p), Some(3));
        // End not known yet, or not assigned: nothing to say.
        (p.ls_offset, p.hi_offset) = (-1001, -1001);
        assert_eq!(partition_lag(&p), None);
        let mut q = fixture().topics["sms.inbound"].partitions[&0].clone();
        q.desired = false;
        assert_eq!(partition_lag(&q), None);
    }
}
