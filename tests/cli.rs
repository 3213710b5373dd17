//! The `smsflow` command as a user runs it: `run` until a signal, `send`
//! into a running pipeline, `validate` and `graph`.

use std::process::Command;

mod common;

fn smsflow() -> Command {
    Command::new(env!("CARGO_BIN_EXE_smsflow"))
}

#[test]
fn run_answers_send_and_stops_cleanly_on_sigterm_and_sigint() {
    for signal in ["TERM", "INT"] {
        let port = common::free_port();
        let running = common::Smsflow::start(port);
        let sent = smsflow()
            .args(["send", "--from", "+15550042"])
            .arg(common::root().join("pipelines/demo.yaml"))
            .args(["echo", "from", "the", "cli"])
            .env("SMSFLOW_LISTEN", format!("127.0.0.1:{port}"))
            .output()
            .unwrap();
        assert!(
            sent.status.success(),
            "{}",
            String::from_utf8_lossy(&sent.stderr)
        );
        let id = String::from_utf8(sent.stdout).unwrap();
        assert_eq!(id.trim().len(), 36, "prints the message id: {id}");
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
        loop {
            let body = raw_get(port, "/api/tester/conversations/+15550042");
            if body.contains("\"text\":\"from the cli\"") && body.contains("\"direction\":\"out\"")
            {
                break;
            }
            assert!(std::time::Instant::now() < deadline, "no reply: {body}");
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        let (status, stderr) = running.stop(signal);
        assert!(status.success(), "SIG{signal}: {status}\n{stderr}");
        assert!(stderr.contains("pipeline stopped cleanly"), "{stderr}");
    }
}

fn raw_get(port: u16, path: &str) -> String {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut body = String::new();
    s.read_to_string(&mut body).unwrap();
    body
}

#[test]
fn send_to_a_pipeline_that_is_not_running_says_so() {
    let out = smsflow()
        .args(["send", "--from", "+1555"])
        .arg(common::root().join("pipelines/demo.yaml"))
        .arg("hi")
        .env(
            "SMSFLOW_LISTEN",
            format!("127.0.0.1:{}", common::free_port()),
        )
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("is it running?"));
    let out = smsflow()
        .args(["send", "--from", "abc"])
        .arg(common::root().join("pipelines/demo.yaml"))
        .arg("hi")
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&out.stderr).contains("is not a phone number"));
}

#[test]
fn validate_and_graph() {
    let demo = common::root().join("pipelines/demo.yaml");
    let ok = smsflow().arg("validate").arg(&demo).output().unwrap();
    assert!(ok.status.success());
    assert!(String::from_utf8_lossy(&ok.stdout).contains("router-in"));

    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("bad.yaml");
    std::fs::write(
        &bad,
        "backends:\n  - type: tester\nroutes:\n  - app: nope\napps:\n  - type: echo\nbogus: 1\n",
    )
    .unwrap();
    let out = smsflow().arg("validate").arg(&bad).output().unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("2 errors"), "{err}");
    assert!(
        err.contains("bad.yaml:4:10: routes[0].app: unknown app \"nope\""),
        "{err}"
    );
    assert!(
        err.contains("bad.yaml:7:1: unknown section \"bogus\""),
        "{err}"
    );
    // An invalid pipeline never starts.
    let run = smsflow().arg("run").arg(&bad).output().unwrap();
    assert!(!run.status.success());
    assert!(String::from_utf8_lossy(&run.stderr).contains("unknown app"));

    let dot = smsflow()
        .args(["graph", "--format", "dot"])
        .arg(&demo)
        .output()
        .unwrap();
    let dot = String::from_utf8_lossy(&dot.stdout);
    assert!(dot.starts_with("digraph smsflow {"));
    assert!(dot.contains("\"sms.inbound\" -> \"router-in\";"));
    assert!(dot.contains("\"router-out\" -> \"sms.send.message_tester\";"));
}
