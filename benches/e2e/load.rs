//! The load and what the sink saw: the generated messages (phone numbers,
//! stamped texts), the pipeline started with the discard sink's hook, and
//! the counts and latencies that hook records.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::bail;
use bytes::Bytes;
use hdrhistogram::Histogram;
use smsflow::backends::discard::SendHook;
use smsflow::bus::Produce;
use smsflow::config::Pipeline;
use smsflow::message::{Connection, InboundMessage, OutboundMessage};
use smsflow::schema;
use smsflow::topology::{Running, Topology};
use tokio::sync::{Notify, Semaphore};

/// Distinct phone numbers the load comes from.
pub const PHONES: u64 = 10_000;
/// Latencies are recorded up to this many microseconds (10 minutes).
const MAX_LATENCY_US: u64 = 600_000_000;
/// The discard backend of `pipelines/loadtest.yaml`.
pub const BACKEND: &str = "load";

/// What the discard sink saw: how many, and the latency of the stamped ones.
pub struct Observed {
    epoch: Instant,
    pub seen: AtomicU64,
    /// Microseconds from the stamp (the text after `@`) to the sink.
    pub latency: Mutex<Histogram<u64>>,
    /// The generator's window: a permit back per message seen.
    pub window: Semaphore,
    target: AtomicU64,
    all_seen: Notify,
}

impl Observed {
    pub fn new(window: usize) -> Arc<Observed> {
        Arc::new(Observed {
            epoch: Instant::now(),
            seen: AtomicU64::new(0),
            latency: Mutex::new(
                Histogram::new_with_bounds(1, MAX_LATENCY_US, 3).expect("valid bounds"),
            ),
            window: Semaphore::new(window),
            target: AtomicU64::new(u64::MAX),
            all_seen: Notify::new(),
        })
    }

    fn micros(&self) -> u64 {
        self.epoch.elapsed().as_micros() as u64
    }

    /// The text of a stamped message: `echo @<micros now>`.
    pub fn stamp(&self) -> String {
        format!("echo @{}", self.micros())
    }

    pub fn hook(self: &Arc<Self>) -> SendHook {
        let me = self.clone();
        Arc::new(move |msg: &OutboundMessage| {
            if let Some(Ok(sent)) = msg.text.strip_prefix('@').map(str::parse::<u64>) {
                let us = me.micros().saturating_sub(sent);
                let mut h = me.latency.lock().unwrap_or_else(|p| p.into_inner());
                // Past the bounds (10 minutes) counts as the bound.
                h.saturating_record(us.clamp(1, MAX_LATENCY_US));
            }
            me.window.add_permits(1);
            if me.seen.fetch_add(1, Ordering::AcqRel) + 1 >= me.target.load(Ordering::Acquire) {
                me.all_seen.notify_one();
            }
        })
    }

    /// Wait until the sink saw `n` messages in all; error after `limit`.
    pub async fn wait_for(&self, n: u64, limit: Duration) -> anyhow::Result<()> {
        self.target.store(n, Ordering::Release);
        let deadline = tokio::time::Instant::now() + limit;
        while self.seen.load(Ordering::Acquire) < n {
            if tokio::time::timeout_at(deadline, self.all_seen.notified())
                .await
                .is_err()
            {
                bail!(
                    "the sink saw {} of {n} messages within {limit:?}",
                    self.seen.load(Ordering::Acquire)
                );
            }
        }
        Ok(())
    }

    pub fn percentiles(&self) -> String {
        let h = self.latency.lock().unwrap_or_else(|p| p.into_inner());
        let ms = |us: u64| us as f64 / 1000.0;
        format!(
            "p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms",
            ms(h.value_at_quantile(0.50)),
            ms(h.value_at_quantile(0.99)),
            ms(h.max())
        )
    }
}

pub async fn start(p: Pipeline, observed: &Arc<Observed>, http: bool) -> anyhow::Result<Running> {
    Topology::new(p)?
        .with_send_hook(BACKEND, observed.hook())
        .start(None, http)
        .await
}

/// The `i`-th generated message, from one of [`PHONES`] numbers.
pub fn inbound(topic: &Arc<str>, i: u64, text: &str) -> Produce {
    let msg = InboundMessage::new(Connection::new(BACKEND, phone(i)), text);
    let payload = schema::inbound()
        .encode(&msg)
        .expect("an InboundMessage always encodes");
    Produce::new(topic.clone(), Bytes::from(msg.connection.key()), payload)
}

pub fn phone(i: u64) -> String {
    format!("+1555{:07}", i % PHONES)
}
