//! `analytics:`: at least one window, each once; a grace and a flush
//! interval that make sense.

use std::time::Duration;

use crate::config::node::Path;
use crate::config::types::Pipeline;

/// The longest grace accepted: windows stay in memory that long after their end.
const MAX_GRACE: Duration = Duration::from_secs(7 * 86_400);

pub(super) fn check(p: &Pipeline, report: &mut impl FnMut(Path, String)) {
    let Some(a) = &p.analytics else { return };
    let at = Path::default().key("analytics");
    if a.windows.is_empty() {
        report(
            at.key("windows"),
            "no windows: expected at least one of minute, hour, day".into(),
        );
    }
    for (i, w) in a.windows.iter().enumerate() {
        if a.windows[..i].contains(w) {
            report(
                at.key("windows").index(i),
                format!("{} is listed twice: each window once", w.name()),
            );
        }
    }
    if a.grace > MAX_GRACE {
        report(
            at.key("grace"),
            format!(
                "{} is too long: expected at most 7 days (open windows stay in memory until their end plus the grace)",
                humantime::format_duration(a.grace)
            ),
        );
    }
    if a.flush < Duration::from_millis(10) || a.flush > Duration::from_secs(60) {
        report(
            at.key("flush"),
            format!(
                "{}: expected 10ms to 1m (the offsets of what was counted are committed only after a flush)",
                humantime::format_duration(a.flush)
            ),
        );
    }
}
