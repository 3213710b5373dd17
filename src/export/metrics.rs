//! The exporter's metrics, registered with the process's others.

use std::sync::LazyLock;

use prometheus::{IntCounterVec, Opts};

use crate::metrics::metrics;

pub struct ExportMetrics {
    /// Records written to closed files, by topic.
    pub records: IntCounterVec,
    /// Files closed (renamed into place and in the manifest), by topic.
    pub files: IntCounterVec,
    /// Bytes of closed files, by topic.
    pub bytes: IntCounterVec,
    /// Records left out (not of a known schema, or not decoding) and
    /// dead-lettered, by topic.
    pub poison: IntCounterVec,
}

fn counter(name: &str, help: &str) -> IntCounterVec {
    let c =
        IntCounterVec::new(Opts::new(name, help), &["topic"]).expect("a valid metric definition");
    // Registered once (this runs once); a clash would be a bug caught by tests.
    let _ = metrics().registry.register(Box::new(c.clone()));
    c
}

static METRICS: LazyLock<ExportMetrics> = LazyLock::new(|| ExportMetrics {
    records: counter(
        "smsflow_export_records_total",
        "Records written to closed export files",
    ),
    files: counter("smsflow_export_files_total", "Export files closed"),
    bytes: counter("smsflow_export_bytes_total", "Bytes of closed export files"),
    poison: counter(
        "smsflow_export_poison_total",
        "Records the exporter left out and dead-lettered (unknown schema or undecodable)",
    ),
});

pub fn export_metrics() -> &'static ExportMetrics {
    &METRICS
}

/// Count a closed file.
pub fn closed(entry: &super::manifest::Entry) {
    let m = export_metrics();
    let t = [entry.topic.as_str()];
    m.records.with_label_values(&t).inc_by(entry.records);
    m.files.with_label_values(&t).inc();
    m.bytes.with_label_values(&t).inc_by(entry.bytes);
}
