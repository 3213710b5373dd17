//! The simulated modem's dialogue over `tokio::io::duplex`, as a host sees
//! it byte for byte: echo, the PIN, sending with the prompt, receiving
//! with `+CMTI`/`+CMT`, the storage commands, status reports, each fault.
//! Time is paused: delays (reports, resets, silence) pass at once.

use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt, DuplexStream};

use super::*;
use crate::modem::pdu::{self, decode, Pdu, Status};

const V1: &str = "0001000C9152762721436500000CC8329BFD066D789BF2C607";
const V1S: &str = "0021000C9152762721436500000CC8329BFD066D789BF2C607";
const TO: &str = "+256772123456";

/// The host's end of the serial line.
struct Host {
    io: DuplexStream,
    /// Bytes read and not yet handed to a test.
    pending: Vec<u8>,
}

fn start(config: SimConfig) -> (SimModem, Host) {
    let sim = SimModem::new(config);
    let (host, modem) = tokio::io::duplex(1 << 16);
    let served = sim.clone();
    tokio::spawn(async move { served.serve(modem).await });
    let host = Host {
        io: host,
        pending: Vec::new(),
    };
    (sim, host)
}

/// Whether `text` ends with a final result code or the prompt.
fn finished(text: &str) -> bool {
    let last = text.trim_end_matches("\r\n").rsplit("\r\n").next();
    text.ends_with("\r\n> ")
        || (text.ends_with("\r\n")
            && last.is_some_and(|l| {
                l == "OK"
                    || l == "ERROR"
                    || l.starts_with("+CMS ERROR")
                    || l.starts_with("+CME ERROR")
            }))
}

impl Host {
    async fn write(&mut self, bytes: &[u8]) {
        self.io.write_all(bytes).await.unwrap();
    }

    /// Reads until `done` holds for what came (as text), or 30 s pass.
    async fn read_while(&mut self, done: impl Fn(&str) -> bool) -> Vec<u8> {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
        let mut chunk = [0u8; 4096];
        while !done(&String::from_utf8_lossy(&self.pending)) {
            let read = tokio::time::timeout_at(deadline, self.io.read(&mut chunk)).await;
            match read {
                Ok(Ok(n)) if n > 0 => self.pending.extend_from_slice(&chunk[..n]),
                _ => break,
            }
        }
        std::mem::take(&mut self.pending)
    }

    /// Sends `command` and `\r`; the answer up to its final result or prompt.
    async fn at(&mut self, command: &str) -> String {
        self.write(format!("{command}\r").as_bytes()).await;
        let bytes = self.read_while(finished).await;
        String::from_utf8_lossy(&bytes).into_owned()
    }

    /// Reads until `needle` has come.
    async fn until(&mut self, needle: &str) -> String {
        let bytes = self.read_while(|t| t.contains(needle)).await;
        String::from_utf8_lossy(&bytes).into_owned()
    }

    /// What comes within `wait` (nothing, if the modem is quiet).
    async fn quiet(&mut self, wait: Duration) -> String {
        let mut chunk = [0u8; 4096];
        if let Ok(Ok(n)) = tokio::time::timeout(wait, self.io.read(&mut chunk)).await {
            self.pending.extend_from_slice(&chunk[..n]);
        }
        String::from_utf8_lossy(&std::mem::take(&mut self.pending)).into_owned()
    }

    /// `AT+CMGS=<len>`, the prompt, `hex` and Ctrl-Z; the answer.
    async fn send_pdu(&mut self, hex: &str) -> String {
        let len = pdus::tpdu_len(hex).unwrap();
        assert_eq!(self.at(&format!("AT+CMGS={len}")).await, "\r\n> ");
        self.write(format!("{hex}\x1A").as_bytes()).await;
        String::from_utf8_lossy(&self.read_while(finished).await).into_owned()
    }

    /// An unsolicited line with a PDU line after it (`+CMT`, `+CDS`).
    async fn urc_with_pdu(&mut self) -> (String, String) {
        let bytes = self.read_while(|t| t.matches("\r\n").count() >= 3).await;
        let text = String::from_utf8_lossy(&bytes).into_owned();
        let mut lines = text.split("\r\n").filter(|l| !l.is_empty());
        let head = lines.next().unwrap_or_default().to_owned();
        (head, lines.next().unwrap_or_default().to_owned())
    }

    async fn quiet_setup(&mut self, commands: &[&str]) {
        for command in ["ATE0", "AT+CMEE=1"].iter().chain(commands) {
            let answer = self.at(command).await;
            assert!(answer.ends_with("\r\nOK\r\n"), "{command}: {answer:?}");
        }
    }
}

fn sim(config: SimConfig) -> (SimModem, Host) {
    start(config)
}

fn report(hex: &str) -> pdu::StatusReport {
    match decode(hex).unwrap() {
        Pdu::StatusReport(r) => r,
        other => panic!("not a status report: {other:?}"),
    }
}

fn delivered_text(hex: &str) -> String {
    match decode(hex).unwrap() {
        Pdu::Deliver(d) => d.user_data.text().unwrap().to_owned(),
        other => panic!("not a DELIVER: {other:?}"),
    }
}

/// The PDU line after an information line starting with `head`.
fn pdu_after<'a>(answer: &'a str, head: &str) -> &'a str {
    let mut lines = answer.split("\r\n").filter(|l| !l.is_empty());
    lines.find(|l| l.starts_with(head)).unwrap();
    lines.next().unwrap()
}

#[tokio::test(start_paused = true)]
async fn echoes_until_ate0_and_frames_every_line() {
    let (_sim, mut host) = sim(SimConfig::default());
    assert_eq!(host.at("AT").await, "AT\r\r\nOK\r\n");
    assert_eq!(
        host.at("at+cgmi").await,
        "at+cgmi\r\r\nSmsflow\r\n\r\nOK\r\n"
    );
    assert_eq!(host.at("AT+NOSUCH=1").await, "AT+NOSUCH=1\r\r\nERROR\r\n");
    // gammu's opening ESC, then a line ended by \r\n.
    assert_eq!(host.at("\x1b").await, "\x1b\r\r\nERROR\r\n");
    assert_eq!(host.at("ATE0").await, "ATE0\r\r\nOK\r\n");
    host.write(b"AT\r\nAT+CGSN\r\n").await;
    let both = host.until("356938035643809\r\n\r\nOK\r\n").await;
    assert_eq!(both, "\r\nOK\r\n\r\n356938035643809\r\n\r\nOK\r\n");
    assert_eq!(host.at("ATE1").await, "\r\nOK\r\n");
    assert_eq!(
        host.at("AT+CMGF?").await,
        "AT+CMGF?\r\r\n+CMGF: 0\r\n\r\nOK\r\n"
    );
    assert_eq!(host.at("ATZ").await, "ATZ\r\r\nOK\r\n");
}

#[tokio::test(start_paused = true)]
async fn answers_what_gammu_and_kannel_ask_at_start() {
    let (_sim, mut host) = sim(SimConfig::default());
    host.quiet_setup(&["AT+CFUN=1", "AT+CMGF=0", "AT+CNMI=2,1,0,2,0"])
        .await;
    let expect = [
        ("AT+CGMM", "SimModem 1"),
        ("AT+CGMR", "1.0"),
        ("AT+CIMI", "001010123456789"),
        ("AT+CPIN?", "+CPIN: READY"),
        ("AT+CFUN?", "+CFUN: 1"),
        ("AT+CSMS=1", "+CSMS: 1,1,1"),
        ("AT+CSMS?", "+CSMS: 1,1,1,1"),
        ("AT+CPMS=\"SM\",\"SM\",\"SM\"", "+CPMS: 0,20,0,20,0,20"),
        ("AT+CPMS?", "+CPMS: \"SM\",0,20,\"SM\",0,20,\"SM\",0,20"),
        ("AT+CNMI?", "+CNMI: 2,1,0,2,0"),
        ("AT+CSCA?", "+CSCA: \"+15550000000\",145"),
        ("AT+CREG?", "+CREG: 0,1"),
        ("AT+CSQ", "+CSQ: 20,99"),
        ("AT+COPS?", "+COPS: 0,0,\"Sim Network\""),
        ("AT+CSCS?", "+CSCS: \"GSM\""),
    ];
    for (command, line) in expect {
        assert_eq!(host.at(command).await, format!("\r\n{line}\r\n\r\nOK\r\n"));
    }
    assert_eq!(host.at("AT+CSCA=\"+15559999\",145").await, "\r\nOK\r\n");
    assert_eq!(
        host.at("AT+CSCA?").await,
        "\r\n+CSCA: \"+15559999\",145\r\n\r\nOK\r\n"
    );
    assert_eq!(host.at("AT+CPMS=\"ME\"").await, "\r\n+CMS ERROR: 302\r\n");
    assert_eq!(host.at("AT+CNMI=9").await, "\r\nERROR\r\n");
    assert_eq!(host.at("AT+CNMA").await, "\r\n+CMS ERROR: 340\r\n");
}

#[tokio::test(start_paused = true)]
async fn the_pin_unlocks_the_sim_and_three_wrong_ones_lock_it() {
    let config = SimConfig {
        pin: Some("1234".into()),
        ..SimConfig::default()
    };
    let (_sim, mut host) = sim(config.clone());
    host.quiet_setup(&[]).await;
    assert_eq!(
        host.at("AT+CPIN?").await,
        "\r\n+CPIN: SIM PIN\r\n\r\nOK\r\n"
    );
    assert_eq!(host.at("AT+CMGL=4").await, "\r\n+CMS ERROR: 311\r\n");
    assert_eq!(host.at("AT+CIMI").await, "\r\n+CME ERROR: 11\r\n");
    assert_eq!(host.at("AT+CREG?").await, "\r\n+CREG: 0,0\r\n\r\nOK\r\n");
    assert_eq!(host.at("AT+CPIN=\"0000\"").await, "\r\n+CME ERROR: 16\r\n");
    assert_eq!(host.at("AT+CPIN=\"1234\"").await, "\r\nOK\r\n");
    assert_eq!(host.at("AT+CPIN?").await, "\r\n+CPIN: READY\r\n\r\nOK\r\n");
    assert_eq!(host.at("AT+CREG?").await, "\r\n+CREG: 0,1\r\n\r\nOK\r\n");
    assert_eq!(host.at("AT+CPIN=\"1234\"").await, "\r\n+CME ERROR: 3\r\n");

    let (_sim, mut host) = sim(config);
    host.quiet_setup(&[]).await;
    for _ in 0..3 {
        assert_eq!(host.at("AT+CPIN=\"9999\"").await, "\r\n+CME ERROR: 16\r\n");
    }
    assert_eq!(
        host.at("AT+CPIN?").await,
        "\r\n+CPIN: SIM PUK\r\n\r\nOK\r\n"
    );
    assert_eq!(host.at("AT+CPIN=\"1234\"").await, "\r\n+CME ERROR: 12\r\n");
    assert_eq!(host.at("AT+CMGR=1").await, "\r\n+CMS ERROR: 316\r\n");
    assert_eq!(host.at("AT+CMEE=2").await, "\r\nOK\r\n");
    assert_eq!(
        host.at("AT+CIMI").await,
        "\r\n+CME ERROR: SIM PUK required\r\n"
    );
    assert_eq!(host.at("AT+CMEE=0").await, "\r\nOK\r\n");
    assert_eq!(host.at("AT+CIMI").await, "\r\nERROR\r\n");
}

#[tokio::test(start_paused = true)]
async fn sends_with_the_prompt_and_mr_wraps() {
    let config = SimConfig {
        first_reference: 254,
        ..SimConfig::default()
    };
    let (sim, mut host) = sim(config);
    host.quiet_setup(&["AT+CMGF=0"]).await;
    for mr in [254, 255, 0] {
        let answer = host.send_pdu(V1).await;
        assert_eq!(answer, format!("\r\n+CMGS: {mr}\r\n\r\nOK\r\n"));
    }
    let sent = sim.sent();
    let refs: Vec<u8> = sent.iter().map(|s| s.mr).collect();
    assert_eq!(refs, [254, 255, 0]);
    assert_eq!(
        (sent[0].to.as_str(), sent[0].text.as_str()),
        (TO, "Hello [€]")
    );
    assert_eq!(
        (sent[0].status_report, sent[0].concat, sent[0].hex.as_str()),
        (false, None, V1)
    );

    // A long text, as smsflow's encoder cuts it.
    let options = pdu::Options {
        status_report: false,
        concat_ref: 9,
    };
    for part in pdu::submit(TO, &"0123456789".repeat(20), options).unwrap() {
        assert!(host.send_pdu(&part.hex).await.ends_with("\r\nOK\r\n"));
    }
    let parts: Vec<_> = sim.sent().into_iter().skip(3).collect();
    let joined: String = parts.iter().map(|p| p.text.as_str()).collect();
    assert_eq!(joined, "0123456789".repeat(20));
    assert_eq!(
        parts[1].concat.map(|c| (c.reference, c.total, c.seq)),
        Some((9, 2, 2))
    );
}

#[tokio::test(start_paused = true)]
async fn refuses_a_wrong_length_a_bad_pdu_and_text_mode() {
    let (sim, mut host) = sim(SimConfig::default());
    host.quiet_setup(&[]).await;
    assert_eq!(host.at("AT+CMGS=23").await, "\r\n> ");
    host.write(format!("{V1}\x1A").as_bytes()).await;
    let answer = host.read_while(finished).await;
    assert_eq!(answer, b"\r\n+CMS ERROR: 304\r\n");
    let deliver = "07911326040000F0040B911346610089F60000208062917314080CC8F71D14969741F977FD07";
    assert_eq!(host.send_pdu(deliver).await, "\r\n+CMS ERROR: 304\r\n");
    assert_eq!(host.send_pdu("0001").await, "\r\n+CMS ERROR: 304\r\n");
    // ESC instead of Ctrl-Z: nothing sent.
    assert_eq!(host.at("AT+CMGS=24").await, "\r\n> ");
    host.write(format!("{V1}\x1B").as_bytes()).await;
    assert_eq!(host.read_while(finished).await, b"\r\nOK\r\n");
    assert_eq!(host.at("AT+CMGS=0").await, "\r\nERROR\r\n");
    assert_eq!(host.at("AT+CMGF=1").await, "\r\nOK\r\n");
    assert_eq!(host.at("AT+CMGS=\"+15551234\"").await, "\r\nERROR\r\n");
    assert!(sim.sent().is_empty());
}

#[tokio::test(start_paused = true)]
async fn stores_announces_reads_lists_and_deletes() {
    let (sim, mut host) = sim(SimConfig::default());
    host.quiet_setup(&["AT+CNMI=2,1,0,0,0"]).await;
    assert_eq!(sim.deliver("+15551234", "Hi from a phone"), [1]);
    assert_eq!(
        host.until("\r\n+CMTI: \"SM\",1\r\n").await,
        "\r\n+CMTI: \"SM\",1\r\n"
    );
    let stored = sim.stored();
    assert_eq!(stored.len(), 1);
    assert!(stored[0].1.starts_with("07915155000000F0"), "{stored:?}");
    let answer = host.at("AT+CMGR=1").await;
    let len = pdus::tpdu_len(&stored[0].1).unwrap();
    assert_eq!(
        answer,
        format!("\r\n+CMGR: 0,,{len}\r\n{}\r\n\r\nOK\r\n", stored[0].1)
    );
    assert_eq!(
        delivered_text(pdu_after(&answer, "+CMGR")),
        "Hi from a phone"
    );
    assert!(host.at("AT+CMGR=1").await.starts_with("\r\n+CMGR: 1,,"));

    let long = "€ ".repeat(100);
    assert_eq!(sim.deliver("+15551234", &long), [2, 3]);
    host.until("+CMTI: \"SM\",3\r\n").await;
    let listing = host.at("AT+CMGL=4").await;
    let heads: Vec<&str> = listing
        .split("\r\n")
        .filter(|l| l.starts_with("+CMGL"))
        .collect();
    assert_eq!(heads.len(), 3, "{listing}");
    assert!(heads[0].starts_with("+CMGL: 1,1,,") && heads[2].starts_with("+CMGL: 3,0,,"));
    assert!(
        host.at("AT+CMGL=0").await == "\r\nOK\r\n",
        "listing marks them read"
    );
    let joined = delivered_text(pdu_after(&listing, "+CMGL: 2"))
        + &delivered_text(pdu_after(&listing, "+CMGL: 3"));
    assert_eq!(joined, long);
    assert_eq!(
        host.at("AT+CPMS?").await,
        "\r\n+CPMS: \"SM\",3,20,\"SM\",3,20,\"SM\",3,20\r\n\r\nOK\r\n"
    );
    assert_eq!(host.at("AT+CMGD=1").await, "\r\nOK\r\n");
    assert_eq!(host.at("AT+CMGR=1").await, "\r\n+CMS ERROR: 321\r\n");
    assert_eq!(host.at("AT+CMGD=21").await, "\r\n+CMS ERROR: 321\r\n");
    assert_eq!(host.at("AT+CMGD=1,4").await, "\r\nOK\r\n");
    assert!(sim.stored().is_empty());

    let d2 =
        "00440DD0D3F6DCCC7EDF0100006270111234500019060804BEEF030250797A5CD6816A9B3268837AAF3729";
    assert_eq!(sim.deliver_pdu(d2), Ok(Some(1)));
    assert_eq!(
        sim.deliver_pdu("0G"),
        Err(pdu::PduError::BadHex {
            position: 1,
            found: 'G'
        })
    );
    assert_eq!(sim.deliver_pdu("000"), Err(pdu::PduError::OddHex(3)));
}

#[tokio::test(start_paused = true)]
async fn routes_with_cmt_and_stores_what_is_not_acknowledged() {
    let (sim, mut host) = sim(SimConfig::default());
    host.quiet_setup(&["AT+CSMS=1", "AT+CNMI=2,2,0,0,0"]).await;
    assert!(sim.deliver("+15551234", "routed").is_empty());
    let (head, pdu_line) = host.urc_with_pdu().await;
    let len = pdus::tpdu_len(&pdu_line).unwrap();
    assert_eq!(head, format!("+CMT: ,{len}"));
    assert_eq!(delivered_text(&pdu_line), "routed");
    assert_eq!(host.at("AT+CNMA").await, "\r\nOK\r\n");
    assert_eq!(host.at("AT+CNMA").await, "\r\n+CMS ERROR: 340\r\n");
    // Not acknowledged: stored once the timeout passes.
    sim.deliver("+15551234", "unacknowledged");
    host.urc_with_pdu().await;
    tokio::time::sleep(Duration::from_secs(11)).await;
    let stored = sim.stored();
    assert_eq!(stored.len(), 1);
    assert_eq!(delivered_text(&stored[0].1), "unacknowledged");
}

#[tokio::test(start_paused = true)]
async fn a_full_sim_holds_messages_back_and_stores_them_silently() {
    let config = SimConfig {
        storage: 3,
        ..SimConfig::default()
    };
    let (sim, mut host) = sim(config);
    host.quiet_setup(&["AT+CNMI=2,1,0,0,0"]).await;
    assert_eq!(sim.deliver("+15551234", "first"), [1]);
    host.until("+CMTI: \"SM\",1\r\n").await;
    sim.inject(Fault::StorageFull);
    assert_eq!(sim.stored().len(), 3);
    assert!(sim.deliver("+15551234", "second").is_empty());
    assert_eq!(host.quiet(Duration::from_secs(5)).await, "");
    assert_eq!(
        host.at("AT+CPMS?").await,
        "\r\n+CPMS: \"SM\",3,3,\"SM\",3,3,\"SM\",3,3\r\n\r\nOK\r\n"
    );
    assert_eq!(host.at("AT+CMGD=2").await, "\r\nOK\r\n");
    assert_eq!(host.quiet(Duration::from_secs(5)).await, "", "no +CMTI");
    let listing = host.at("AT+CMGL=4").await;
    assert_eq!(delivered_text(pdu_after(&listing, "+CMGL: 2,0")), "second");
}

#[tokio::test(start_paused = true)]
async fn reports_the_fate_of_a_message_that_asked() {
    let (sim, mut host) = sim(SimConfig::default());
    host.quiet_setup(&["AT+CNMI=2,1,0,1,0"]).await;
    assert_eq!(host.send_pdu(V1S).await, "\r\n+CMGS: 0\r\n\r\nOK\r\n");
    assert!(
        host.send_pdu(V1).await.ends_with("OK\r\n"),
        "no report asked"
    );
    let (head, line) = host.urc_with_pdu().await;
    let r = report(&line);
    assert_eq!(head, format!("+CDS: {}", pdus::tpdu_len(&line).unwrap()));
    assert_eq!(
        (r.message_reference, r.status, r.recipient.as_str()),
        (0, Status::Delivered, TO)
    );
    assert_eq!(
        host.quiet(Duration::from_secs(2)).await,
        "",
        "one report only"
    );
    assert!(sim.sent()[0].status_report);

    let config = SimConfig {
        report: ReportMode::Failed(0x46),
        ..SimConfig::default()
    };
    let (sim, mut host) = start(config);
    host.quiet_setup(&["AT+CNMI=2,1,0,2,0"]).await;
    assert!(host.send_pdu(V1S).await.ends_with("OK\r\n"));
    assert_eq!(
        host.until("\r\n+CDSI: \"SM\",1\r\n").await,
        "\r\n+CDSI: \"SM\",1\r\n"
    );
    let r = report(&sim.stored()[0].1);
    assert_eq!((r.status, r.status_octet), (Status::Failed, 0x46));
}

#[tokio::test(start_paused = true)]
async fn without_network_nothing_goes_out() {
    let (sim, mut host) = sim(SimConfig::default());
    host.quiet_setup(&[]).await;
    sim.inject(Fault::NoNetwork);
    assert_eq!(host.at("AT+CREG?").await, "\r\n+CREG: 0,0\r\n\r\nOK\r\n");
    assert_eq!(host.at("AT+CSQ").await, "\r\n+CSQ: 99,99\r\n\r\nOK\r\n");
    assert_eq!(host.at("AT+COPS?").await, "\r\n+COPS: 0\r\n\r\nOK\r\n");
    assert_eq!(host.send_pdu(V1).await, "\r\n+CMS ERROR: 331\r\n");
    sim.set_registered(true);
    sim.set_signal(7);
    assert_eq!(host.at("AT+CSQ").await, "\r\n+CSQ: 7,99\r\n\r\nOK\r\n");
    assert_eq!(host.send_pdu(V1).await, "\r\n+CMGS: 0\r\n\r\nOK\r\n");
}

#[tokio::test(start_paused = true)]
async fn a_cms_error_on_the_next_send_only() {
    let (sim, mut host) = sim(SimConfig::default());
    host.quiet_setup(&[]).await;
    sim.inject(Fault::CmsOnNextSend(500));
    assert_eq!(host.send_pdu(V1).await, "\r\n+CMS ERROR: 500\r\n");
    assert_eq!(host.send_pdu(V1).await, "\r\n+CMGS: 0\r\n\r\nOK\r\n");
    assert_eq!(sim.sent().len(), 1);
}

#[tokio::test(start_paused = true)]
async fn a_reset_mid_send_answers_nothing_then_boots_afresh() {
    let config = SimConfig {
        pin: Some("1234".into()),
        ..SimConfig::default()
    };
    let (sim, mut host) = sim(config);
    host.quiet_setup(&["AT+CPIN=\"1234\"", "AT+CNMI=2,1,0,0,0"])
        .await;
    sim.deliver("+15551234", "kept");
    host.until("+CMTI").await;
    sim.inject(Fault::ResetMidSend);
    assert_eq!(host.at("AT+CMGS=24").await, "\r\n> ");
    host.write(format!("{V1}\x1A").as_bytes()).await;
    let noise = host.until("ready\r\n").await;
    assert!(noise.contains("Smsflow SimModem 1 1.0 ready"), "{noise:?}");
    assert!(
        !noise.contains("+CMGS") && !noise.contains("OK"),
        "{noise:?}"
    );
    assert!(sim.sent().is_empty());
    // Power-on state: echo on, the PIN asked again, no +CNMI; the SIM kept.
    assert_eq!(
        host.at("AT+CPIN?").await,
        "AT+CPIN?\r\r\n+CPIN: SIM PIN\r\n\r\nOK\r\n"
    );
    assert_eq!(
        host.at("AT+CNMI?").await,
        "AT+CNMI?\r\r\n+CNMI: 0,0,0,0,0\r\n\r\nOK\r\n"
    );
    assert_eq!(sim.stored().len(), 1);
}

#[tokio::test(start_paused = true)]
async fn a_silent_modem_hears_nothing_for_a_while() {
    let (sim, mut host) = sim(SimConfig::default());
    host.quiet_setup(&[]).await;
    sim.inject(Fault::Silent(Duration::from_secs(10)));
    host.write(b"AT\r").await;
    assert_eq!(host.quiet(Duration::from_secs(3)).await, "");
    tokio::time::sleep(Duration::from_secs(8)).await;
    assert_eq!(host.at("AT").await, "\r\nOK\r\n");
    assert!(sim.transcript().iter().any(|l| l.starts_with("-- silent")));
}

#[tokio::test(start_paused = true)]
async fn a_modem_hung_on_a_command_does_not_carry_it_out() {
    let (sim, mut host) = sim(SimConfig::default());
    host.quiet_setup(&[]).await;
    let index = sim.deliver("+15551234", "kept")[0];
    sim.inject(Fault::HangOn("at+cmgd".into()));
    host.write(format!("AT+CMGD={index}\r").as_bytes()).await;
    assert_eq!(host.quiet(Duration::from_secs(3)).await, "");
    assert_eq!(sim.stored().len(), 1, "not deleted");
    assert_eq!(
        host.at("AT").await,
        "\r\nOK\r\n",
        "later commands are heard"
    );
}

#[tokio::test(start_paused = true)]
async fn garbage_and_a_cut_line_before_the_next_answer() {
    let (sim, mut host) = sim(SimConfig::default());
    host.quiet_setup(&[]).await;
    sim.inject(Fault::Garbage);
    host.write(b"AT\r").await;
    let bytes = host.read_while(finished).await;
    assert!(std::str::from_utf8(&bytes).is_err());
    assert!(bytes[..8].iter().all(|&b| b >= 0xF8), "{bytes:?}");
    assert_eq!(&bytes[8..], b"\r\n+CMT\r\nOK\r\n");
    assert_eq!(host.at("AT").await, "\r\nOK\r\n");
}

#[tokio::test(start_paused = true)]
async fn an_unsolicited_line_inside_a_response() {
    let (sim, mut host) = sim(SimConfig {
        first_reference: 5,
        ..SimConfig::default()
    });
    host.quiet_setup(&[]).await;
    sim.inject(Fault::Urc("+CMTI: \"SM\",3".into()));
    let answer = host.send_pdu(V1).await;
    assert_eq!(answer, "\r\n+CMGS: 5\r\n\r\n+CMTI: \"SM\",3\r\n\r\nOK\r\n");
    sim.inject(Fault::Urc("RING".into()));
    assert_eq!(host.at("AT").await, "\r\nRING\r\n\r\nOK\r\n");
    let transcript = sim.transcript();
    assert!(
        transcript.contains(&"<< +CMGS: 5".to_owned()),
        "{transcript:?}"
    );
    assert!(
        transcript.contains(&">> AT+CMEE=1".to_owned()),
        "{transcript:?}"
    );
}
