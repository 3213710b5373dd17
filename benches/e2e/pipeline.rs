//! The `pipeline` part: sustained messages/s through the whole pipeline,
//! produce→sink latency, RSS and CPU per million messages.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use smsflow::config::Pipeline;

use crate::ceiling::WARM_UP;
use crate::load::{inbound, start, Observed};
use crate::measure::{self_cpu, RssSampler};
use crate::run_broker::RunBroker;

pub struct PipelineResult {
    n: u64,
    secs: f64,
    pub rate: f64,
    latency: String,
    window: usize,
    peak_rss_mb: f64,
    rss_by_tenth: Vec<f64>,
    cpu_per_million: f64,
    broker_cpu_per_million: Option<f64>,
}

impl std::fmt::Display for PipelineResult {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} messages in {:.1} s: {:.0} msg/s; produce→sink {} (window {}); peak RSS {:.0} MB (by tenths: {}); CPU {:.1} s per million messages",
            self.n,
            self.secs,
            self.rate,
            self.latency,
            self.window,
            self.peak_rss_mb,
            self.rss_by_tenth
                .iter()
                .map(|m| format!("{m:.0}"))
                .collect::<Vec<_>>()
                .join(" "),
            self.cpu_per_million
        )?;
        if let Some(b) = self.broker_cpu_per_million {
            write!(f, " (+ broker {b:.1} s)")?;
        }
        Ok(())
    }
}

/// Generate `n` messages as fast as the pipeline takes them (at most
/// `window` in flight) and measure until the sink saw the last one.
pub async fn pipeline(
    p: Pipeline,
    n: u64,
    window: usize,
    broker: Option<&RunBroker>,
) -> anyhow::Result<PipelineResult> {
    let observed = Observed::new(window);
    let topic: Arc<str> = Arc::from(p.topics.inbound.as_str());
    let running = start(p, &observed, false).await?;
    // Warm up (connections, group joins) before measuring, as the ceiling does.
    let producer = running.bus().producer()?;
    for i in 0..WARM_UP {
        producer.send(inbound(&topic, i, "echo warm up")).await?;
    }
    observed.wait_for(WARM_UP, Duration::from_secs(60)).await?;
    let base = observed.seen.load(Ordering::Acquire);

    let rss = RssSampler::start();
    let cpu0 = self_cpu();
    let broker_cpu0 = broker.and_then(RunBroker::cpu);
    let started = Instant::now();
    let mut rss_by_tenth = Vec::new();
    let gen_observed = observed.clone();
    let topic = topic.clone();
    let generator = tokio::spawn(async move {
        // One group for every record: the first failed produce, if any.
        let acks = smsflow::bus::AckGroup::new();
        for i in 0..n {
            gen_observed
                .window
                .acquire()
                .await
                .expect("the window is never closed")
                .forget();
            let text = gen_observed.stamp();
            // Acknowledgements are not awaited one by one: the window
            // bounds what is in flight, and the sink's count proves delivery.
            producer
                .send_in(inbound(&topic, i, &text), Some(&acks))
                .await?;
        }
        acks.wait().await.context("the generator's records")
    });
    for tenth in 1..=10u64 {
        let limit = Duration::from_secs(60 + n / 1000);
        if let Err(e) = observed.wait_for(base + n * tenth / 10, limit).await {
            // A record the broker refused never reaches the sink: say so.
            if generator.is_finished() {
                generator.await??;
            }
            return Err(e);
        }
        rss_by_tenth.push(rss.current_mb());
    }
    let secs = started.elapsed().as_secs_f64();
    generator.await??;
    let cpu = self_cpu() - cpu0;
    let broker_cpu = broker
        .and_then(RunBroker::cpu)
        .zip(broker_cpu0)
        .map(|(a, b)| a - b);
    let peak_rss_mb = rss.stop();
    running.shutdown().await?;
    let millions = n as f64 / 1e6;
    Ok(PipelineResult {
        n,
        secs,
        rate: n as f64 / secs,
        latency: observed.percentiles(),
        window,
        peak_rss_mb,
        rss_by_tenth,
        cpu_per_million: cpu / millions,
        broker_cpu_per_million: broker_cpu.map(|c| c / millions),
    })
}
