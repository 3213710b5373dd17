//! The simulated modem on a pseudo-terminal, opened by path as a serial
//! port (tokio-serial, as the modem backend opens a real one): a client can
//! open, close and open it again; the port vanishes (opening fails, an open
//! client reads the end) and reappears with the SIM's messages intact;
//! `smsflow modem-sim` as a user runs it.

use std::path::Path;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_serial::{SerialPortBuilderExt, SerialStream};

use smsflow::modem::pdu::{decode, Pdu};
use smsflow::modem::sim::{SimConfig, SimModem};

/// One test at a time: the command test forks `smsflow`, and a child
/// forked while the other test has a port open inherits that fd (serialport
/// does not open it close-on-exec) and with it the port's `flock`, so the
/// next open of that port would fail.
static ONE_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

fn open(link: &Path) -> tokio_serial::Result<SerialStream> {
    tokio_serial::new(link.to_string_lossy(), 115_200).open_native_async()
}

/// Writes `command` and `\r`, and reads up to `\r\nOK\r\n` (or fails after 5 s).
async fn at(port: &mut SerialStream, command: &str) -> String {
    port.write_all(format!("{command}\r").as_bytes())
        .await
        .unwrap();
    let mut got = Vec::new();
    let mut chunk = [0u8; 1024];
    let read = tokio::time::timeout(Duration::from_secs(5), async {
        while !String::from_utf8_lossy(&got).ends_with("\r\nOK\r\n") {
            let n = port.read(&mut chunk).await.unwrap();
            assert!(n > 0, "the port closed");
            got.extend_from_slice(&chunk[..n]);
        }
    });
    let in_time = read.await.is_ok();
    let text = String::from_utf8_lossy(&got).into_owned();
    assert!(in_time, "{command}: no OK in 5 s, got {text:?}");
    text
}

#[tokio::test]
async fn a_client_opens_the_link_and_the_port_vanishes_and_reappears() {
    let _alone = ONE_AT_A_TIME.lock().await;
    let dir = tempfile::tempdir().unwrap();
    let link = dir.path().join("ttyModem");
    let sim = SimModem::new(SimConfig::default());
    let mut pty = sim.on_pty(&link).await.unwrap();
    assert_eq!(std::fs::read_link(&link).unwrap(), pty.device().unwrap());

    // Open, talk, close, twice: the port outlives its clients.
    for round in 0..2 {
        let mut port = open(&link).unwrap_or_else(|e| panic!("open {round}: {e}"));
        assert!(at(&mut port, "AT").await.ends_with("\r\nOK\r\n"));
        drop(port);
    }
    // A client that leaves has the port moved to a fresh pty at the same
    // path: a client's TIOCEXCL would otherwise keep the next one out.
    // (The kernel may give the new pty the old one's number.)
    let left = || {
        sim.transcript()
            .iter()
            .any(|l| l.starts_with("-- client left"))
    };
    for _ in 0..250 {
        if left() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(left(), "{:#?}", sim.transcript());
    assert_eq!(std::fs::read_link(&link).ok(), pty.device());
    assert_eq!(sim.deliver("+15551234", "kept on the SIM"), [1]);

    // Unplugged: an open client reads the end; the path is gone.
    let mut port = open(&link).unwrap();
    at(&mut port, "ATE0").await;
    pty.vanish().await;
    let mut chunk = [0u8; 64];
    let read = tokio::time::timeout(Duration::from_secs(5), port.read(&mut chunk)).await;
    assert!(matches!(read, Ok(Ok(0)) | Ok(Err(_))), "{read:?}");
    drop(port);
    assert!(open(&link).is_err());
    assert!(std::fs::symlink_metadata(&link).is_err());

    // Plugged back: a new pty at the same path, the modem at power-on
    // (echo on again), the SIM's message still there.
    pty.reappear().await.unwrap();
    let mut port = open(&link).unwrap();
    let listing = at(&mut port, "AT+CMGL=4").await;
    assert!(
        listing.starts_with("AT+CMGL=4\r\r\n+CMGL: 1,0,,"),
        "{listing:?}"
    );
    let pdu = listing.split("\r\n").nth(2).unwrap();
    match decode(pdu).unwrap() {
        Pdu::Deliver(d) => assert_eq!(d.user_data.text(), Some("kept on the SIM")),
        other => panic!("not a DELIVER: {other:?}"),
    }
    drop(pty);
    assert!(std::fs::symlink_metadata(&link).is_err(), "dropped: gone");
}

/// Waits up to 10 s for `link` to appear.
async fn appeared(link: &Path) -> bool {
    for _ in 0..200 {
        if std::fs::symlink_metadata(link).is_ok() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    false
}

#[tokio::test]
async fn smsflow_modem_sim_takes_phones_on_stdin_and_prints_what_is_sent() {
    use tokio::io::{AsyncBufReadExt, BufReader};
    let _alone = ONE_AT_A_TIME.lock().await;
    let dir = tempfile::tempdir().unwrap();
    let link = dir.path().join("modem");
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_smsflow"))
        .arg("modem-sim")
        .arg("--link")
        .arg(&link)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    assert!(appeared(&link).await, "no link at {}", link.display());
    let mut stdin = child.stdin.take().unwrap();
    stdin
        .write_all(b"+15551234 typed on the keyboard\n")
        .await
        .unwrap();

    let mut port = open(&link).unwrap();
    at(&mut port, "ATE0").await;
    let mut listing = String::new();
    for _ in 0..100 {
        listing = at(&mut port, "AT+CMGL=4").await;
        if listing.contains("+CMGL: 1,") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let pdu = listing.split("\r\n").nth(2).unwrap_or_default();
    match decode(pdu) {
        Ok(Pdu::Deliver(d)) => {
            assert_eq!(d.originator, "+15551234");
            assert_eq!(d.user_data.text(), Some("typed on the keyboard"));
        }
        other => panic!("not a DELIVER: {other:?} in {listing:?}"),
    }
    // V1 of research note 18: "Hello [€]" to +256772123456.
    port.write_all(b"AT+CMGS=24\r").await.unwrap();
    let mut prompt = [0u8; 4];
    port.read_exact(&mut prompt).await.unwrap();
    assert_eq!(&prompt, b"\r\n> ");
    let v1 = "0001000C9152762721436500000CC8329BFD066D789BF2C607\x1A";
    port.write_all(v1.as_bytes()).await.unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let line = tokio::time::timeout(Duration::from_secs(10), lines.next_line()).await;
    let line = line.expect("nothing printed in 10 s").unwrap();
    assert_eq!(line.as_deref(), Some("to +256772123456 (mr 0): Hello [€]"));

    let pid = child.id().unwrap().to_string();
    let killed = std::process::Command::new("kill")
        .args(["-INT", &pid])
        .status();
    assert!(killed.unwrap().success());
    let status = tokio::time::timeout(Duration::from_secs(10), child.wait()).await;
    assert!(status.expect("still running").unwrap().success());
    assert!(
        std::fs::symlink_metadata(&link).is_err(),
        "the link is removed"
    );
}
