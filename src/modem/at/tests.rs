//! The link against a scripted modem on an in-memory pipe.

use std::time::Duration;

use tokio::io::{duplex, AsyncReadExt, AsyncWriteExt, DuplexStream};

use super::*;

const SECOND: Duration = Duration::from_secs(1);

/// A link, and the modem's end of the pipe.
fn pair() -> (Link<DuplexStream>, DuplexStream) {
    let (a, b) = duplex(4096);
    (Link::new(a), b)
}

/// Read what the host wrote, up to `end`.
async fn heard(modem: &mut DuplexStream, end: u8) -> String {
    let mut got = Vec::new();
    let mut byte = [0u8; 1];
    while modem.read_exact(&mut byte).await.is_ok() {
        if byte[0] == end {
            break;
        }
        got.push(byte[0]);
    }
    String::from_utf8_lossy(&got).into_owned()
}

#[tokio::test]
async fn echo_is_skipped_and_lines_come_back_without_ok() {
    let (mut link, mut modem) = pair();
    let answer = tokio::spawn(async move {
        assert_eq!(heard(&mut modem, b'\r').await, "AT+CSQ");
        modem
            .write_all(b"AT+CSQ\r\r\n+CSQ: 17,99\r\n\r\nOK\r\n")
            .await
            .unwrap();
        modem
    });
    let lines = link.command("AT+CSQ", SECOND).await.unwrap();
    assert_eq!(lines, vec!["+CSQ: 17,99"]);
    answer.await.unwrap();
}

#[tokio::test]
async fn a_urc_inside_a_send_is_set_apart() {
    let (mut link, mut modem) = pair();
    let answer = tokio::spawn(async move {
        assert_eq!(heard(&mut modem, b'\r').await, "AT+CMGS=24");
        modem.write_all(b"\r\n> ").await.unwrap();
        assert_eq!(heard(&mut modem, 0x1A).await, "0001000C91");
        modem
            .write_all(b"\r\n+CMGS: 7\r\n\r\n+CMTI: \"SM\",3\r\n\r\nOK\r\n")
            .await
            .unwrap();
        modem
    });
    let mr = link.send_pdu(24, "0001000C91", SECOND).await.unwrap();
    assert_eq!(mr, 7);
    assert_eq!(
        link.take_urcs(),
        vec![Urc::Stored {
            memory: "SM".into(),
            index: 3
        }]
    );
    answer.await.unwrap();
}

#[tokio::test]
async fn errors_are_named() {
    let (mut link, mut modem) = pair();
    tokio::spawn(async move {
        heard(&mut modem, b'\r').await;
        modem.write_all(b"\r\n> ").await.unwrap();
        heard(&mut modem, 0x1A).await;
        modem.write_all(b"\r\n+CMS ERROR: 330\r\n").await.unwrap();
        heard(&mut modem, b'\r').await;
        modem.write_all(b"\r\n+CME ERROR: 16\r\n").await.unwrap();
        modem
    });
    let e = link.send_pdu(24, "00", SECOND).await.unwrap_err();
    assert_eq!(
        e.to_string(),
        "AT+CMGS=24: +CMS ERROR 330 (SMSC address unknown)"
    );
    let e = link.command("AT+CPIN=\"0000\"", SECOND).await.unwrap_err();
    assert!(matches!(e, AtError::Cme { code: 16, .. }), "{e}");
    assert!(e.to_string().contains("incorrect password"), "{e}");
    assert!(
        !e.to_string().contains("0000"),
        "the PIN is never shown: {e}"
    );
}

#[tokio::test]
async fn silence_is_a_timeout_and_a_closed_port_is_closed() {
    let (mut link, modem) = pair();
    let e = link
        .command("AT", Duration::from_millis(50))
        .await
        .unwrap_err();
    assert_eq!(e.to_string(), "AT: no answer within 50ms");
    assert!(!e.is_link());
    drop(modem);
    let e = link.command("AT", SECOND).await.unwrap_err();
    assert!(e.is_link(), "{e}");
}

#[tokio::test]
async fn garbage_and_truncated_lines_are_survived() {
    let (mut link, mut modem) = pair();
    tokio::spawn(async move {
        heard(&mut modem, b'\r').await;
        let mut junk = vec![0xFF, 0xFE, 0x00, b'\r', b'\n'];
        junk.extend_from_slice(&[b'x'; 5000]);
        junk.extend_from_slice(b"\r\n+CMT\r\n\r\nOK\r\n");
        modem.write_all(&junk).await.unwrap();
        modem
    });
    let lines = link.command("AT", SECOND).await.unwrap();
    // The over-long line was dropped; the truncated `+CMT` (no colon) and
    // the undecodable bytes are information lines the caller ignores.
    assert!(lines.iter().all(|l| l.len() < 5000), "{lines:?}");
}

#[tokio::test]
async fn routed_messages_and_reports_carry_their_pdu() {
    let (mut link, mut modem) = pair();
    modem
        .write_all(b"\r\n+CMT: ,23\r\n0791AABB\r\n\r\n+CDS: 25\r\n0006420C\r\n")
        .await
        .unwrap();
    let first = link.urc(SECOND).await.unwrap();
    assert_eq!(
        first,
        Some(Urc::Message {
            pdu: "0791AABB".into()
        })
    );
    let second = link.urc(SECOND).await.unwrap();
    assert_eq!(
        second,
        Some(Urc::Report {
            pdu: "0006420C".into()
        })
    );
    assert_eq!(link.urc(Duration::from_millis(20)).await.unwrap(), None);
}
