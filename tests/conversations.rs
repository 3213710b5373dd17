//! The conversation scripts under `tests/scripts/`, end to end through the
//! demo pipeline: on the embedded bus, on librdkafka's mock cluster (the real
//! Kafka client code path), and through the `smsflow test` command.

use std::process::Command;
use std::time::Duration;

use smsflow::cli::script;
use smsflow::config::KafkaMode;
use smsflow::topology::Topology;

mod common;

async fn run_all_scripts(pipeline: smsflow::config::Pipeline) {
    let running = Topology::new(pipeline)
        .unwrap()
        .start(None, false)
        .await
        .unwrap();
    let tester = running.tester(None).unwrap();
    let mut failures = Vec::new();
    for path in common::scripts() {
        let steps = script::parse(&std::fs::read_to_string(&path).unwrap()).unwrap();
        assert!(!steps.is_empty(), "{} is empty", path.display());
        for m in script::run_with(
            &tester,
            Some(&running.control()),
            &steps,
            Duration::from_secs(20),
            Duration::from_millis(300),
        )
        .await
        {
            failures.push(format!("{} {m}", path.display()));
        }
    }
    drop(tester);
    running.shutdown().await.unwrap();
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scripts_pass_on_the_embedded_bus() {
    run_all_scripts(common::demo(KafkaMode::Embedded)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scripts_pass_on_the_kafka_mock_cluster() {
    run_all_scripts(common::demo(KafkaMode::Mock)).await;
}

/// Chained, the router runs the apps and the outgoing phase itself: the
/// conversations must not change.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scripts_pass_chained_on_the_embedded_bus() {
    let mut p = common::demo(KafkaMode::Embedded);
    p.chain = smsflow::config::Chain::Every(true);
    run_all_scripts(p).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scripts_pass_chained_on_a_real_broker() {
    require_tools!(common::Tool::Tansu);
    let broker = common::broker::Broker::start();
    let mut p = common::on_broker(
        common::demo(KafkaMode::Embedded),
        &broker.brokers(),
        "scripts-chained",
    );
    p.chain = smsflow::config::Chain::Every(true);
    run_all_scripts(p).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scripts_pass_on_a_real_broker() {
    require_tools!(common::Tool::Tansu);
    let broker = common::broker::Broker::start();
    run_all_scripts(common::on_broker(
        common::demo(KafkaMode::Embedded),
        &broker.brokers(),
        "scripts",
    ))
    .await;
}

#[test]
fn the_test_command_passes_good_scripts_and_fails_bad_ones() {
    let bin = env!("CARGO_BIN_EXE_smsflow");
    let demo = common::root().join("pipelines/demo.yaml");
    let scripts = common::scripts();
    let ok = Command::new(bin)
        .arg("test")
        .arg(&demo)
        .args(&scripts)
        .env("SMSFLOW_LISTEN", "127.0.0.1:0")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&ok.stdout);
    assert!(
        ok.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&ok.stderr)
    );
    assert!(
        stdout.contains(&format!("scripts: {} passed, 0 failed", scripts.len())),
        "{stdout}"
    );

    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("bad.txt");
    std::fs::write(&bad, "+15559999 > echo hi\n+15559999 < hello\n").unwrap();
    let out = Command::new(bin)
        .arg("test")
        .arg(&demo)
        .arg(&bad)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(!out.status.success());
    assert!(
        stdout.contains("line 2: reply to +15559999 differs\n  - hello\n  + hi"),
        "{stdout}"
    );
    assert!(stdout.contains("scripts: 0 passed, 1 failed"), "{stdout}");

    std::fs::write(&bad, "+15559999 echo hi\n").unwrap();
    let out = Command::new(bin)
        .arg("test")
        .arg(&demo)
        .arg(&bad)
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("line 1"),
        "{out:?}"
    );
}
