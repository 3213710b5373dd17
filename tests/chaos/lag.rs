//! Where messages wait: each stage's consumer group's committed offsets
//! against its input topic's end, sampled every second from the broker, so
//! that a stall after a kill can be told apart by stage and partition.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::{ClientConfig, Offset, TopicPartitionList};

/// Per stage and partition: the longest time its committed offset stood
/// still while records waited, and since when; the largest lag seen.
#[derive(Default, Clone, Copy)]
struct Still {
    longest: Duration,
    from: Duration,
    max_lag: i64,
    /// The committed offset, and when it last moved (or lag appeared).
    at: i64,
    since: Option<Duration>,
}

pub struct Lag {
    stop: Arc<AtomicBool>,
    task: std::thread::JoinHandle<Vec<String>>,
}

impl Lag {
    /// Sample the groups `(stage, group, input topic)` until finished.
    pub fn start(
        brokers: &str,
        stages: Vec<(String, String, String)>,
        partitions: i32,
        t0: Instant,
    ) -> Lag {
        let stop = Arc::new(AtomicBool::new(false));
        let stopping = stop.clone();
        let brokers = brokers.to_owned();
        let task = std::thread::spawn(move || {
            let mut clients = Vec::new();
            for (stage, group, topic) in stages {
                let c: BaseConsumer = ClientConfig::new()
                    .set("bootstrap.servers", &brokers)
                    .set("group.id", &group)
                    .set("log_level", "0")
                    .create()
                    .unwrap();
                clients.push((stage, topic, c));
            }
            let mut still: BTreeMap<(String, i32), Still> = BTreeMap::new();
            while !stopping.load(Ordering::SeqCst) {
                let now = t0.elapsed();
                for (stage, topic, c) in &clients {
                    let Some(lags) = sample(c, topic, partitions) else {
                        continue;
                    };
                    for (p, committed, lag) in lags {
                        let s = still.entry((stage.clone(), p)).or_default();
                        s.max_lag = s.max_lag.max(lag);
                        if lag <= 0 || committed != s.at {
                            s.since = (lag > 0).then_some(now);
                            s.at = committed;
                        } else if let Some(since) = s.since {
                            if now - since > s.longest {
                                (s.longest, s.from) = (now - since, since);
                            }
                        } else {
                            s.since = Some(now);
                        }
                    }
                }
                std::thread::sleep(Duration::from_secs(1));
            }
            still
                .into_iter()
                .filter(|(_, s)| s.longest >= Duration::from_secs(5))
                .map(|((stage, p), s)| {
                    format!(
                        "{stage} p{p}: committed offset stood still {:.0}s from {:.0}s with records waiting (largest lag {})",
                        s.longest.as_secs_f64(),
                        s.from.as_secs_f64(),
                        s.max_lag
                    )
                })
                .collect()
        });
        Lag { stop, task }
    }

    /// Stop sampling: the partitions that stood still 5 s or more.
    pub fn finish(self) -> Vec<String> {
        self.stop.store(true, Ordering::SeqCst);
        self.task.join().unwrap()
    }
}

/// Each partition's committed offset and lag, or nothing if the broker
/// did not answer.
fn sample(c: &BaseConsumer, topic: &str, partitions: i32) -> Option<Vec<(i32, i64, i64)>> {
    let wait = Duration::from_secs(2);
    let mut tpl = TopicPartitionList::new();
    for p in 0..partitions {
        tpl.add_partition(topic, p);
    }
    let committed = c.committed_offsets(tpl, wait).ok()?;
    let mut out = Vec::new();
    for e in committed.elements() {
        let (_, end) = c.fetch_watermarks(topic, e.partition(), wait).ok()?;
        let at = match e.offset() {
            Offset::Offset(n) => n,
            _ => 0,
        };
        out.push((e.partition(), at, end - at));
    }
    Some(out)
}
