//! Bad ranges, a missing topic, an empty range, a bus replay cannot read:
//! each refused with an error naming what was wrong.

use super::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_arguments_are_refused_naming_them() {
    require_tools!(common::Tool::Tansu);
    let broker = common::broker::Broker::start();
    let brokers = broker.brokers();
    let dir = tempfile::tempdir().unwrap();
    let url = "http://127.0.0.1:9/send";
    let apps = "  - type: echo\n";
    let file = pipeline(dir.path(), "p.yaml", &brokers, url, &["echo"], apps);
    let p = file.to_str().unwrap();

    // No inbound topic yet.
    let e = refused(&[p, "--from", "1h"]).await;
    assert!(e.contains("topic sms.inbound does not exist"), "{e}");

    inbound(&brokers, &["echo a", "echo b"]).await;
    let cases: &[(&[&str], &str)] = &[
        (&[], "give the range's start: --from TIME"),
        (
            &["--from", "yesterday-ish"],
            "--from \"yesterday-ish\": not a time",
        ),
        (
            &["--from", "1h", "--to", "2h"],
            "--from must be before --to",
        ),
        (
            &["--from", "2999-01-01T00:00:00Z"],
            "--from \"2999-01-01T00:00:00Z\" is in the future",
        ),
        (
            &["--from-offset", "7:0"],
            "--from-offset: sms.inbound has no partition 7",
        ),
        (
            &["--from-offset", "0"],
            "--from-offset \"0\": expected PARTITION:OFFSET",
        ),
        (
            &["--from-offset", "0:0", "--to-offset", "0:x"],
            "--to-offset \"0:x\"",
        ),
        (
            &["--from-offset", "0:99"],
            "--from-offset 0:99: past the end",
        ),
        (&["--from", "1h", "--id", "a/b"], "--id \"a/b\""),
        (
            &["--from", "1h", "--from-offset", "0:0"],
            "cannot be used with",
        ),
    ];
    for (args, want) in cases {
        let mut all = vec![p];
        all.extend_from_slice(args);
        let e = refused(&all).await;
        assert!(e.contains(want), "{args:?}: {e}");
    }
    // An empty range: after every message.
    tokio::time::sleep(std::time::Duration::from_millis(1500)).await;
    let now = chrono::Utc::now().to_rfc3339();
    let e = refused(&[p, "--from", &now]).await;
    assert!(
        e.contains("the range holds no message of sms.inbound"),
        "{e}"
    );

    // Buses replay cannot read.
    for (kafka, want) in [
        ("embedded", "the in-memory embedded bus lives inside"),
        (
            "{mode: embedded, data_dir: data}",
            "the durable embedded bus (kafka.data_dir)",
        ),
        ("mock", "librdkafka's mock cluster"),
    ] {
        let yaml = format!("kafka: {kafka}\nbackends:\n  - type: tester\nroutes:\n  - app: echo\napps:\n  - type: echo\n");
        let path = dir.path().join("embedded.yaml");
        std::fs::write(&path, yaml).unwrap();
        let e = refused(&[path.to_str().unwrap(), "--from", "1h"]).await;
        assert!(e.contains(want), "{kafka}: {e}");
    }
}
