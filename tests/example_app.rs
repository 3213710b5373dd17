//! examples/guess.rs, the documented own-app example, run through its
//! conversation script on the embedded bus and on a real broker, with the
//! app registered the way the example's `main` does.

use std::sync::Arc;
use std::time::Duration;

use smsflow::cli::script;
use smsflow::config::{KafkaMode, Pipeline};
use smsflow::topology::Topology;

mod common;

#[path = "../examples/guess.rs"]
#[allow(dead_code)]
mod guess;

fn pipeline() -> Pipeline {
    let text = std::fs::read_to_string(common::root().join("examples/guess.yaml")).unwrap();
    common::pipeline_from(&text, KafkaMode::Embedded)
}

async fn play(p: Pipeline) {
    let running = Topology::new(p)
        .unwrap()
        .with_app("guess", Arc::new(guess::Guess::new(|| 42)))
        .start(None, false)
        .await
        .unwrap();
    let tester = running.tester(None).unwrap();
    let text = std::fs::read_to_string(common::root().join("examples/guess.txt")).unwrap();
    let steps = script::parse(&text).unwrap();
    let failures = script::run(
        &tester,
        &steps,
        Duration::from_secs(20),
        Duration::from_millis(300),
    )
    .await;
    drop(tester);
    running.shutdown().await.unwrap();
    let failures: Vec<String> = failures.iter().map(ToString::to_string).collect();
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_example_app_plays_on_the_embedded_bus() {
    play(pipeline()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_example_app_plays_on_a_real_broker() {
    require_tools!(common::Tool::Tansu);
    let broker = common::broker::Broker::start();
    play(common::on_broker(
        pipeline(),
        &broker.brokers(),
        "example-app",
    ))
    .await;
}
