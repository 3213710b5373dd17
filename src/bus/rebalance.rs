//! A group member's partitions as they change, for what keeps state per
//! partition: a sink's sent-log must be read up to date before the sink
//! handles a partition it was just given, and what it started for a
//! partition it loses must be settled before the next owner starts.
//!
//! On Kafka the consumer's rebalance callbacks feed it; on the embedded
//! buses one process owns every partition from the start and nothing moves.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

/// A topic and one of its partitions.
pub type TopicPartition = (String, i32);

/// Called with the partitions about to be taken away, before they go: on
/// Kafka the next owner gets them only once every hook returned.
pub type RevokeHook = Arc<dyn Fn(&[TopicPartition]) + Send + Sync>;

/// One group member's assignment.
#[derive(Default)]
pub struct Rebalances {
    /// Counts the assignments received: a change tells a reader of
    /// per-partition state to catch up.
    generation: AtomicU64,
    /// The first assignment arrived (it may be empty: more members than partitions).
    joined: AtomicBool,
    /// Owns every partition for good (the embedded buses).
    fixed: bool,
    /// Topic → partition → the generation that assigned it.
    assigned: Mutex<HashMap<String, HashMap<i32, u64>>>,
    on_revoke: Mutex<Vec<RevokeHook>>,
}

impl Rebalances {
    /// A member of a group that never rebalances (the embedded buses).
    pub fn fixed() -> Arc<Rebalances> {
        let r = Rebalances {
            fixed: true,
            ..Rebalances::default()
        };
        r.joined.store(true, Ordering::Release);
        Arc::new(r)
    }

    fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
        // Nothing panics while holding these; a poisoned lock holds good data.
        m.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// How many assignments this member received.
    pub fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }

    /// Whether the member has its first assignment.
    pub fn joined(&self) -> bool {
        self.joined.load(Ordering::Acquire)
    }

    /// The partitions assigned now.
    pub fn partitions(&self) -> Vec<TopicPartition> {
        let mut all: Vec<TopicPartition> = Self::lock(&self.assigned)
            .iter()
            .flat_map(|(t, ps)| ps.keys().map(|p| (t.clone(), *p)))
            .collect();
        all.sort();
        all
    }

    /// The part of `topic`'s `partitions` this member owns (1 on the
    /// embedded buses): what it may take of a budget its group shares.
    pub fn share(&self, topic: &str, partitions: i32) -> f64 {
        if self.fixed {
            return 1.0;
        }
        let owned = Self::lock(&self.assigned)
            .get(topic)
            .map_or(0, HashMap::len);
        (owned as f64 / f64::from(partitions.max(1))).clamp(0.0, 1.0)
    }

    /// Which assignment of `topic`'s `partition` this member holds now
    /// (none: not assigned): a record read under one epoch may be marked
    /// done only under the same one.
    pub fn epoch(&self, topic: &str, partition: i32) -> Option<u64> {
        if self.fixed {
            return Some(0);
        }
        Self::lock(&self.assigned)
            .get(topic)
            .and_then(|ps| ps.get(&partition))
            .copied()
    }

    /// Call `hook` before partitions are taken away.
    pub fn on_revoke(&self, hook: RevokeHook) {
        Self::lock(&self.on_revoke).push(hook);
    }

    /// `partitions` were added to the assignment (cooperative rebalancing
    /// hands out increments; an eager one the whole list).
    pub(crate) fn assigned(&self, partitions: &[TopicPartition]) {
        let generation = self.generation.fetch_add(1, Ordering::AcqRel) + 1;
        let mut assigned = Self::lock(&self.assigned);
        for (topic, p) in partitions {
            assigned
                .entry(topic.clone())
                .or_default()
                .insert(*p, generation);
        }
        self.joined.store(true, Ordering::Release);
    }

    /// `partitions` are being taken away: run the hooks, then forget them.
    pub(crate) fn revoking(&self, partitions: &[TopicPartition]) {
        let hooks = Self::lock(&self.on_revoke).clone();
        for hook in hooks {
            hook(partitions);
        }
        let mut assigned = Self::lock(&self.assigned);
        for (topic, p) in partitions {
            if let Some(ps) = assigned.get_mut(topic) {
                ps.remove(p);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicUsize;

    #[test]
    fn assignments_count_and_revocations_run_the_hooks_first() {
        let r = Rebalances::default();
        assert!(!r.joined());
        r.assigned(&[("t".into(), 0), ("t".into(), 1)]);
        assert!(r.joined());
        assert_eq!(r.generation(), 1);
        let seen = Arc::new(AtomicUsize::new(0));
        let s = seen.clone();
        r.on_revoke(Arc::new(move |parts| {
            s.fetch_add(parts.len(), Ordering::SeqCst);
        }));
        r.revoking(&[("t".into(), 1)]);
        assert_eq!(seen.load(Ordering::SeqCst), 1);
        assert_eq!(r.partitions(), vec![("t".to_owned(), 0)]);
        assert_eq!(r.epoch("t", 0), Some(1));
        assert_eq!(r.epoch("t", 1), None);
        r.assigned(&[("t".into(), 1)]);
        assert_eq!(r.epoch("t", 1), Some(2), "a new assignment, a new epoch");
        assert!(Rebalances::fixed().joined());
        assert_eq!(Rebalances::fixed().epoch("any", 7), Some(0));
    }

    #[test]
    fn a_member_takes_its_partitions_share_of_a_budget() {
        let r = Rebalances::default();
        assert_eq!(r.share("t", 8), 0.0, "nothing owned yet");
        r.assigned(&[
            ("t".into(), 0),
            ("t".into(), 3),
            ("t".into(), 5),
            ("u".into(), 1),
        ]);
        assert_eq!(r.share("t", 8), 3.0 / 8.0);
        r.revoking(&[("t".into(), 3)]);
        assert_eq!(r.share("t", 8), 2.0 / 8.0);
        assert_eq!(r.share("t", 1), 1.0, "never more than the whole");
        assert_eq!(
            Rebalances::fixed().share("t", 8),
            1.0,
            "one process owns all"
        );
    }
}
