//! Every metric, defined once. Label values come from the pipeline (stage,
//! topic, backend names) and fixed error kinds, never from message content.

use std::sync::LazyLock;

use prometheus::{
    Encoder, HistogramOpts, HistogramVec, IntCounterVec, IntGaugeVec, Opts, Registry, TextEncoder,
};

pub struct Metrics {
    pub registry: Registry,
    /// Records a stage read (or requests a source accepted).
    pub received: IntCounterVec,
    /// Records a stage wrote, by topic.
    pub produced: IntCounterVec,
    /// Failures by kind (`decode`, `invalid`, `app`, `bus`, ...).
    pub errors: IntCounterVec,
    /// Records sent to the dead-letter topic.
    pub dead_lettered: IntCounterVec,
    /// Messages deliberately not passed on, by reason (`blocked`, `unrouted`, `cancelled`).
    pub dropped: IntCounterVec,
    /// Time to handle one record and enqueue its outputs.
    pub latency: HistogramVec,
    /// An outbound message's creation → its backend sink.
    pub reply_latency: HistogramVec,
    /// 1 while the stage runs.
    pub up: IntGaugeVec,
    /// Provider requests by backend and outcome (accepted, rejected, retry).
    pub provider_requests: IntCounterVec,
    /// Seconds sinks waited for their rate limits.
    pub rate_limited: prometheus::CounterVec,
    /// Delivery reports received from providers, by backend and status.
    pub reports: IntCounterVec,
    /// Message ids a sink process holds in memory from its sent-log.
    pub sent_log_entries: IntGaugeVec,
    /// Records a stage's group has still to finish, by topic and partition
    /// (the end offset minus the committed one), for the partitions this
    /// process is assigned.
    pub consumer_lag: IntGaugeVec,
    /// A campaign's messages by the furthest status each reached, as this
    /// process counts them from `sms.events` (label values: campaign ids,
    /// which operators choose).
    pub campaign_messages: IntGaugeVec,
    /// Messages the `analytics` stage counted, by backend, direction and status.
    pub analytics_messages: IntCounterVec,
    /// Accepted → sent and sent → delivered, by backend (the `analytics` stage).
    pub analytics_latency: HistogramVec,
    /// Events that came after their window closed (not counted in it).
    pub analytics_late: IntCounterVec,
    /// Records the `analytics` stage wrote to `topics.stats`, by window.
    pub analytics_records: IntCounterVec,
    /// A modem's signal (`AT+CSQ` RSSI, 0–31; 99 unknown).
    pub modem_signal: IntGaugeVec,
    /// A modem's registration (`AT+CREG?` stat: 1 home, 5 roaming).
    pub modem_registration: IntGaugeVec,
    /// Whether a modem is connected and set up (1) or not (0).
    pub modem_ready: IntGaugeVec,
    /// A modem's failures, by kind (`link`, `init`, `cms`, `timeout`,
    /// `pdu`, `store`, `unmatched_report`).
    pub modem_errors: IntCounterVec,
}

fn build() -> Result<Metrics, prometheus::Error> {
    let registry = Registry::new();
    let counter =
        |name: &str, help: &str, labels: &[&str]| -> Result<IntCounterVec, prometheus::Error> {
            let c = IntCounterVec::new(Opts::new(name, help), labels)?;
            registry.register(Box::new(c.clone()))?;
            Ok(c)
        };
    let m = Metrics {
        received: counter(
            "smsflow_received_total",
            "Records read by a stage",
            &["stage"],
        )?,
        produced: counter(
            "smsflow_produced_total",
            "Records written by a stage",
            &["stage", "topic"],
        )?,
        errors: counter(
            "smsflow_errors_total",
            "Failures by stage and kind",
            &["stage", "kind"],
        )?,
        dead_lettered: counter(
            "smsflow_dead_lettered_total",
            "Records sent to the dead-letter topic",
            &["stage"],
        )?,
        dropped: counter(
            "smsflow_dropped_total",
            "Messages deliberately not passed on",
            &["stage", "reason"],
        )?,
        latency: HistogramVec::new(
            HistogramOpts::new(
                "smsflow_stage_seconds",
                "Time to handle one record and enqueue its outputs",
            )
            .buckets(vec![
                1e-5, 5e-5, 1e-4, 5e-4, 1e-3, 5e-3, 0.01, 0.05, 0.1, 0.5, 1.0,
            ]),
            &["stage"],
        )?,
        reply_latency: HistogramVec::new(
            HistogramOpts::new(
                "smsflow_reply_seconds",
                "From an outbound message's creation to its backend sink",
            )
            .buckets(vec![
                0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
            ]),
            &["backend"],
        )?,
        up: IntGaugeVec::new(
            Opts::new("smsflow_stage_up", "1 while the stage runs"),
            &["stage"],
        )?,
        provider_requests: counter(
            "smsflow_provider_requests_total",
            "Messages handed to a provider, by outcome of the try: accepted, rejected, retry",
            &["backend", "outcome"],
        )?,
        rate_limited: prometheus::CounterVec::new(
            Opts::new(
                "smsflow_rate_limited_seconds_total",
                "Time backend sinks waited for their rate limits",
            ),
            &["backend"],
        )?,
        reports: counter(
            "smsflow_delivery_reports_total",
            "Delivery reports received from providers, by normalised status",
            &["backend", "status"],
        )?,
        sent_log_entries: IntGaugeVec::new(
            Opts::new(
                "smsflow_sent_log_entries",
                "Message ids a sink process holds in memory from its sent-log (at most topics.sent_memory)",
            ),
            &["backend"],
        )?,
        consumer_lag: IntGaugeVec::new(
            Opts::new(
                "smsflow_consumer_lag",
                "Records a stage's consumer group has still to finish on a partition assigned here: end offset minus committed offset",
            ),
            &["stage", "topic", "partition"],
        )?,
        campaign_messages: IntGaugeVec::new(
            Opts::new(
                "smsflow_campaign_messages",
                "A campaign's messages by the furthest status each reached (queued, sent, delivered, failed, expired, suppressed), counted from sms.events",
            ),
            &["campaign", "status"],
        )?,
        analytics_messages: counter(
            "smsflow_analytics_messages_total",
            "Messages the analytics stage counted: direction in (status received) from sms.inbound, out (the event's status) from sms.events",
            &["backend", "direction", "status"],
        )?,
        analytics_latency: HistogramVec::new(
            HistogramOpts::new(
                "smsflow_analytics_latency_seconds",
                "Outbound latency by phase: accepted_to_sent (creation to the provider accepting it), sent_to_delivered (to the delivery report)",
            )
            .buckets(vec![
                0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0, 1800.0, 3600.0,
                86400.0,
            ]),
            &["backend", "phase"],
        )?,
        analytics_late: counter(
            "smsflow_analytics_late_events_total",
            "Events read after their window closed (its end plus the grace, by the partition's stream time): not counted in that window",
            &["topic", "window"],
        )?,
        analytics_records: counter(
            "smsflow_analytics_records_total",
            "Statistics records written to topics.stats, by window",
            &["window"],
        )?,
        modem_signal: IntGaugeVec::new(
            Opts::new("smsflow_modem_signal", "A modem's signal quality (AT+CSQ RSSI: 0-31, 99 unknown)"),
            &["backend"],
        )?,
        modem_registration: IntGaugeVec::new(
            Opts::new("smsflow_modem_registration", "A modem's network registration (AT+CREG? stat: 1 home, 5 roaming, 0/2/3 not registered)"),
            &["backend"],
        )?,
        modem_ready: IntGaugeVec::new(
            Opts::new("smsflow_modem_ready", "Whether a modem is connected and set up (1) or not (0)"),
            &["backend"],
        )?,
        modem_errors: counter(
            "smsflow_modem_errors_total",
            "A modem's failures by kind: link, init, cms, timeout, pdu, store, unmatched_report",
            &["backend", "kind"],
        )?,
        registry,
    };
    m.registry.register(Box::new(m.modem_signal.clone()))?;
    m.registry
        .register(Box::new(m.modem_registration.clone()))?;
    m.registry.register(Box::new(m.modem_ready.clone()))?;
    m.registry.register(Box::new(m.analytics_latency.clone()))?;
    m.registry.register(Box::new(m.campaign_messages.clone()))?;
    m.registry.register(Box::new(m.sent_log_entries.clone()))?;
    m.registry.register(Box::new(m.latency.clone()))?;
    m.registry.register(Box::new(m.reply_latency.clone()))?;
    m.registry.register(Box::new(m.up.clone()))?;
    m.registry.register(Box::new(m.rate_limited.clone()))?;
    m.registry.register(Box::new(m.consumer_lag.clone()))?;
    Ok(m)
}

/// The process's metrics.
pub fn metrics() -> &'static Metrics {
    static M: LazyLock<Metrics> = LazyLock::new(|| {
        // Fixed names and labels, registered once: failure is a bug caught by tests.
        build().expect("metric definitions are valid")
    });
    &M
}

/// Observe the time from `since_millis` (Unix epoch) to now, in seconds.
pub fn observe_since(h: &prometheus::Histogram, since_millis: i64) {
    h.observe((crate::message::now_millis() - since_millis).max(0) as f64 / 1000.0);
}

/// The Prometheus text exposition of every metric.
pub fn render() -> String {
    let mut buf = Vec::new();
    let families = metrics().registry.gather();
    // Encoding gathered families into a Vec cannot fail.
    let _ = TextEncoder::new().encode(&families, &mut buf);
    String::from_utf8_lossy(&buf).into_owned()
}

#[cfg(test)]
mod tests {
    #[test]
    fn renders() {
        super::metrics().received.with_label_values(&["t"]).inc();
        assert!(super::render().contains("smsflow_received_total{stage=\"t\"} "));
    }
}
