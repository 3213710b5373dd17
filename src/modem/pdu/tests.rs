//! The codec against golden vectors (research note 18: an independent
//! reference encoder written from 23.038/23.040, which agrees with gammu
//! and python-gsmmodem where they overlap), round trips, the part count of
//! `crate::sms::analyze`, and malformed input.

use super::*;
use crate::sms::analyze;

// TO, V1 … S2: the golden vectors, shared with tests/modem_pdu_python.rs.
include!(concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/data/pdu_golden.rs"
));

const GOLDEN: [&str; 13] = [
    V1, V1S, V2, V3A, V3B, V3A_MR42, V3A_16, V3B_16, D1, D2, D3, S1, S2,
];

fn digits200() -> String {
    "0123456789".repeat(20)
}

fn send(text: &str, options: Options) -> Vec<Submit> {
    submit(TO, text, options).unwrap()
}

fn deliver(hex: &str) -> Deliver {
    match decode(hex).unwrap() {
        Pdu::Deliver(d) => d,
        other => panic!("not a DELIVER: {other:?}"),
    }
}

fn decoded_submit(hex: &str) -> DecodedSubmit {
    match decode(hex).unwrap() {
        Pdu::Submit(s) => s,
        other => panic!("not a SUBMIT: {other:?}"),
    }
}

fn status_report(hex: &str) -> StatusReport {
    match decode(hex).unwrap() {
        Pdu::StatusReport(s) => s,
        other => panic!("not a STATUS-REPORT: {other:?}"),
    }
}

fn part(reference: u16, total: u8, seq: u8) -> Option<Concat> {
    Some(Concat {
        reference,
        total,
        seq,
    })
}

fn pdu(hex: &str, tpdu_len: usize) -> Submit {
    let hex = hex.to_owned();
    Submit { hex, tpdu_len }
}

fn time(rfc3339: &str) -> DateTime<FixedOffset> {
    DateTime::parse_from_rfc3339(rfc3339).unwrap()
}

/// The text `submit` sent, read back part by part and joined.
fn round_trip(text: &str) -> String {
    let options = Options {
        status_report: false,
        concat_ref: 7,
    };
    let parts = send(text, options);
    let mut joined = String::new();
    for (seq, submitted) in (1..).zip(&parts) {
        let sent = decoded_submit(&submitted.hex);
        assert_eq!(sent.destination, TO);
        assert_eq!(submitted.hex.len(), 2 + submitted.tpdu_len * 2);
        let expected = part(7, parts.len() as u8, seq).filter(|_| parts.len() > 1);
        assert_eq!(sent.user_data.concat, expected, "{text:?}");
        joined.push_str(sent.user_data.text().unwrap());
    }
    joined
}

#[test]
fn golden_single_part_submits() {
    let plain = Options::default();
    assert_eq!(send("Hello [€]", plain), [pdu(V1, 24)]);
    let report = Options {
        status_report: true,
        ..plain
    };
    assert_eq!(send("Hello [€]", report), [pdu(V1S, 24)]);
    assert_eq!(send("Hi 😀", plain), [pdu(V2, 23)]);
}

#[test]
fn golden_v3_two_gsm7_parts_with_an_8_bit_reference() {
    let options = Options {
        status_report: true,
        concat_ref: 0x42,
    };
    let parts = send(&digits200(), options);
    assert_eq!(parts, [pdu(V3A, 153), pdu(V3B, 61)]);
    // The note's V3a differs only in TP-MR, which decodes.
    let sent = decoded_submit(V3A_MR42);
    assert_eq!(sent.message_reference, 0x42);
    assert!(sent.status_report);
    assert_eq!(sent.user_data.text(), Some(&digits200()[..153]));
    assert_eq!(sent.user_data.concat, part(0x42, 2, 1));
}

#[test]
fn golden_v3_16_bit_reference_submit_decodes() {
    // A 7-octet header: 0 fill bits, 152 septets in part 1.
    let first = decoded_submit(V3A_16);
    assert_eq!(first.message_reference, 0);
    assert_eq!(first.destination, TO);
    assert_eq!(first.user_data.text(), Some(&digits200()[..152]));
    assert_eq!(first.user_data.concat, part(0x1234, 2, 1));
    let second = decoded_submit(V3B_16);
    assert_eq!(second.user_data.text(), Some(&digits200()[152..]));
    assert_eq!(second.user_data.concat.map(|c| c.seq), Some(2));
}

#[test]
fn golden_d1_deliver_with_a_service_centre_address() {
    let d = deliver(D1);
    assert_eq!(d.originator, "+31641600986");
    assert_eq!(d.protocol_id, 0);
    // Time zone octet 0x08: sign bit set, zero quarter-hours.
    assert_eq!(d.timestamp, time("2002-08-26T19:37:41+00:00"));
    assert_eq!(d.user_data.alphabet, Alphabet::Gsm7);
    assert_eq!(d.user_data.concat, None);
    assert_eq!(d.user_data.text(), Some("How are you?"));
}

#[test]
fn golden_d2_alphanumeric_sender_and_16_bit_reference() {
    let d = deliver(D2);
    assert_eq!(d.originator, "Smsflow");
    assert_eq!(d.timestamp.to_rfc3339(), "2026-07-11T21:43:05+00:00");
    assert_eq!(d.user_data.concat, part(0xBEEF, 3, 2));
    assert_eq!(d.user_data.text(), Some("Price: 5€ {ok}"));
}

#[test]
fn golden_d3_ucs2_part_with_an_emoji() {
    let d = deliver(D3);
    assert_eq!(d.originator, TO);
    assert_eq!(d.user_data.alphabet, Alphabet::Ucs2);
    assert_eq!(d.user_data.concat, part(0x42, 2, 1));
    assert_eq!(d.user_data.text(), Some("Hi 😀"));
}

#[test]
fn golden_status_reports() {
    let s1 = status_report(S1);
    assert_eq!(s1.message_reference, 0x42);
    assert_eq!(s1.recipient, TO);
    assert_eq!(s1.timestamp, time("2026-07-11T21:43:05+00:00"));
    assert_eq!(s1.discharge_time, time("2026-07-11T21:53:00+00:00"));
    assert_eq!((s1.status, s1.status_octet), (Status::Delivered, 0x00));
    assert_eq!((s1.protocol_id, s1.user_data), (None, None));
    let s2 = status_report(S2);
    assert_eq!(s2.message_reference, 0x43);
    // 0x46: validity period expired.
    assert_eq!((s2.status, s2.status_octet), (Status::Failed, 0x46));
    assert_eq!((s2.protocol_id, s2.user_data), (None, None));
}

#[test]
fn status_report_optional_fields_follow_tp_pi() {
    // TP-PI 0x07: TP-PID 0x00, TP-DCS 0x00, TP-UDL 2, "Hi" in GSM-7.
    let report = status_report(&format!("{S1}07000002C834"));
    assert_eq!(report.protocol_id, Some(0));
    assert_eq!(report.user_data.unwrap().text(), Some("Hi"));
    // TP-PI announces TP-PID, which is missing.
    let error = decode(&format!("{S1}01")).unwrap_err();
    assert!(
        matches!(
            error,
            PduError::Truncated {
                field: "TP-PID",
                ..
            }
        ),
        "{error}"
    );
}

#[test]
fn status_octets_map_to_their_outcome() {
    let delivered = [0x00, 0x01, 0x02, 0x1F];
    let pending = [0x20, 0x21, 0x3F];
    let failed = [0x40, 0x46, 0x5F, 0x60, 0x65, 0x7F, 0x80, 0xFF];
    assert!(delivered
        .iter()
        .all(|&o| Status::of(o) == Status::Delivered));
    assert!(pending.iter().all(|&o| Status::of(o) == Status::Pending));
    assert!(failed.iter().all(|&o| Status::of(o) == Status::Failed));
}

#[test]
fn round_trips_gsm7_ucs2_and_long_texts() {
    let texts = [
        String::new(),
        "Hello [€] {~} ^|\\ \u{C} @£$¥ ΔΦ ÄÖÑÜ§¿ äöñüà".into(),
        "Hi 😀 — ✓ жизнь 🎉".into(),
        digits200(),
        "€".repeat(200),
        "😀".repeat(100),
        format!("{}€{}", "a".repeat(152), "b".repeat(300)),
        format!("{}😀{}", "a".repeat(66), "ж".repeat(150)),
    ];
    for text in texts {
        assert_eq!(round_trip(&text), text);
    }
}

#[test]
fn parts_never_split_an_escape_or_a_surrogate_pair() {
    let text = format!("{}€{}", "a".repeat(152), "b".repeat(10));
    let parts = send(&text, Options::default());
    assert_eq!(parts.len(), 2);
    assert_eq!(
        decoded_submit(&parts[0].hex).user_data.text(),
        Some(&"a".repeat(152)[..])
    );
    let text = format!("{}😀{}", "a".repeat(66), "b".repeat(10));
    let parts = send(&text, Options::default());
    assert_eq!(parts.len(), 2);
    assert_eq!(
        decoded_submit(&parts[0].hex).user_data.text(),
        Some(&"a".repeat(66)[..])
    );
    assert_eq!(
        decoded_submit(&parts[1].hex).user_data.text(),
        Some(&text[66..])
    );
}

/// A fixed pseudo-random sequence (xorshift), so failures repeat.
fn xorshift(seed: u64) -> impl FnMut(usize) -> usize {
    let mut x = seed;
    move |n| {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        (x % n as u64) as usize
    }
}

#[test]
fn part_counts_agree_with_analyze() {
    let mut texts: Vec<String> = Vec::new();
    for (c, around) in [
        ('a', [152, 153, 159, 160, 161, 306, 307]),
        ('ж', [66, 67, 69, 70, 71, 134, 135]),
    ] {
        for n in around {
            texts.push(c.to_string().repeat(n));
        }
    }
    for (head, odd) in [
        (152, "€"),
        (153, "€"),
        (159, "€"),
        (66, "😀"),
        (69, "😀"),
        (133, "😀"),
    ] {
        let filler = if odd == "€" { "a" } else { "ж" };
        for tail in [0, 1, 10, 152] {
            texts.push(format!(
                "{}{odd}{}",
                filler.repeat(head),
                filler.repeat(tail)
            ));
        }
    }
    let pool: Vec<char> = "aZ9 @£€{}[]^~|\\\n\rΔΩçÇ✓ж😀🎉\u{C}".chars().collect();
    let mut next = xorshift(0x9E37_79B9_7F4A_7C15);
    for _ in 0..1500 {
        let len = next(700);
        let text: String = (0..len)
            .map(|_| {
                if next(150) == 0 {
                    pool[next(pool.len())]
                } else {
                    pool[next(14)]
                }
            })
            .collect();
        texts.push(text);
    }
    for text in &texts {
        let parts = send(text, Options::default());
        assert_eq!(parts.len(), analyze(text).1 as usize, "{text:?}");
        for part in &parts {
            let sent = decoded_submit(&part.hex);
            let limit = match sent.user_data.alphabet {
                Alphabet::Gsm7 => GSM7_SINGLE,
                _ => UCS2_SINGLE,
            };
            assert!(sent.user_data.text().unwrap().chars().count() <= limit);
            assert!(part.tpdu_len <= 2 + 12 + 3 + 140);
        }
        assert_eq!(&round_trip(text), text);
    }
}

#[test]
fn destinations_are_checked() {
    let national = submit("0772123456", "hi", Options::default()).unwrap();
    assert!(national[0].hex.starts_with("0001000A817027214365"));
    assert_eq!(decoded_submit(&national[0].hex).destination, "0772123456");
    let short = submit("12345", "hi", Options::default()).unwrap();
    assert!(short[0].hex.starts_with("00010005812143F5"));
    for bad in [
        "",
        "+",
        "+25677 212",
        "07-72",
        "abc",
        "+2567721234567890123456",
    ] {
        let error = submit(bad, "hi", Options::default()).unwrap_err();
        assert_eq!(error, PduError::InvalidDestination(bad.into()));
        assert!(error.to_string().contains(&format!("{bad:?}")), "{error}");
    }
}

#[test]
fn at_most_255_parts() {
    assert_eq!(send(&"a".repeat(153 * 255), Options::default()).len(), 255);
    let error = submit(TO, &"a".repeat(153 * 255 + 1), Options::default()).unwrap_err();
    assert_eq!(error, PduError::TooManyParts(256));
}

/// A DELIVER from "123": SCA, first octet, TP-OA, TP-PID, then `rest`
/// (TP-DCS, TP-SCTS, TP-UDL, TP-UD).
fn deliver_hex(first: &str, rest: &str) -> String {
    format!("00{first}039121F300{rest}")
}

const SCTS: &str = "62701112345000";

#[test]
fn errors_name_what_was_wrong_and_where() {
    let message = |hex: &str| decode(hex).unwrap_err().to_string();
    assert_eq!(
        message("00 01"),
        "bad hex at character 2: ' ' is not a hex digit"
    );
    assert_eq!(
        message("0G"),
        "bad hex at character 1: 'G' is not a hex digit"
    );
    assert!(message("001").contains("odd number"));
    assert_eq!(
        message("0001000C91527627"),
        "truncated PDU: TP-DA at octet 5 needs 6 octet(s), 3 left"
    );
    assert_eq!(
        message(""),
        "truncated PDU: SCA length at octet 0 needs 1 octet(s), 0 left"
    );
    assert!(message("0003").contains("TP-MTI 3"));
    assert!(message(&deliver_hex("00", &format!("24{SCTS}00"))).contains("0x24"));
    // TP-UDHI set, a 9-octet header in 3 octets of user data.
    let short_header = deliver_hex("40", &format!("08{SCTS}03090000"));
    assert!(
        message(&short_header).contains("header of 9 octets"),
        "{}",
        message(&short_header)
    );
    let month_13 = deliver_hex("00", "00623101123450000000");
    let expected = "bad TP-SCTS at octet 8: 62310112345000 is no date and time";
    assert_eq!(message(&month_13), expected);
    let not_decimal = deliver_hex("00", "0062F101123450000000");
    assert!(message(&not_decimal).contains(": 62F10112345000 is no date"));
}

#[test]
fn data_coding_schemes_by_group() {
    assert_eq!(alphabet(0x00), Ok(Alphabet::Gsm7));
    assert_eq!(alphabet(0x11), Ok(Alphabet::Gsm7));
    assert_eq!(alphabet(0x04), Ok(Alphabet::EightBit));
    assert_eq!(alphabet(0x19), Ok(Alphabet::Ucs2));
    assert_eq!(alphabet(0x4C), Ok(Alphabet::Gsm7));
    assert_eq!(alphabet(0xC8), Ok(Alphabet::Gsm7));
    assert_eq!(alphabet(0xE0), Ok(Alphabet::Ucs2));
    assert_eq!(alphabet(0xF0), Ok(Alphabet::Gsm7));
    assert_eq!(alphabet(0xF5), Ok(Alphabet::EightBit));
    assert_eq!(alphabet(0x20), Err(PduError::UnsupportedDcs(0x20)));
    assert_eq!(alphabet(0x90), Err(PduError::UnsupportedDcs(0x90)));
    // An 8-bit DELIVER keeps its octets.
    let d = deliver(&deliver_hex("00", &format!("F4{SCTS}030102FF")));
    assert_eq!(d.user_data.body, Body::Data(vec![0x01, 0x02, 0xFF]));
    assert_eq!(d.user_data.text(), None);
}

#[test]
fn headers_skip_unknown_elements_and_ignore_impossible_parts() {
    // A port element (0x05), then an 8-bit concatenation; UCS-2 "A".
    let with_header = |header: &str| {
        let length = header.len() / 2 + 2;
        deliver_hex("40", &format!("08{SCTS}{length:02X}{header}0041"))
    };
    let d = deliver(&with_header("0B0504000000000003090302"));
    assert_eq!(d.user_data.concat, part(9, 3, 2));
    assert_eq!(d.user_data.text(), Some("A"));
    // Part 3 of 2, part 0: 23.040 has the element ignored.
    for impossible in ["050003090203", "050003090200"] {
        let d = deliver(&with_header(impossible));
        assert_eq!(d.user_data.concat, None);
        assert_eq!(d.user_data.text(), Some("A"));
    }
    // A concatenation element of the wrong size, an element past the end.
    for bad in ["0400020903", "03000309"] {
        let error = decode(&with_header(bad)).unwrap_err();
        assert!(matches!(error, PduError::BadUdh { at: 16, .. }), "{error}");
    }
}

#[test]
fn broken_utf16_reads_as_replacement_characters() {
    // A lone high surrogate, 'A', a lone low surrogate, an odd last octet.
    let d = deliver(&deliver_hex("00", &format!("08{SCTS}07D8000041DC0000")));
    assert_eq!(d.user_data.text(), Some("\u{FFFD}A\u{FFFD}\u{FFFD}"));
    // A high surrogate at the very end.
    let d = deliver(&deliver_hex("00", &format!("08{SCTS}040041D83D")));
    assert_eq!(d.user_data.text(), Some("A\u{FFFD}"));
}

#[test]
fn hex_may_be_lower_case_with_a_line_ending() {
    let d = deliver(&format!("{}\r\n", D1.to_lowercase()));
    assert_eq!(d.user_data.text(), Some("How are you?"));
    assert_eq!(d.originator, "+31641600986");
}

#[test]
fn addresses_of_every_kind() {
    // National (type of number 2), 10 digits.
    let d = deliver(&format!("00000AA170272143650000{SCTS}00"));
    assert_eq!(d.originator, "0772123456");
    // '*', '#', '1', 'c' (nibbles A, B, 1, E), unknown type of number.
    let d = deliver(&format!("00000481BAE10000{SCTS}00"));
    assert_eq!(d.originator, "*#1c");
}

#[test]
fn no_input_makes_decode_panic() {
    for hex in GOLDEN {
        for end in 0..=hex.len() {
            let _ = decode(&hex[..end]);
        }
        // Every octet of every vector replaced by a few values.
        let octets = from_hex(hex).unwrap();
        for at in 0..octets.len() {
            for value in [0x00, 0x07, 0x40, 0x7F, 0x80, 0xFF] {
                let mut changed = octets.clone();
                changed[at] = value;
                let _ = decode(&to_hex(&changed));
            }
        }
    }
    let mut next = xorshift(0x2545_F491_4F6C_DD1D);
    for _ in 0..20_000 {
        let len = next(180);
        let octets: Vec<u8> = (0..len).map(|_| next(256) as u8).collect();
        let _ = decode(&to_hex(&octets));
    }
}
