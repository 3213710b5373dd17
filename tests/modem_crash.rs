//! kill -9 of `smsflow run` between storing an inbound message and deleting
//! it from the modem: after the restart the message is on `sms.inbound`
//! once, and deleted from the modem. The pipeline runs on the durable
//! embedded bus (`kafka.data_dir`), whose sent-log survives the crash; the
//! simulated modem, on a pty in this test, hangs on `AT+CMGD` so that the
//! kill lands in exactly that window. The message is one no app answers, so
//! that no reply is in flight at the kill (a reply claimed by the sink and
//! cut off by a kill is reported "outcome unknown", never sent twice: the
//! sink's rule for every backend, tested in `tests/sinks.rs`).

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use smsflow::bus::Bus;
use smsflow::modem::sim::{Fault, SimConfig, SimModem};

mod common;

const WAIT: Duration = Duration::from_secs(30);

fn pipeline(dir: &Path, port: u16) -> String {
    format!(
        "kafka: {{mode: embedded, data_dir: {data}, fsync: always}}\n\
         http: {{listen: '127.0.0.1:{port}'}}\n\
         backends:\n\
         \x20 - {{type: modem, port: {link}, sweep: 1s, command_timeout: 20s}}\n\
         routes: [{{app: echo}}]\n\
         apps: [{{type: echo}}]\n",
        data = dir.join("bus").display(),
        link = dir.join("modem").display(),
    )
}

fn start(file: &Path, log: &Path) -> Child {
    let log = std::fs::File::create(log).unwrap();
    Command::new(env!("CARGO_BIN_EXE_smsflow"))
        .arg("run")
        .arg(file)
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .unwrap()
}

/// Wait until `done`; on a timeout, fail with what `context` says.
async fn until(what: &str, mut done: impl FnMut() -> bool, context: impl Fn() -> String) {
    let deadline = Instant::now() + WAIT;
    while !done() {
        assert!(
            Instant::now() < deadline,
            "{what}: not within {WAIT:?}\n{}",
            context()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The logs and the modem's last lines, for a failure.
fn context(sim: &SimModem, logs: &[&Path]) -> String {
    let mut out = String::new();
    for log in logs {
        let text = std::fs::read_to_string(log).unwrap_or_default();
        out.push_str(&format!("--- {}\n{text}\n", log.display()));
    }
    let t = sim.transcript();
    out.push_str(&t[t.len().saturating_sub(80)..].join("\n"));
    out
}

async fn ready(port: u16) -> bool {
    match reqwest::get(format!("http://127.0.0.1:{port}/readyz")).await {
        Ok(r) => r.status().is_success(),
        Err(_) => false,
    }
}

async fn until_ready(port: u16) {
    let deadline = Instant::now() + WAIT;
    while !ready(port).await {
        assert!(
            Instant::now() < deadline,
            "smsflow not ready within {WAIT:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn replies(sim: &SimModem, to: &str) -> usize {
    sim.sent().iter().filter(|s| s.to == to).count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_kill_between_store_and_delete_delivers_the_message_once() {
    let dir = tempfile::tempdir().unwrap();
    let sim = SimModem::new(SimConfig::default());
    let _pty = sim.on_pty(&dir.path().join("modem")).await.unwrap();
    let port = common::free_port();
    let file = dir.path().join("modem.yaml");
    std::fs::write(&file, pipeline(dir.path(), port)).unwrap();

    let first_log = dir.path().join("first.log");
    let mut first = start(&file, &first_log);
    until_ready(port).await;
    sim.inject(Fault::HangOn("AT+CMGD".into()));
    sim.deliver("+15552020", "hello once");
    until(
        "the delete that hangs",
        || sim.transcript().iter().any(|l| l.starts_with("-- hung")),
        || context(&sim, &[&first_log]),
    )
    .await;
    // Stored on sms.inbound and noted in the sent-log (both before the
    // delete is sent); still on the SIM.
    assert_eq!(sim.stored().len(), 1);
    first.kill().unwrap();
    first.wait().unwrap();

    let second_log = dir.path().join("second.log");
    let mut second = start(&file, &second_log);
    until_ready(port).await;
    let logs = || context(&sim, &[&first_log, &second_log]);
    until(
        "the delete after the restart",
        || sim.stored().is_empty(),
        logs,
    )
    .await;
    // The pipeline works on: a message after the restart is answered.
    sim.deliver("+15552020", "echo after");
    until("the reply", || replies(&sim, "+15552020") >= 1, logs).await;
    let log = std::fs::read_to_string(&second_log).unwrap();
    assert!(
        log.contains("stored before a restart; deleted now"),
        "the restart recognised the message rather than storing it again:\n{log}"
    );
    second.kill().unwrap();
    second.wait().unwrap();

    // What sms.inbound holds, read from the bus's file.
    let text = std::fs::read_to_string(&file).unwrap();
    let p = smsflow::topology::load_str_in(&text, &|_| None, dir.path()).unwrap();
    let topics = smsflow::topology::Topology::new(p.clone())
        .unwrap()
        .topics();
    let Bus::Durable(bus) = Bus::connect(&p.kafka, &topics).await.unwrap() else {
        panic!("not the durable bus");
    };
    let mut reader = bus.reader("sms.inbound").unwrap();
    let mut texts = Vec::new();
    while let Some(r) = reader.restore_next() {
        let msg = smsflow::schema::inbound()
            .decode(&r.unwrap().payload)
            .unwrap();
        texts.push(msg.text);
    }
    assert_eq!(texts, vec!["hello once", "echo after"], "{}", logs());
}
