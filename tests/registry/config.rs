//! `kafka.framing`, `kafka.topic_framing` and `kafka.schema_registry`
//! refused where they cannot work, naming the key.

use smsflow::config::ConfigError;
use smsflow::topology::load_str;

const GOOD: &str = "\
backends:
  - type: tester
routes:
  - app: echo
apps:
  - type: echo
  - type: default
";

fn only(yaml: &str) -> ConfigError {
    let mut e = load_str(yaml, &|_: &str| None).expect_err("the pipeline must be rejected");
    assert_eq!(e.len(), 1, "expected one error, got {e:#?}");
    e.remove(0)
}

fn at(e: &ConfigError, line: u32, column: u32, words: &[&str]) {
    assert_eq!((e.line, e.column), (line, column), "{e}");
    for w in words {
        assert!(e.message.contains(w), "{w:?} not in {e}");
    }
}

#[test]
fn framing_and_registries_are_for_kafka_topics() {
    at(
        &only(&format!(
            "{GOOD}kafka:\n  mode: embedded\n  framing: confluent\n"
        )),
        10,
        12,
        &["`framing`", "embedded bus keeps single-object"],
    );
    at(
        &only(&format!(
            "{GOOD}kafka:\n  mode: mock\n  framing: confluence\n"
        )),
        10,
        12,
        &["confluence"],
    );
    let registry = |url: &str, more: &str| {
        format!("{GOOD}kafka:\n  mode: mock\n  framing: confluent\n  schema_registry:\n    url: '{url}'\n{more}")
    };
    at(
        &only(&registry("ftp://registry", "")),
        12,
        10,
        &["\"ftp://registry\"", "http(s)"],
    );
    at(&only(&registry("not a url", "")), 12, 10, &["is not a URL"]);
    at(
        &only(&registry("https://registry:8081", "    password: x\n")),
        12,
        5,
        &["needs its `username`"],
    );
    at(
        &only(&format!(
            "{GOOD}kafka:\n  mode: mock\n  topic_framing:\n    'sms events': confluent\n"
        )),
        11,
        19,
        &["' '"],
    );
    assert!(load_str(
        &registry(
            "https://registry:8081",
            "    username: key\n    password: secret\n"
        ),
        &|_: &str| None
    )
    .is_ok());
}
