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

#[cfg(test)]
mod tests {
    use crate::config::{load_str, ConfigError};

    const BASE: &str = "\
backends:
  - type: tester
routes:
  - app: echo
apps:
  - type: echo
";

    fn errors(analytics: &str) -> Vec<ConfigError> {
        match load_str(&format!("{BASE}{analytics}"), &|_| None, &[]) {
            Ok(_) => Vec::new(),
            Err(e) => e,
        }
    }

    #[test]
    fn the_section_alone_gives_the_defaults() {
        let p = load_str(&format!("{BASE}analytics:\n"), &|_| None, &[]).unwrap();
        let a = p.analytics.unwrap();
        assert_eq!(a.windows.len(), 3);
        assert_eq!(a.grace.as_secs(), 300);
        assert_eq!(a.flush.as_millis(), 1000);
        assert!(errors("").is_empty(), "off when absent");
    }

    #[test]
    fn each_error_names_its_field() {
        let cases = [
            (
                "analytics:\n  windows: []\n",
                "analytics.windows",
                "no windows",
            ),
            (
                "analytics:\n  windows: [minute, hour, minute]\n",
                "analytics.windows[2]",
                "minute is listed twice",
            ),
            (
                "analytics:\n  windows: [week]\n",
                "analytics.windows",
                "week",
            ),
            (
                "analytics:\n  grace: 30days\n",
                "analytics.grace",
                "at most 7 days",
            ),
            (
                "analytics:\n  flush: 1ms\n",
                "analytics.flush",
                "10ms to 1m",
            ),
            (
                "analytics:\n  flush: soon\n",
                "analytics.flush",
                "not a duration",
            ),
            ("analytics:\n  windws: [day]\n", "analytics", "windws"),
        ];
        for (yaml, path, words) in cases {
            let e = errors(yaml);
            assert_eq!(e.len(), 1, "{yaml}: {e:#?}");
            let text = e[0].to_string();
            assert!(text.contains(path), "{yaml}: {text} should name {path}");
            assert!(text.contains(words), "{yaml}: {text} should say {words:?}");
        }
    }
}
