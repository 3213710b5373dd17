//! Reassembly: order, repeats, references, and the timeout.

use chrono::{FixedOffset, TimeZone};

use super::*;
use crate::modem::pdu::{Alphabet, Concat, UserData};

fn part(from: &str, text: &str, concat: Option<(u16, u8, u8)>) -> Deliver {
    Deliver {
        originator: from.into(),
        protocol_id: 0,
        timestamp: FixedOffset::east_opt(3 * 3600)
            .unwrap()
            .with_ymd_and_hms(2026, 7, 11, 12, 0, 0)
            .unwrap(),
        user_data: UserData {
            alphabet: Alphabet::Gsm7,
            concat: concat.map(|(reference, total, seq)| Concat {
                reference,
                total,
                seq,
            }),
            body: Body::Text(text.into()),
        },
    }
}

#[test]
fn a_single_message_is_whole_at_once() {
    let mut inbox = Inbox::default();
    let w = inbox.take(3, "PDU3", part("+1555", "hi", None)).unwrap();
    assert_eq!((w.text.as_str(), w.indexes.as_slice()), ("hi", &[3][..]));
    assert_eq!(w.timestamp, "2026-07-11T12:00:00+03:00");
    assert_eq!(w.incomplete, None);
    assert_eq!(w.external_id.len(), 32);
}

#[test]
fn parts_out_of_order_and_repeated_are_joined_once() {
    let mut inbox = Inbox::default();
    assert!(inbox
        .take(7, "P3", part("+1555", "c", Some((0xBEEF, 3, 3))))
        .is_none());
    assert!(inbox
        .take(5, "P1", part("+1555", "a", Some((0xBEEF, 3, 1))))
        .is_none());
    // Another sender's part with the same reference is another message.
    assert!(inbox
        .take(9, "Q1", part("+1666", "x", Some((0xBEEF, 3, 1))))
        .is_none());
    // A repeat of part 1 (the network sent it twice).
    assert!(inbox
        .take(8, "P1", part("+1555", "a", Some((0xBEEF, 3, 1))))
        .is_none());
    assert!(inbox.holds(8));
    let w = inbox
        .take(6, "P2", part("+1555", "b", Some((0xBEEF, 3, 2))))
        .unwrap();
    assert_eq!(w.text, "abc");
    assert_eq!(w.indexes, vec![7, 5, 8, 6]);
    assert!(!inbox.holds(8));
    assert!(inbox.holds(9));
}

#[test]
fn the_same_parts_read_again_give_the_same_id() {
    let run = |order: &[(u32, &str, u8)]| {
        let mut inbox = Inbox::default();
        let mut out = None;
        for (i, pdu, seq) in order {
            out = out.or(inbox.take(*i, pdu, part("+1555", pdu, Some((66, 2, *seq)))));
        }
        out.unwrap().external_id
    };
    assert_eq!(
        run(&[(1, "A", 1), (2, "B", 2)]),
        run(&[(4, "B", 2), (3, "A", 1)])
    );
    assert_ne!(
        run(&[(1, "A", 1), (2, "B", 2)]),
        run(&[(1, "A", 1), (2, "C", 2)])
    );
}

#[tokio::test(start_paused = true)]
async fn a_message_missing_a_part_is_given_up_after_the_timeout() {
    let mut inbox = Inbox::default();
    assert!(inbox
        .take(1, "P1", part("+1555", "a", Some((1, 3, 1))))
        .is_none());
    assert!(inbox
        .take(3, "P3", part("+1555", "c", Some((1, 3, 3))))
        .is_none());
    tokio::time::advance(Duration::from_secs(599)).await;
    assert!(inbox.expired(Duration::from_secs(600)).is_empty());
    tokio::time::advance(Duration::from_secs(1)).await;
    let gone = inbox.expired(Duration::from_secs(600));
    assert_eq!(gone.len(), 1);
    assert_eq!(gone[0].text, "ac");
    assert_eq!(gone[0].incomplete, Some((2, 3)));
    assert_eq!(gone[0].indexes, vec![1, 3]);
}

#[test]
fn eight_bit_data_is_given_as_hex() {
    let mut inbox = Inbox::default();
    let mut p = part("+1555", "", None);
    p.user_data.body = Body::Data(vec![0x0B, 0x05]);
    let w = inbox.take(1, "X", p).unwrap();
    assert_eq!((w.text.as_str(), w.binary), ("0B05", true));
}
