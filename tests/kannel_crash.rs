//! Issue 12's "done when" for the durable embedded bus: `smsflow run
//! pipelines/durable.yaml` (pipelines/kannel.yaml's echo behind Kannel,
//! sending at 50/s, on `kafka: {mode: embedded, data_dir: ...}`) as a child
//! process, through a real Kannel (bearerbox, smsbox and an interactive
//! fakesmsc on free loopback ports, tests/common/kannel/).
//!
//! The phone sends 150 MOs; once Kannel has a 200 for each, and while most
//! replies still wait behind the rate limit, smsflow is killed with SIGKILL
//! just after a sendsms request. The phone sends 150 more while smsflow is
//! down (smsbox fetches them again: `http-request-retry`), and smsflow is
//! started again on the same data_dir. Every MO is then answered exactly
//! once: nothing Kannel got a 200 for is lost, and no reply goes out twice
//! (counted in smsbox's sendsms log and at the phone).
//!
//! The kill is placed where no reply is in doubt (see the test); on the
//! in-memory bus (pipelines/kannel.yaml) the same run leaves the replies
//! waiting at the kill unsent: about 80 of 300.

use std::collections::BTreeMap;
use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::time::{Duration, Instant};

use common::kannel::{parse_mts, Kannel, MO_QUERY};
use smsflow::bus::{durable, Bus, TopicSpec};
use smsflow::config::{self, KafkaMode};
use smsflow::schema;

mod common;

const MESSAGES: usize = 300;
/// MOs sent before the kill.
const BEFORE_KILL: usize = 150;
const SHORTCODE: &str = "15000";

/// The webhook secret smsflow and Kannel's get-url share.
const SECRET: &str = "crash-test-secret-0123456789";

/// The get-url smsbox fetches for every MO, with the webhook secret.
fn get_url(port: u16) -> String {
    format!("http://127.0.0.1:{port}/backend/kannel/?secret={SECRET}&{MO_QUERY}")
}

/// smsbox fetches an MO whose get-url failed (smsflow down, or killed
/// mid-request) again every second, up to 30 times.
const RETRY: &[(&str, &str)] = &[("http-request-retry", "30"), ("http-queue-delay", "1")];

/// The text of MO `i` and of its echo.
fn text(i: usize) -> String {
    format!("m{i:03}")
}

/// Poll `done` every 20 ms; panic with `what` and Kannel's logs after `timeout`.
fn wait(k: &Kannel, what: &str, timeout: Duration, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !done() {
        assert!(
            Instant::now() < deadline,
            "timed out waiting until {what}\n{}",
            k.logs()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// `smsflow run pipelines/durable.yaml` against `k`, on `port` and `data_dir`.
struct Smsflow {
    child: Child,
    log: PathBuf,
}

impl Smsflow {
    fn start(k: &Kannel, port: u16, data_dir: &Path, log: &Path) -> Smsflow {
        let out = OpenOptions::new()
            .create(true)
            .append(true)
            .open(log)
            .unwrap();
        let child = Command::new(env!("CARGO_BIN_EXE_smsflow"))
            .arg("run")
            .arg(common::root().join("pipelines/durable.yaml"))
            .env("SMSFLOW_LISTEN", format!("127.0.0.1:{port}"))
            .env("SMSFLOW_PUBLIC_URL", format!("http://127.0.0.1:{port}"))
            .env("SMSFLOW_DATA_DIR", data_dir)
            .env("KANNEL_SENDSMS_URL", k.sendsms_url())
            .env("KANNEL_USERNAME", k.username())
            .env("KANNEL_PASSWORD", k.password())
            .env("KANNEL_FROM", SHORTCODE)
            .env("KANNEL_WEBHOOK_SECRET", SECRET)
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(out.try_clone().unwrap())
            .stderr(out)
            .spawn()
            .unwrap();
        let mut s = Smsflow {
            child,
            log: log.to_owned(),
        };
        let deadline = Instant::now() + Duration::from_secs(60);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            if let Ok(Some(status)) = s.child.try_wait() {
                panic!("smsflow exited ({status}) at start-up:\n{}", s.output());
            }
            assert!(
                Instant::now() < deadline,
                "smsflow did not listen:\n{}",
                s.output()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        s
    }

    fn output(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    fn signal(&self, signal: libc::c_int) {
        unsafe {
            libc::kill(self.child.id() as libc::pid_t, signal);
        }
    }

    /// SIGKILL: no shutdown, no last commit.
    fn kill_9(mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
    }

    /// SIGTERM and wait for the ordered shutdown; panics unless it exits 0.
    fn stop(mut self) {
        self.signal(libc::SIGTERM);
        let status = self.child.wait().unwrap();
        assert!(
            status.success(),
            "smsflow exited {status}:\n{}",
            self.output()
        );
    }
}

impl Drop for Smsflow {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// An interactive fakesmsc: MOs are written to its stdin one line each
/// (each with its own text, which a command-line fakesmsc cannot do).
struct Phone {
    child: Child,
    stdin: ChildStdin,
    log: PathBuf,
}

impl Phone {
    fn start(k: &Kannel) -> Phone {
        let log = k.dir.join("phone.log");
        let out = File::create(&log).unwrap();
        let mut child = Command::new(common::kannel::fakesmsc())
            .args(["-H", "127.0.0.1", "-r", &k.smsc_port.to_string()])
            .args(["-i", "0", "-m", "1000000"])
            .current_dir(&k.dir)
            .stdin(Stdio::piped())
            .stdout(out.try_clone().unwrap())
            .stderr(out)
            .spawn()
            .unwrap();
        let stdin = child.stdin.take().unwrap();
        let online = format!("FAKE:{} (online", k.smsc_port);
        wait(k, "fakesmsc is connected", Duration::from_secs(20), || {
            k.status().is_some_and(|s| s.contains(&online))
        });
        Phone { child, stdin, log }
    }

    /// Send MO `i`, the `sent`-th of this phone, and wait until fakesmsc
    /// sent it: it polls stdin before each read, so lines written at once
    /// would wait in its buffer.
    fn send(&mut self, k: &Kannel, i: usize, sent: usize) {
        let from = format!("2557{:08}", i + 1);
        writeln!(self.stdin, "{from} {SHORTCODE} text echo {}", text(i)).unwrap();
        self.stdin.flush().unwrap();
        wait(
            k,
            &format!("fakesmsc sends {}", text(i)),
            Duration::from_secs(10),
            || {
                let out = std::fs::read(&self.log).unwrap_or_default();
                String::from_utf8_lossy(&out)
                    .matches("fakesmsc: sent message ")
                    .count()
                    >= sent
            },
        );
    }

    /// Replies received so far, per text.
    fn replies(&self) -> BTreeMap<String, usize> {
        let out = std::fs::read(&self.log).unwrap_or_default();
        let mut n = BTreeMap::new();
        for mt in parse_mts(&String::from_utf8_lossy(&out)) {
            *n.entry(String::from_utf8_lossy(&mt.payload).into_owned())
                .or_insert(0) += 1;
        }
        n
    }
}

impl Drop for Phone {
    fn drop(&mut self) {
        // SIGINT crashes fakesmsc's interactive mode: nothing to wait for.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The texts of the replies the sink has recorded as being sent, with no
/// outcome yet, in a copy of the bus's file (what a crash would leave).
fn in_doubt(data_dir: &Path, work: &Path) -> Vec<String> {
    let copy = work.join("copy");
    let _ = std::fs::remove_dir_all(&copy);
    std::fs::create_dir_all(&copy).unwrap();
    std::fs::copy(data_dir.join(durable::FILE), copy.join(durable::FILE)).unwrap();
    let cfg = config::Kafka {
        data_dir: Some(copy),
        ..config::Kafka::with_mode(KafkaMode::Embedded)
    };
    let topic = |name: &str, compacted| TopicSpec {
        name: name.into(),
        partitions: 1,
        replication: 1,
        compacted,
        retention: None,
    };
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let topics = [
            topic("sms.send.kannel", false),
            topic("sms.send.kannel.sent", true),
        ];
        let Bus::Durable(bus) = Bus::connect(&cfg, &topics).await.unwrap() else {
            panic!("not the durable bus")
        };
        let mut sending = Vec::new();
        let mut log = bus.reader("sms.send.kannel.sent").unwrap();
        while let Some(r) = log.restore_next() {
            let r = r.unwrap();
            let entry: serde_json::Value = serde_json::from_slice(&r.payload).unwrap();
            if entry["state"] == "sending" {
                sending.push(r.key_str().to_owned());
            }
        }
        let mut texts = Vec::new();
        let mut sends = bus.reader("sms.send.kannel").unwrap();
        while let Some(r) = sends.restore_next() {
            let msg = schema::outbound().decode(&r.unwrap().payload).unwrap();
            if sending.contains(&msg.id) {
                texts.push(msg.text);
            }
        }
        texts
    })
}

/// Lines of smsbox's access log: MO fetches answered 200 and sendsms
/// requests, per text.
struct Access {
    fetched: BTreeMap<String, usize>,
    sendsms: BTreeMap<String, usize>,
}

fn access(k: &Kannel) -> Access {
    let log = std::fs::read_to_string(k.smsbox_access_log()).unwrap_or_default();
    let mut a = Access {
        fetched: BTreeMap::new(),
        sendsms: BTreeMap::new(),
    };
    for line in log.lines() {
        // `SMS HTTP-request sender:... request: '' url: '...&text=echo+m001&...' reply: 200 ...`
        if line.contains("SMS HTTP-request") {
            if let Some(rest) = line.split("&text=echo+").nth(1) {
                if line.contains("reply: 200") {
                    *a.fetched.entry(rest.chars().take(4).collect()).or_insert(0) += 1;
                }
            }
        // `send-SMS request added - sender:tester:15000 ... request: 'm001'`
        } else if line.contains("send-SMS request added") {
            if let Some(rest) = line.split("request: '").nth(1) {
                *a.sendsms.entry(rest.chars().take(4).collect()).or_insert(0) += 1;
            }
        }
    }
    a
}

#[test]
fn kill_9_under_load_then_restart_answers_every_acknowledged_mo_once() {
    require_tools!(
        common::Tool::Bearerbox,
        common::Tool::Smsbox,
        common::Tool::Fakesmsc
    );
    let port = common::free_port();
    let k = Kannel::start_configured(&get_url(port), 0, RETRY);
    let work = tempfile::tempdir().unwrap();
    let data_dir = work.path().join("bus");
    // Beside Kannel's logs: kept with them when the test fails.
    let log = k.dir.join("smsflow.log");
    let smsflow = Smsflow::start(&k, port, &data_dir, &log);
    let mut phone = Phone::start(&k);

    for i in 0..BEFORE_KILL {
        phone.send(&k, i, i + 1);
    }
    wait(
        &k,
        "Kannel has a 200 for the first MOs",
        Duration::from_secs(60),
        || access(&k).fetched.len() >= BEFORE_KILL,
    );
    // Killed when no reply is in doubt. The sink records a message as being
    // sent, on the bus, before its sendsms request, and never repeats one
    // so recorded (the provider may have it): a kill between that record
    // and the request reaching Kannel leaves the message reported failed
    // ("outcome unknown"), by design, rather than risk sending it twice.
    // So: stop smsflow (SIGSTOP) just after a sendsms request, read what a
    // crash now would leave on disk (a copy of the bus's file), and kill it
    // only if every message recorded as being sent has reached Kannel;
    // otherwise let it go on (SIGCONT) and try at the next request.
    let mut access_log = File::open(k.smsbox_access_log()).unwrap();
    access_log.seek(SeekFrom::End(0)).unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut tries = 0;
    loop {
        let mut tail = String::new();
        while !tail.contains("send-SMS request added") {
            assert!(
                Instant::now() < deadline,
                "no moment without a reply in doubt\n{}",
                k.logs()
            );
            std::thread::sleep(Duration::from_micros(300));
            access_log.read_to_string(&mut tail).unwrap();
        }
        smsflow.signal(libc::SIGSTOP);
        // Requests already on the wire reach smsbox's log meanwhile.
        std::thread::sleep(Duration::from_millis(200));
        let doubt = in_doubt(&data_dir, work.path());
        let sent = access(&k).sendsms;
        tries += 1;
        if doubt.iter().all(|t| sent.contains_key(t)) {
            break;
        }
        smsflow.signal(libc::SIGCONT);
    }
    smsflow.kill_9();
    let sent_at_kill = access(&k).sendsms.len();
    assert!(
        sent_at_kill < BEFORE_KILL,
        "every reply went out before the kill: nothing was waiting"
    );

    // Down: smsbox's fetches fail and are retried.
    for i in BEFORE_KILL..MESSAGES {
        phone.send(&k, i, i + 1);
    }
    let smsflow = Smsflow::start(&k, port, &data_dir, &log);
    wait(&k, "every MO is answered", Duration::from_secs(120), || {
        phone.replies().len() >= MESSAGES
    });
    // The ordered shutdown drains every stage: no sendsms comes after it.
    smsflow.stop();

    let a = access(&k);
    let replies = phone.replies();
    let smsflow_log = std::fs::read_to_string(&log).unwrap_or_default();
    for i in 0..MESSAGES {
        let t = text(i);
        assert!(
            a.fetched.contains_key(&t),
            "{t}: Kannel never got a 200\n{smsflow_log}\n{}",
            k.logs()
        );
        assert_eq!(
            a.sendsms.get(&t),
            Some(&1),
            "{t}: sendsms requests ({sent_at_kill} sent at the kill, try {tries})\n{smsflow_log}"
        );
        assert_eq!(replies.get(&t), Some(&1), "{t}: replies at the phone");
    }
    assert_eq!(
        replies.len(),
        MESSAGES,
        "replies to unknown texts: {replies:?}"
    );
}
