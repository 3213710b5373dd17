//! The modem backend end to end: smsflow's pipeline on the embedded bus,
//! its modem backend opening a pseudo-terminal by path, and on the other
//! side of it the simulated modem (`smsflow::modem::sim`), whose "network"
//! the tests play: phones that text it, and the messages it was asked to
//! send. Each case injects a fault a real modem has and checks what smsflow
//! did: the conversation scripts, long messages both ways, delivery
//! reports, storage full without notifications, the port vanishing and
//! coming back, a `+CMS ERROR` on a send, a wrong PIN.

use std::path::{Path, PathBuf};
use std::time::Duration;

use smsflow::config::KafkaMode;
use smsflow::modem::sim::{Fault, PtyHandle, SimConfig, SimModem};
use smsflow::topology::{Running, Topology};

#[path = "../common/mod.rs"]
mod common;
mod phone;

const WAIT: Duration = Duration::from_secs(30);

/// The demo pipeline's apps behind a modem backend named `name` on `port`.
fn pipeline(name: &str, port: &Path, extra: &str) -> smsflow::config::Pipeline {
    let demo = std::fs::read_to_string(common::root().join("pipelines/demo.yaml")).unwrap();
    let tester = "  - type: tester            # named message_tester, like RapidSMS's\n";
    assert!(demo.contains(tester), "demo.yaml's backends changed");
    let modem = format!(
        "  - type: modem\n    name: {name}\n    port: {port}\n    sweep: 1s\n    command_timeout: 3s\n{extra}    send: {{timeout: 5s, attempts: 20, backoff: 200ms, max_backoff: 1s}}\n",
        port = port.display()
    );
    let yaml = demo.replace(tester, &modem);
    common::pipeline_from(&yaml, KafkaMode::Embedded)
}

/// A simulated modem on a pty in a temporary directory, and smsflow on it.
struct Rig {
    sim: SimModem,
    pty: PtyHandle,
    running: Option<Running>,
    _dir: tempfile::TempDir,
}

impl Rig {
    async fn start(name: &str, config: SimConfig, extra: &str) -> Rig {
        let dir = tempfile::tempdir().unwrap();
        let link: PathBuf = dir.path().join("modem");
        let sim = SimModem::new(config);
        let pty = sim.on_pty(&link).await.unwrap();
        let running = Topology::new(pipeline(name, &link, extra))
            .unwrap()
            .start(None, true)
            .await
            .unwrap();
        Rig {
            sim,
            pty,
            running: Some(running),
            _dir: dir,
        }
    }

    fn running(&self) -> &Running {
        self.running.as_ref().unwrap()
    }

    /// `/readyz`'s answer.
    async fn readyz(&self) -> (u16, String) {
        let addr = self.running().http_addr().unwrap();
        let res = reqwest::get(format!("http://{addr}/readyz")).await.unwrap();
        (res.status().as_u16(), res.text().await.unwrap())
    }

    /// Wait until `/readyz` answers `status`: its text.
    async fn until_readyz(&self, status: u16) -> String {
        let until = std::time::Instant::now() + WAIT;
        loop {
            let (got, text) = self.readyz().await;
            if got == status {
                return text;
            }
            assert!(
                std::time::Instant::now() < until,
                "/readyz stayed {got} ({text}), not {status}; modem transcript:\n{}",
                self.transcript()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    fn transcript(&self) -> String {
        let t = self.sim.transcript();
        t[t.len().saturating_sub(60)..].join("\n")
    }

    /// A phone texts `text`; the texts `to` then received (waiting for `n`).
    async fn say(&self, from: &str, text: &str, n: usize) -> Vec<String> {
        self.sim.deliver(from, text);
        phone::wait_for(&self.sim, from, n, WAIT).await
    }

    async fn stop(mut self) {
        if let Some(r) = self.running.take() {
            r.shutdown().await.unwrap();
        }
    }
}

/// The conversation scripts of echo, registration and the default app, a
/// phone on the modem playing each line.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_conversation_scripts_pass_through_the_modem() {
    let rig = Rig::start("modem", SimConfig::default(), "").await;
    rig.until_readyz(200).await;
    let mut failures = Vec::new();
    for script in ["echo.txt", "registration.txt", "default.txt"] {
        let text =
            std::fs::read_to_string(common::root().join("tests/scripts").join(script)).unwrap();
        let steps = smsflow::cli::script::parse(&text).unwrap();
        let mut expected = std::collections::HashMap::<String, usize>::new();
        for step in steps {
            match step.direction {
                smsflow::cli::script::Direction::In => {
                    rig.sim.deliver(&step.identity, &step.text);
                }
                smsflow::cli::script::Direction::Out => {
                    let n = expected.entry(step.identity.clone()).or_default();
                    *n += 1;
                    let got = phone::wait_for(&rig.sim, &step.identity, *n, WAIT).await;
                    match got.get(*n - 1) {
                        Some(t) if *t == step.text => {}
                        other => failures.push(format!(
                            "{script}:{} {} expected {:?}, got {other:?}",
                            step.line, step.identity, step.text
                        )),
                    }
                }
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{}\n{}",
        failures.join("\n"),
        rig.transcript()
    );
    rig.stop().await;
}

/// A 200-character text in (three parts from the phone) and out (the
/// echo, two parts); every part asked for a report, and the reply's
/// delivery reports (one per part) make one `delivered` event.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn long_messages_go_both_ways_and_reports_come_back() {
    let rig = Rig::start("modem-long", SimConfig::default(), "").await;
    rig.until_readyz(200).await;
    let long: String = (0..190)
        .map(|i| char::from(b'a' + (i % 26) as u8))
        .collect();
    let got = rig.say("+15552000", &format!("echo {long}"), 1).await;
    assert_eq!(got, vec![long.clone()], "{}", rig.transcript());
    let parts = phone::parts(&rig.sim, "+15552000");
    assert_eq!(parts.len(), 2);
    assert!(parts.iter().all(|p| p.status_report && p.concat.is_some()));
    // Unicode both ways: an emoji and Greek, as UCS-2.
    let got = rig.say("+15552000", "echo Καλημέρα 😀", 2).await;
    assert_eq!(got[1], "Καλημέρα 😀");
    let reports = || {
        smsflow::metrics::metrics()
            .reports
            .with_label_values(&["modem-long", "delivered"])
            .get()
    };
    let until = std::time::Instant::now() + WAIT;
    while reports() < 2 && std::time::Instant::now() < until {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(
        reports(),
        2,
        "one delivered event per message, not per part"
    );
    rig.stop().await;
}

/// A modem whose storage is full stores later messages without `+CMTI`:
/// the sweep (`AT+CMGL=4`) finds them, and what filled it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sweep_finds_what_a_full_storage_never_announced() {
    let rig = Rig::start("modem-full", SimConfig::default(), "").await;
    rig.until_readyz(200).await;
    rig.sim.inject(Fault::StorageFull);
    let got = rig.say("+15552001", "echo found by the sweep", 1).await;
    assert_eq!(got, vec!["found by the sweep"], "{}", rig.transcript());
    rig.stop().await;
}

/// The port vanishes (a USB modem unplugged); a phone texts meanwhile (the
/// SIM keeps it); the port comes back: smsflow reconnects, sets the modem
/// up again, and answers.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_port_vanishing_and_returning_loses_nothing() {
    let mut rig = Rig::start("modem-plug", SimConfig::default(), "").await;
    rig.until_readyz(200).await;
    rig.pty.vanish().await;
    let why = rig.until_readyz(503).await;
    assert!(why.contains("modem-plug"), "{why}");
    rig.sim.deliver("+15552002", "echo while unplugged");
    tokio::time::sleep(Duration::from_secs(1)).await;
    rig.pty.reappear().await.unwrap();
    let got = phone::wait_for(&rig.sim, "+15552002", 1, WAIT).await;
    assert_eq!(got, vec!["while unplugged"], "{}", rig.transcript());
    rig.until_readyz(200).await;
    rig.stop().await;
}

/// `+CMS ERROR: 500` on a send is transient: tried again, sent once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_transient_cms_error_is_tried_again() {
    let rig = Rig::start("modem-cms", SimConfig::default(), "").await;
    rig.until_readyz(200).await;
    rig.sim.inject(Fault::CmsOnNextSend(500));
    let got = rig.say("+15552003", "echo again", 1).await;
    assert_eq!(got, vec!["again"], "{}", rig.transcript());
    assert_eq!(phone::parts(&rig.sim, "+15552003").len(), 1, "sent once");
    rig.stop().await;
}

/// A PIN the SIM refuses is entered once, never again (a third wrong PIN
/// locks the SIM), and `/readyz` says why.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_pin_is_tried_once_and_named() {
    let config = SimConfig {
        pin: Some("1234".into()),
        ..SimConfig::default()
    };
    let rig = Rig::start("modem-pin", config, "    pin: \"0000\"\n").await;
    let why = rig.until_readyz(503).await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    let (_, why_later) = rig.readyz().await;
    assert!(
        why_later.contains("refused the configured PIN"),
        "{why} / {why_later}"
    );
    assert!(
        !why_later.contains("0000"),
        "the PIN is never shown: {why_later}"
    );
    let tries = rig
        .sim
        .transcript()
        .iter()
        .filter(|l| l.contains("AT+CPIN=\""))
        .count();
    assert_eq!(tries, 1, "{}", rig.transcript());
    rig.stop().await;
}

/// The right PIN is entered and the modem works.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_configured_pin_unlocks_the_sim() {
    let config = SimConfig {
        pin: Some("1234".into()),
        ..SimConfig::default()
    };
    let rig = Rig::start("modem-pin-ok", config, "    pin: \"1234\"\n").await;
    rig.until_readyz(200).await;
    let got = rig.say("+15552004", "echo unlocked", 1).await;
    assert_eq!(got, vec!["unlocked"]);
    rig.stop().await;
}

/// The delivery events a backend made, by status.
fn reports(backend: &str, status: &str) -> u64 {
    smsflow::metrics::metrics()
        .reports
        .with_label_values(&[backend, status])
        .get()
}

/// Wait until `backend` made `n` events of `status`.
async fn until_reports(backend: &str, status: &str, n: u64) -> u64 {
    let until = std::time::Instant::now() + WAIT;
    while reports(backend, status) < n && std::time::Instant::now() < until {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    reports(backend, status)
}

/// The modem resets in the middle of a send (no `+CMGS`, a boot banner,
/// power-on state: echo on, no notifications): the send times out, smsflow
/// sets the modem up again, the sink tries the message again, and the
/// phone gets it once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reset_in_the_middle_of_a_send_is_set_up_again() {
    // With a PIN: after the reset the SIM is locked again until it is entered.
    let config = SimConfig {
        pin: Some("1234".into()),
        ..SimConfig::default()
    };
    let rig = Rig::start("modem-reset", config, "    pin: \"1234\"\n").await;
    rig.until_readyz(200).await;
    rig.sim.inject(Fault::ResetMidSend);
    let got = rig.say("+15552005", "echo after the reset", 1).await;
    assert_eq!(got, vec!["after the reset"], "{}", rig.transcript());
    let inits = |rig: &Rig| {
        let t = rig.sim.transcript();
        t.iter().filter(|l| l.contains("AT+CNMI=")).count()
    };
    assert!(inits(&rig) >= 2, "set up again: {}", rig.transcript());
    let got = rig.say("+15552005", "echo and again", 2).await;
    assert_eq!(got[1], "and again");
    rig.stop().await;
}

/// Bytes that are not UTF-8 and a cut-off line on the wire change nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn garbage_on_the_wire_is_survived() {
    let rig = Rig::start("modem-garbage", SimConfig::default(), "").await;
    rig.until_readyz(200).await;
    rig.sim.inject(Fault::Garbage);
    let got = rig.say("+15552006", "echo clean", 1).await;
    assert_eq!(got, vec!["clean"], "{}", rig.transcript());
    rig.stop().await;
}

/// Messages routed straight to smsflow (`+CMT`, here asked for with an
/// `init:` command) are stored, then acknowledged (`AT+CNMA`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn routed_messages_are_stored_then_acknowledged() {
    let extra = "    init: [\"AT+CNMI=2,2,0,1,0\"]\n";
    let rig = Rig::start("modem-routed", SimConfig::default(), extra).await;
    rig.until_readyz(200).await;
    let got = rig.say("+15552007", "echo routed", 1).await;
    assert_eq!(got, vec!["routed"], "{}", rig.transcript());
    let acks = rig
        .sim
        .transcript()
        .iter()
        .filter(|l| l.contains("AT+CNMA"))
        .count();
    assert!(acks >= 1, "{}", rig.transcript());
    rig.stop().await;
}

/// The huawei profile has reports stored (`+CDSI`): read, made an event,
/// deleted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stored_reports_make_events() {
    let extra = "    profile: huawei\n";
    let rig = Rig::start("modem-cdsi", SimConfig::default(), extra).await;
    rig.until_readyz(200).await;
    let got = rig.say("+15552008", "echo stored report", 1).await;
    assert_eq!(got, vec!["stored report"]);
    assert_eq!(
        until_reports("modem-cdsi", "delivered", 1).await,
        1,
        "{}",
        rig.transcript()
    );
    let until = std::time::Instant::now() + WAIT;
    while !rig.sim.stored().is_empty() && std::time::Instant::now() < until {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        rig.sim.stored().is_empty(),
        "the report is deleted: {:?}",
        rig.sim.stored()
    );
    rig.stop().await;
}

/// A report of TP-Status 0x46 (validity period expired) makes `expired`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_report_makes_an_expired_event() {
    let config = SimConfig {
        report: smsflow::modem::sim::ReportMode::Failed(0x46),
        ..SimConfig::default()
    };
    let rig = Rig::start("modem-expired", config, "").await;
    rig.until_readyz(200).await;
    rig.say("+15552009", "echo too late", 1).await;
    assert_eq!(
        until_reports("modem-expired", "expired", 1).await,
        1,
        "{}",
        rig.transcript()
    );
    assert_eq!(reports("modem-expired", "delivered"), 0);
    rig.stop().await;
}

/// The SMS-DELIVER parts of `text` from `from`, with reference `reference`.
fn parts_of(from: &str, text: &str, reference: u8) -> Vec<String> {
    let now = chrono::Utc::now().fixed_offset();
    smsflow::modem::sim::pdus::deliver("00", from, text, reference, now).unwrap()
}

/// A long message's parts arriving out of order, one of them twice: one
/// message, joined in order.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn parts_out_of_order_and_repeated_make_one_message() {
    let rig = Rig::start("modem-parts", SimConfig::default(), "").await;
    rig.until_readyz(200).await;
    let body: String = (0..400)
        .map(|i| char::from(b'A' + (i % 26) as u8))
        .collect();
    let pdus = parts_of("+15552010", &format!("echo {body}"), 0x42);
    assert_eq!(pdus.len(), 3);
    for i in [2, 0, 0, 1] {
        rig.sim.deliver_pdu(&pdus[i]).unwrap();
    }
    let got = phone::wait_for(&rig.sim, "+15552010", 1, WAIT).await;
    assert_eq!(got, vec![body], "{}", rig.transcript());
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(
        phone::received(&rig.sim, "+15552010").len(),
        1,
        "answered once"
    );
    rig.stop().await;
}

/// A long message missing a part is delivered after `multipart_timeout`
/// with what came (the app answers what it got).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_message_missing_a_part_is_delivered_after_the_timeout() {
    let extra = "    multipart_timeout: 2s\n";
    let rig = Rig::start("modem-missing", SimConfig::default(), extra).await;
    rig.until_readyz(200).await;
    let body: String = (0..300)
        .map(|i| char::from(b'a' + (i % 26) as u8))
        .collect();
    let text = format!("echo {body}");
    let pdus = parts_of("+15552011", &text, 0x43);
    assert_eq!(pdus.len(), 2);
    rig.sim.deliver_pdu(&pdus[0]).unwrap();
    let got = phone::wait_for(&rig.sim, "+15552011", 1, WAIT).await;
    // Part 1 holds the first 153 characters: "echo " and 148 of the body.
    assert_eq!(got, vec![body[..148].to_owned()], "{}", rig.transcript());
    rig.stop().await;
}

/// The network is lost: `/readyz` says so (the sweep reads `AT+CREG?`), a
/// message a phone sent meanwhile is kept, and once the modem is registered
/// again it is answered.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lost_network_is_not_ready_and_loses_nothing() {
    let rig = Rig::start("modem-network", SimConfig::default(), "").await;
    rig.until_readyz(200).await;
    rig.sim.inject(Fault::NoNetwork);
    // Lost at a sweep; then the init waits for the network, not ready.
    let until = std::time::Instant::now() + WAIT;
    loop {
        let (status, why) = rig.readyz().await;
        if status == 503 && why.contains("not registered") {
            break;
        }
        assert!(std::time::Instant::now() < until, "{status} {why}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    rig.sim
        .deliver("+15552012", "echo when the network is back");
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert!(phone::received(&rig.sim, "+15552012").is_empty());
    rig.sim.set_registered(true);
    let got = phone::wait_for(&rig.sim, "+15552012", 1, WAIT).await;
    assert_eq!(
        got,
        vec!["when the network is back"],
        "{}",
        rig.transcript()
    );
    rig.until_readyz(200).await;
    rig.stop().await;
}

/// `+CMS ERROR: 330` (SMSC address unknown) is the modem's, not the
/// message's: the modem is set up again and the message tried again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_smsc_error_sets_the_modem_up_again_and_the_message_goes() {
    let rig = Rig::start("modem-smsc", SimConfig::default(), "").await;
    rig.until_readyz(200).await;
    rig.sim.inject(Fault::CmsOnNextSend(330));
    let got = rig.say("+15552013", "echo via the smsc", 1).await;
    assert_eq!(got, vec!["via the smsc"], "{}", rig.transcript());
    let inits = rig
        .sim
        .transcript()
        .iter()
        .filter(|l| l.contains("AT+CSCA?"))
        .count();
    assert!(inits >= 2, "set up again: {}", rig.transcript());
    rig.stop().await;
}
