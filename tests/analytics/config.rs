//! The `analytics:` section: its defaults, and each error naming its field.

use smsflow::config::{load_str, ConfigError};

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
