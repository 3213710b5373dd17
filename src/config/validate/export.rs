//! `export:`: a directory, topic names that are names (once each), sizes
//! that let something through.

use std::time::Duration;

use super::rules::topic_name;
use crate::config::node::Path;
use crate::config::types::Pipeline;

pub(super) fn check(p: &Pipeline, report: &mut impl FnMut(Path, String)) {
    let Some(e) = &p.export else { return };
    let at = Path::default().key("export");
    if e.dir.trim().is_empty() {
        report(
            at.key("dir"),
            "`dir` is required: the directory the exported files go to, such as /var/lib/smsflow/export".into(),
        );
    }
    for (i, topic) in e.topics.iter().enumerate() {
        if let Err(why) = topic_name(topic, false) {
            report(at.key("topics").index(i), why);
        } else if e.topics[..i].contains(topic) {
            report(
                at.key("topics").index(i),
                format!("{topic:?} is listed twice"),
            );
        }
    }
    if e.flush_size == 0 {
        report(
            at.key("flush_size"),
            "0 records per file: expected at least 1".into(),
        );
    }
    if e.rotate_interval < Duration::from_secs(1) {
        report(
            at.key("rotate_interval"),
            format!(
                "{:?}: expected at least 1s (a file is closed this long after it was opened)",
                e.rotate_interval
            ),
        );
    }
}
