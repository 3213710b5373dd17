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
            // The admin listener: the port after http.listen's.
            let body = raw_get(port + 1, "/api/tester/conversations/+15550042");
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
    assert!(String::from_utf8_lossy(&out.stderr).contains("is `smsflow run` running"));
    let out = smsflow()
        .args(["send", "--from", "abc"])
        .arg(common::root().join("pipelines/demo.yaml"))
        .arg("hi")
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&out.stderr).contains("is not a phone number"));
}

/// An admin listener on the network without credentials does not validate
/// or run; `hash-password` makes a hash that does.
#[test]
fn an_open_admin_listener_needs_credentials() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("open.yaml");
    let pipeline = |admin: &str| {
        format!("http:\n  listen: 127.0.0.1:0\n  admin:\n{admin}backends:\n  - type: tester\nroutes:\n  - app: echo\napps:\n  - type: echo\n")
    };
    std::fs::write(
        &file,
        pipeline("    listen: 0.0.0.0:0\n    allow_remote_tester: true\n"),
    )
    .unwrap();
    for command in ["validate", "run"] {
        let out = smsflow().arg(command).arg(&file).output().unwrap();
        assert!(!out.status.success(), "{command}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            err.contains("is not on loopback and has no authentication"),
            "{command}: {err}"
        );
    }

    let mut hashing = smsflow()
        .arg("hash-password")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    {
        use std::io::Write;
        let mut stdin = hashing.stdin.take().unwrap();
        stdin.write_all(b"correct horse battery\n").unwrap();
    }
    let out = hashing.wait_with_output().unwrap();
    assert!(out.status.success());
    let hash = String::from_utf8(out.stdout).unwrap().trim().to_owned();
    assert!(hash.starts_with("$argon2id$"), "{hash}");
    assert!(!hash.contains("correct horse"));
    std::fs::write(
        &file,
        pipeline("    listen: 0.0.0.0:0\n    allow_remote_tester: true\n    users: [{name: ops, password_hash: \"${OPS_HASH}\"}]\n"),
    )
    .unwrap();
    let out = smsflow()
        .arg("validate")
        .arg(&file)
        .env("OPS_HASH", &hash)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
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

/// `send` and `tail` on the Kafka path: a pipeline runs on librdkafka's mock
/// cluster in this process; the commands reach it over loopback as a
/// `mode: kafka` pipeline would reach a real cluster.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn send_and_tail_on_kafka() {
    use smsflow::bus::Bus;
    use smsflow::config::KafkaMode;

    let running = smsflow::topology::Topology::new(common::demo(KafkaMode::Mock))
        .unwrap()
        .start(None, false)
        .await
        .unwrap();
    let Bus::Kafka(kafka) = running.bus() else {
        panic!("mock mode runs the Kafka bus")
    };
    let brokers = kafka.bootstrap_servers();
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("kafka.yaml");
    let demo = std::fs::read_to_string(common::root().join("pipelines/demo.yaml")).unwrap();
    // The demo's translations file is relative to it.
    std::fs::create_dir(dir.path().join("translations")).unwrap();
    std::fs::copy(
        common::root().join("pipelines/translations/sw.yaml"),
        dir.path().join("translations/sw.yaml"),
    )
    .unwrap();
    std::fs::write(
        &file,
        demo.replace(
            "kafka: embedded",
            &format!("kafka:\n  mode: kafka\n  brokers: {brokers}"),
        ),
    )
    .unwrap();

    let run = |args: &[&str]| {
        let file = file.clone();
        let args: Vec<String> = args.iter().map(|s| s.to_string()).collect();
        tokio::task::spawn_blocking(move || {
            let mut c = smsflow();
            c.arg(&args[0]).arg(&file).args(&args[1..]);
            c.output().unwrap()
        })
    };
    let sent = run(&["send", "--from", "+15550077", "echo", "over", "kafka"])
        .await
        .unwrap();
    assert!(
        sent.status.success(),
        "{}",
        String::from_utf8_lossy(&sent.stderr)
    );
    let id = String::from_utf8(sent.stdout).unwrap().trim().to_owned();

    // The reply reaches the tester sink through every stage on Kafka.
    let tester = running.tester(None).unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while !tester
        .conversation("+15550077")
        .iter()
        .any(|l| l.direction == "out" && l.text == "over kafka")
    {
        assert!(std::time::Instant::now() < deadline, "no reply over kafka");
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }

    let tail = run(&[
        "tail",
        "sms.send.message_tester",
        "--from-beginning",
        "--count",
        "1",
    ])
    .await
    .unwrap();
    assert!(
        tail.status.success(),
        "{}",
        String::from_utf8_lossy(&tail.stderr)
    );
    let line: serde_json::Value = serde_json::from_slice(&tail.stdout).unwrap();
    assert_eq!(line["topic"], "sms.send.message_tester");
    assert_eq!(line["key"], "message_tester:+15550077");
    assert_eq!(line["value"]["text"], "over kafka");
    assert_eq!(line["value"]["in_response_to"], id.as_str());
    assert_eq!(line["value"]["encoding"], "gsm7");
    assert_eq!(line["value"]["segments"], 1);
    drop(tester);
    running.shutdown().await.unwrap();
}

/// The app commands against a running demo: import contacts (a bad line
/// reported, the good ones imported), message them and a group, read the
/// send's status, answer the poll and read its results.
#[test]
fn contacts_message_status_and_poll_commands() {
    let port = common::free_port();
    let _running = common::Smsflow::start(port);
    let demo = common::root().join("pipelines/demo.yaml");
    let cli = |args: &[&str]| {
        let out = smsflow()
            .arg(args[0])
            .args(if args[0] == "contacts" {
                vec![args[1].to_owned(), demo.display().to_string()]
            } else {
                vec![demo.display().to_string()]
            })
            .args(&args[if args[0] == "contacts" { 2 } else { 1 }..])
            .env("SMSFLOW_LISTEN", format!("127.0.0.1:{port}"))
            .output()
            .unwrap();
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).to_string(),
            String::from_utf8_lossy(&out.stderr).to_string(),
        )
    };
    let dir = tempfile::tempdir().unwrap();
    let csv = dir.path().join("contacts.csv");
    std::fs::write(
        &csv,
        "Ada, message_tester, +15550601\nBob, nowhere, +15550602\n\"Smith, Carol\", message_tester, +1 555 0603\n",
    )
    .unwrap();
    let (ok, out, _) = cli(&["contacts", "import", csv.to_str().unwrap()]);
    assert!(!ok, "a bad line makes the import exit non-zero");
    assert!(out.contains("Added 2 contacts"), "{out}");
    assert!(
        out.contains("line 2: backend: no backend \"nowhere\""),
        "{out}"
    );

    let (ok, out, err) = cli(&[
        "message",
        "--to",
        "+15550601",
        "--to",
        "message_tester:+15550603",
        "--to",
        "+15550604",
        "Clinic",
        "opens",
        "at",
        "9",
    ]);
    assert!(ok, "{err}");
    assert!(
        out.starts_with("Your message was sent to 3 recipients."),
        "{out}"
    );
    let send_id = out
        .lines()
        .find_map(|l| l.strip_prefix("send id: "))
        .and_then(|l| l.split_whitespace().next())
        .unwrap()
        .to_owned();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    loop {
        let (ok, out, err) = cli(&["status", &send_id]);
        assert!(ok, "{err}");
        if out.contains("delivered 3") {
            assert!(
                out.starts_with(&format!("send {send_id} (3 recipients)")),
                "{out}"
            );
            assert!(
                out.contains("+15550603 via message_tester  delivered"),
                "{out}"
            );
            break;
        }
        assert!(std::time::Instant::now() < deadline, "not delivered: {out}");
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    let (ok, _, err) = cli(&["message", "--to", "12ab", "hi"]);
    assert!(!ok);
    assert!(
        err.contains("numbers: \"12ab\" is not a phone number"),
        "{err}"
    );
    let (ok, _, err) = cli(&["status", "no-such-id"]);
    assert!(!ok);
    assert!(err.contains("404"), "{err}");

    for (from, text) in [
        ("+15550601", "lunch pizza"),
        ("+15550603", "lunch soup"),
        ("+15550604", "lunch PIZZA"),
    ] {
        let (ok, _, err) = cli(&["send", "--from", from, text]);
        assert!(ok, "{err}");
    }
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    loop {
        let (ok, out, err) = cli(&["poll", "lunch"]);
        assert!(ok, "{err}");
        if out.contains("total        3") {
            assert!(
                out.starts_with("lunch: What would you like for lunch?"),
                "{out}"
            );
            assert!(out.contains("pizza        2"), "{out}");
            assert!(out.contains("soup         1"), "{out}");
            break;
        }
        assert!(std::time::Instant::now() < deadline, "{out}");
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
}

/// The app commands send the operator's token: `--token`, or `SMSFLOW_TOKEN`.
#[test]
fn app_commands_send_the_admin_token() {
    let port = common::free_port();
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("guarded.yaml");
    std::fs::write(
        &file,
        format!(
            "http:\n  listen: 127.0.0.1:{port}\n  admin:\n    tokens: [\"${{ADMIN_TOKEN}}\"]\n\
             backends:\n  - type: tester\nroutes:\n  - app: echo\napps:\n  - type: echo\n"
        ),
    )
    .unwrap();
    let token = "cli-operator-token-0123456789";
    let mut run = smsflow()
        .arg("run")
        .arg(&file)
        .env("ADMIN_TOKEN", token)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while std::net::TcpStream::connect(("127.0.0.1", port + 1)).is_err() {
        assert!(std::time::Instant::now() < deadline, "not listening");
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let status = |args: &[&str], env: Option<&str>| {
        let mut c = smsflow();
        c.arg("status").arg(&file).arg("no-such-id").args(args);
        // The pipeline file needs its variables wherever it is read.
        c.env("ADMIN_TOKEN", token).env_remove("SMSFLOW_TOKEN");
        if let Some(t) = env {
            c.env("SMSFLOW_TOKEN", t);
        }
        let out = c.output().unwrap();
        String::from_utf8_lossy(&out.stderr).to_string()
    };
    // Authenticated, the id is looked up (404); otherwise 401.
    assert!(status(&["--token", token], None).contains("404"));
    assert!(status(&[], Some(token)).contains("404"));
    assert!(status(&[], None).contains("401"));
    assert!(status(&["--token", "wrong-token-0123456789"], None).contains("401"));
    let _ = run.kill();
    let _ = run.wait();
}

#[test]
fn a_reader_that_goes_away_ends_the_command_quietly() {
    // `smsflow validate pipelines/kannel.yaml | head -1`: the reader closes
    // the pipe before smsflow writes (the read end is closed right after
    // the start, long before the pipeline is parsed). Before, the write
    // panicked with "failed printing to stdout: Broken pipe".
    for args in [
        &["validate", "pipelines/kannel.yaml"][..],
        &["graph", "pipelines/demo.yaml"][..],
    ] {
        let mut child = smsflow()
            .args(args)
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        drop(child.stdout.take());
        let out = child.wait_with_output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!stderr.contains("panicked"), "{args:?}: {stderr}");
        assert!(out.status.success(), "{args:?}: {:?} {stderr}", out.status);
    }
}

#[test]
fn schema_prints_the_committed_json_schema() {
    let out = smsflow().arg("schema").output().unwrap();
    assert!(out.status.success(), "{out:?}");
    let committed = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("schemas/pipeline.schema.json"),
    )
    .unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout), committed);
}
