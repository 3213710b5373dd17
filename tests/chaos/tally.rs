//! Counting: what the stub got against what the load sent, what the
//! topics say about the rest, and how long replies stalled after each kill.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::time::Duration;

use smsflow::bus::kafka::{read_to_end, KafkaBus};
use smsflow::config::Pipeline;
use smsflow::message::DeliveryStatus;
use smsflow::schema;

use super::stub::{Reply, Sent};

/// The counts of one run.
#[derive(Debug, Default)]
pub struct Counts {
    pub sent: usize,
    pub accepted: usize,
    pub ambiguous: usize,
    /// Ambiguous POSTs that got a reply (so they were stored).
    pub ambiguous_replied: usize,
    pub rejected: usize,
    pub refused: usize,
    pub replies: usize,
    /// Accepted, no reply, no "outcome unknown" event either.
    pub lost: Vec<u64>,
    /// Accepted, no reply, reported failed "outcome unknown" on sms.events.
    pub unknown: Vec<u64>,
    /// "outcome unknown" events whose message did reach the stub.
    pub unknown_delivered: usize,
    /// Replies beyond the first, per inbound message (any key).
    pub sent_twice: usize,
    /// Of those, repeats of a key the stub had seen (the sink resent the
    /// same reply; an idempotent provider would absorb them).
    pub same_key: usize,
    /// Inbound messages answered more than once.
    pub twice: Vec<u64>,
    /// Replies the stub could not match to a message the load sent.
    pub strays: usize,
}

/// Count `replies` against `outcomes`; `unknown` holds the messages whose
/// reply the sink reported failed "outcome unknown".
pub fn count(outcomes: &HashMap<u64, Sent>, replies: &[Reply], unknown: &BTreeSet<u64>) -> Counts {
    let mut c = Counts {
        sent: outcomes.len(),
        replies: replies.len(),
        ..Counts::default()
    };
    let mut per_seq: BTreeMap<u64, Vec<&str>> = BTreeMap::new();
    for r in replies {
        match r.seq.filter(|s| outcomes.contains_key(s)) {
            Some(seq) => per_seq.entry(seq).or_default().push(&r.key),
            None => c.strays += 1,
        }
    }
    for (seq, keys) in &per_seq {
        if keys.len() > 1 {
            c.twice.push(*seq);
            c.sent_twice += keys.len() - 1;
            let distinct: BTreeSet<&&str> = keys.iter().collect();
            c.same_key += keys.len() - distinct.len();
        }
    }
    let mut seqs: Vec<&u64> = outcomes.keys().collect();
    seqs.sort();
    for seq in seqs {
        let replied = per_seq.contains_key(seq);
        match &outcomes[seq] {
            Sent::Accepted(_) if replied => c.accepted += 1,
            Sent::Accepted(_) => {
                c.accepted += 1;
                match unknown.contains(seq) {
                    true => c.unknown.push(*seq),
                    false => c.lost.push(*seq),
                }
            }
            Sent::Ambiguous(..) => {
                c.ambiguous += 1;
                c.ambiguous_replied += usize::from(replied);
            }
            Sent::Rejected(_) => c.rejected += 1,
            Sent::Refused => c.refused += 1,
        }
    }
    c.unknown_delivered = unknown.iter().filter(|s| per_seq.contains_key(s)).count();
    c
}

/// What the replies did after one kill.
pub struct Stall {
    /// The longest wait between two replies of one partition, over the
    /// waits that end after the kill and begin before `window` passed:
    /// how long the killed replica's partitions went without a reply.
    pub gap: Duration,
    /// Its partition.
    pub partition: i32,
    /// The slowest reply to a message accepted within `window` of the kill.
    pub slowest: Duration,
}

/// The stall after a kill at `at`.
pub fn stall(
    at: Duration,
    window: Duration,
    outcomes: &HashMap<u64, Sent>,
    replies: &[Reply],
) -> Stall {
    let mut by_partition: BTreeMap<i32, Vec<Duration>> = BTreeMap::new();
    let mut first: HashMap<u64, Duration> = HashMap::new();
    for r in replies {
        by_partition.entry(r.partition).or_default().push(r.at);
        if let Some(seq) = r.seq {
            let e = first.entry(seq).or_insert(r.at);
            *e = (*e).min(r.at);
        }
    }
    let (mut gap, mut partition) = (Duration::ZERO, -1);
    for (p, mut times) in by_partition {
        times.sort();
        for w in times.windows(2) {
            if w[1] >= at && w[0] <= at + window && w[1] - w[0] > gap {
                (gap, partition) = (w[1] - w[0], p);
            }
        }
    }
    let slowest = outcomes
        .iter()
        .filter_map(|(seq, s)| match s {
            Sent::Accepted(t) if *t >= at && *t < at + window => {
                first.get(seq).map(|r| r.saturating_sub(*t))
            }
            _ => None,
        })
        .max()
        .unwrap_or_default();
    Stall {
        gap,
        partition,
        slowest,
    }
}

/// The reply latencies of the accepted messages that got one, sorted.
pub fn latencies(outcomes: &HashMap<u64, Sent>, replies: &[Reply]) -> Vec<Duration> {
    let mut first: HashMap<u64, Duration> = HashMap::new();
    for r in replies {
        if let Some(seq) = r.seq {
            let e = first.entry(seq).or_insert(r.at);
            *e = (*e).min(r.at);
        }
    }
    let mut v: Vec<Duration> = outcomes
        .iter()
        .filter_map(|(seq, s)| match s {
            Sent::Accepted(t) => first.get(seq).map(|r| r.saturating_sub(*t)),
            _ => None,
        })
        .collect();
    v.sort();
    v
}

/// The run in 10-second steps: messages accepted, replies that came, the
/// slowest reply to a message accepted then; and each partition's longest
/// wait between two replies, with when it began.
pub fn timeline(outcomes: &HashMap<u64, Sent>, replies: &[Reply]) -> Vec<String> {
    const STEP: u64 = 10;
    let mut first: HashMap<u64, Duration> = HashMap::new();
    let mut by_partition: BTreeMap<i32, Vec<Duration>> = BTreeMap::new();
    let mut came: BTreeMap<u64, usize> = BTreeMap::new();
    for r in replies {
        *came.entry(r.at.as_secs() / STEP).or_default() += 1;
        by_partition.entry(r.partition).or_default().push(r.at);
        if let Some(seq) = r.seq {
            let e = first.entry(seq).or_insert(r.at);
            *e = (*e).min(r.at);
        }
    }
    let mut accepted: BTreeMap<u64, (usize, Duration)> = BTreeMap::new();
    for (seq, s) in outcomes {
        if let Sent::Accepted(t) = s {
            let e = accepted.entry(t.as_secs() / STEP).or_default();
            e.0 += 1;
            if let Some(r) = first.get(seq) {
                e.1 = e.1.max(r.saturating_sub(*t));
            }
        }
    }
    let last = came
        .keys()
        .chain(accepted.keys())
        .max()
        .copied()
        .unwrap_or(0);
    let mut lines =
        vec!["timeline (from s: accepted, replies, slowest reply to those accepted):".to_owned()];
    for step in 0..=last {
        let (n, slowest) = accepted.get(&step).copied().unwrap_or_default();
        lines.push(format!(
            "  {:4}s: {n:5} accepted, {:5} replies, slowest {:.1}s",
            step * STEP,
            came.get(&step).copied().unwrap_or(0),
            slowest.as_secs_f64()
        ));
    }
    let gaps: Vec<String> = by_partition
        .into_iter()
        .map(|(p, mut times)| {
            times.sort();
            let (gap, from) = times
                .windows(2)
                .map(|w| (w[1] - w[0], w[0]))
                .max()
                .unwrap_or_default();
            format!(
                "p{p} {:.1}s from {:.1}s",
                gap.as_secs_f64(),
                from.as_secs_f64()
            )
        })
        .collect();
    lines.push(format!(
        "longest wait between two replies, per partition: {}",
        gaps.join(", ")
    ));
    lines
}

/// The messages whose reply the sink reported failed "outcome unknown" on
/// the events topic (read whole), by the reply's text on its send topic.
pub async fn outcome_unknown(p: &Pipeline) -> BTreeSet<u64> {
    let bus = KafkaBus::connect(&p.kafka, &[]).await.unwrap();
    let mut unknown_ids = BTreeSet::new();
    each(&bus, &p.topics.events, |payload| {
        if let Ok(e) = schema::event().decode(payload) {
            let why = e.error.as_deref().unwrap_or_default();
            if e.status == DeliveryStatus::Failed && why.starts_with("outcome unknown") {
                unknown_ids.insert(e.message_id);
            }
        }
    })
    .await;
    let mut seqs = BTreeSet::new();
    each(&bus, &p.topics.send("gateway"), |payload| {
        if let Ok(m) = schema::outbound().decode(payload) {
            if unknown_ids.contains(&m.id) {
                if let Some(seq) = m.text.strip_prefix('c').and_then(|n| n.parse().ok()) {
                    seqs.insert(seq);
                }
            }
        }
    })
    .await;
    seqs
}

/// For the messages in `seqs` (lost ones): how many reached each topic.
pub async fn where_lost(p: &Pipeline, seqs: &[u64]) -> Vec<(String, usize)> {
    let bus = KafkaBus::connect(&p.kafka, &[]).await.unwrap();
    let wanted: BTreeSet<u64> = seqs.iter().copied().collect();
    let seq_of = |text: &str| {
        text.trim_start_matches("echo ")
            .strip_prefix('c')
            .and_then(|n| n.parse::<u64>().ok())
            .filter(|s| wanted.contains(s))
    };
    let t = &p.topics;
    let mut found = Vec::new();
    for topic in [
        t.inbound.clone(),
        t.app("echo"),
        t.outbound.clone(),
        t.send("gateway"),
    ] {
        let mut seen = BTreeSet::new();
        each(&bus, &topic, |payload| {
            let text = if topic == t.inbound {
                schema::inbound().decode(payload).ok().map(|m| m.text)
            } else if topic == t.app("echo") {
                schema::routed()
                    .decode(payload)
                    .ok()
                    .map(|m| m.message.text)
            } else {
                schema::outbound().decode(payload).ok().map(|m| m.text)
            };
            if let Some(seq) = text.as_deref().and_then(seq_of) {
                seen.insert(seq);
            }
        })
        .await;
        found.push((topic, seen.len()));
    }
    found
}

/// Call `f` with each record's payload on `topic`, from the start to its
/// end now.
async fn each(bus: &KafkaBus, topic: &str, mut f: impl FnMut(&[u8])) {
    let group = format!("chaos-count-{}", smsflow::message::new_id());
    let (mut reader, progress) = bus.reader(&group, topic).await.unwrap();
    read_to_end(&mut reader, topic, &progress, async |r| {
        f(&r.payload);
        Ok::<_, smsflow::bus::BusError>(())
    })
    .await
    .unwrap();
}
