//! The modem's PDU codec (`smsflow::modem::pdu`) checked against two
//! independent Python implementations (issue 18), in one run of
//! tests/helpers/pdu_vectors.py:
//!
//! - python-gsmmodem-new's `encodeSmsSubmitPdu` writes the same SMS-SUBMITs
//!   as `submit`, byte for byte, `AT+CMGS` length included: GSM-7 with and
//!   without extension characters, BMP UCS-2, two-part texts with an 8-bit
//!   reference, with and without a status report asked for;
//! - smspdudecoder reads every SUBMIT `submit` writes (UCS-2 with emoji,
//!   parts cut at an escape or a surrogate pair) and research note 18's
//!   16-bit-reference SUBMITs as `decode` does: recipient, text, parts;
//! - smspdudecoder reads research note 18's DELIVERs (D1–D3) and the
//!   simulated modem's (`smsflow::modem::sim::pdus::deliver`) as `decode`
//!   does: sender, text, time, parts;
//! - gsmmodem's `decodeSmsPdu` reads the status reports S1, S2 and the
//!   simulated modem's as `decode` does: reference, recipient, status, times.
//!
//! Where a library is known to be wrong (research note 18, §2) the field is
//! not compared, and the library's bug is named there. Texts stay within
//! what gsmmodem encodes correctly: no '§' or '`' (its GSM-7 table has '`'
//! where '§' belongs), no emoji (its UCS-2 encoder has no surrogate pairs),
//! references up to 255 (it writes the reference to TP-MR too).

use std::collections::BTreeMap;
use std::io::Write as _;
use std::process::{Command, Stdio};
use std::sync::OnceLock;

use chrono::{DateTime, FixedOffset, TimeZone};
use serde_json::{json, Value};
use smsflow::modem::pdu::{self, Alphabet, DecodedSubmit, Deliver, Options, Pdu, StatusReport};
use smsflow::modem::sim::pdus;

mod common;

const SMSC: &str = "+256700000000";

/// Research note 18's vectors (§0), shared with the codec's unit tests; here
/// the ones `submit` cannot write: SUBMITs with a 16-bit reference,
/// DELIVERs and STATUS-REPORTs.
#[allow(dead_code)]
mod golden {
    include!(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/data/pdu_golden.rs"
    ));
}
use golden::{D1, D2, D3, S1, S2, TO, V3A_16, V3B_16};

const EXTENSION: &str = "Hello [€] {x} ~^|\\";

fn digits200() -> String {
    "0123456789".repeat(20)
}

/// A text sent with `submit` and with gsmmodem's `encodeSmsSubmitPdu`.
struct Send {
    name: String,
    to: &'static str,
    text: String,
    options: Options,
}

fn send(name: &str, text: &str, concat_ref: u8, status_report: bool) -> Send {
    let suffix = if status_report { "+report" } else { "" };
    Send {
        name: format!("{name}{suffix}"),
        to: TO,
        text: text.into(),
        options: Options {
            status_report,
            concat_ref,
        },
    }
}

/// What both encoders write.
fn both_encode() -> Vec<Send> {
    let mut cases = Vec::new();
    for report in [false, true] {
        let plain = "Hello, world! @£$¥ èéùìò ÄÖÑÜ¿ äöñüà ΔΦΓΛΩ _#%&*()<=>?";
        cases.push(send("gsm7", plain, 0, report));
        cases.push(send("extension", EXTENSION, 0, report));
        cases.push(send("ucs2", "Γειά σου κόσμε — Привет мир", 0, report));
        // Two parts: research note 18's V3 (153 + 47 septets, 1 fill bit).
        cases.push(send("digits200", &digits200(), 0x42, report));
        // 152 + 12 septets: the escape of '€' is not cut from its '€'.
        let boundary = format!("{}€{}", "a".repeat(152), "b".repeat(10));
        cases.push(send("escape_at_boundary", &boundary, 0x09, report));
        cases.push(send("ucs2_two_parts", &"ж".repeat(100), 0x07, report));
    }
    cases.push(send("digits200_ref0", &digits200(), 0, false));
    cases
}

/// What only `submit` writes (gsmmodem raises on emoji), for smspdudecoder.
fn only_submit_encodes() -> Vec<Send> {
    let mut national = send("national", "hi", 0, false);
    national.to = "0772123456";
    vec![
        send("emoji", "Hi 😀", 0, false),
        send("emoji_mixed", "Hi 😀 — ✓ жизнь 🎉", 0, true),
        send("emoji_three_parts", &"😀".repeat(100), 0x99, true),
        // The pair of '😀' goes to part 2 whole.
        send(
            "surrogate_at_boundary",
            &format!("{}😀{}", "a".repeat(66), "ж".repeat(150)),
            0xAB,
            false,
        ),
        national,
    ]
}

fn at(y: i32, mo: u32, d: u32, h: u32, mi: u32, s: u32, east: i32) -> DateTime<FixedOffset> {
    let zone = FixedOffset::east_opt(east).unwrap();
    zone.with_ymd_and_hms(y, mo, d, h, mi, s).unwrap()
}

/// A PDU for a decoder: `<text>/<part>` and the text its parts were
/// written from when this file wrote them, or a vector's name alone.
struct Written {
    name: String,
    hex: String,
    text: Option<String>,
}

fn vector(name: &str, hex: &str) -> Written {
    let (name, hex, text) = (name.into(), hex.into(), None);
    Written { name, hex, text }
}

fn parts(name: &str, hexes: Vec<String>, text: &str) -> Vec<Written> {
    let part = |(part, hex)| Written {
        name: format!("{name}/{part}"),
        hex,
        text: Some(text.into()),
    };
    (1..).zip(hexes).map(part).collect()
}

/// DELIVERs: research note 18's, then the simulated modem's.
fn delivers() -> Vec<Written> {
    let mut cases = vec![vector("D1", D1), vector("D2", D2), vector("D3", D3)];
    let sca = pdus::sca(SMSC);
    let east = at(2026, 7, 11, 21, 43, 5, 3 * 3600);
    let west = at(2026, 12, 31, 23, 59, 59, -5 * 3600);
    let long_emoji = "😀 Habari, ñ € ✓ ".repeat(12);
    let sims = [
        (
            "sim_extension",
            sca.as_str(),
            TO,
            EXTENSION.to_string(),
            0,
            east,
        ),
        (
            "sim_alphanumeric",
            "00",
            "Smsflow",
            "Price: 5€ {ok}".into(),
            0,
            east,
        ),
        ("sim_emoji_parts", sca.as_str(), TO, long_emoji, 0xC3, west),
        (
            "sim_national_digits",
            "00",
            "0772123456",
            digits200(),
            0x42,
            west,
        ),
    ];
    for (name, sca, from, text, reference, time) in sims {
        let hexes = pdus::deliver(sca, from, &text, reference, time).unwrap();
        cases.extend(parts(name, hexes, &text));
    }
    cases
}

/// STATUS-REPORTs: S1, S2, and the simulated modem's.
fn reports() -> Vec<Written> {
    let sent = at(2026, 7, 11, 21, 43, 5, 3 * 3600);
    let done = at(2026, 7, 12, 1, 2, 3, -5 * 3600 - 1800);
    let sca = pdus::sca(SMSC);
    let pending = pdus::status_report(&sca, 0xFF, TO, sent, done, 0x20);
    let failed = pdus::status_report("00", 0x00, "0772123456", sent, done, 0x65);
    vec![
        vector("S1", S1),
        vector("S2", S2),
        vector("sim_pending", &pending),
        vector("sim_failed", &failed),
    ]
}

/// The SUBMITs smspdudecoder reads: every part `submit` writes for every
/// text, then research note 18's with a 16-bit reference.
fn submitted() -> Vec<Written> {
    let mut cases = Vec::new();
    for case in both_encode().into_iter().chain(only_submit_encodes()) {
        let submits = pdu::submit(case.to, &case.text, case.options).unwrap();
        let hexes = submits.into_iter().map(|s| s.hex).collect();
        cases.extend(parts(&case.name, hexes, &case.text));
    }
    cases.push(vector("V3a-16", V3A_16));
    cases.push(vector("V3b-16", V3B_16));
    cases
}

/// The helper's answers to every case above, from one run shared by the
/// tests of this file.
fn answers() -> &'static Value {
    static ANSWERS: OnceLock<Value> = OnceLock::new();
    ANSWERS.get_or_init(|| {
        let named = |cases: Vec<Written>| -> Vec<Value> {
            let cases = cases.iter();
            cases
                .map(|c| json!({"name": c.name, "hex": c.hex}))
                .collect()
        };
        let submit: Vec<Value> = both_encode()
            .iter()
            .map(|c| {
                json!({"name": c.name, "to": c.to, "text": c.text,
                       "reference": c.options.concat_ref,
                       "status_report": c.options.status_report})
            })
            .collect();
        let request = json!({
            "submit": submit,
            "outgoing": named(submitted()),
            "incoming": named(delivers()),
            "reports": named(reports()),
        });
        run_helper(&request)
    })
}

fn run_helper(request: &Value) -> Value {
    let mut child = Command::new(common::Tool::PythonPdu.path())
        .arg(common::root().join("tests/helpers/pdu_vectors.py"))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    stdin.write_all(request.to_string().as_bytes()).unwrap();
    drop(stdin);
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "pdu_vectors.py failed:\n{stderr}");
    serde_json::from_slice(&out.stdout).unwrap()
}

/// The library's answer for case `name` of `section`; fails the test,
/// naming the case, if the library raised.
fn answer(section: &str, name: &str) -> &'static Value {
    let found = &answers()[section][name];
    if let Some(error) = found.get("error") {
        panic!("{section} {name}: the Python library raised {error}");
    }
    assert!(found["ok"] != Value::Null, "{section} {name}: no answer");
    &found["ok"]
}

fn decode_submit(hex: &str) -> DecodedSubmit {
    match pdu::decode(hex).unwrap() {
        Pdu::Submit(s) => s,
        other => panic!("not a SUBMIT: {other:?}"),
    }
}

fn decode_deliver(hex: &str) -> Deliver {
    match pdu::decode(hex).unwrap() {
        Pdu::Deliver(d) => d,
        other => panic!("not a DELIVER: {other:?}"),
    }
}

fn decode_report(hex: &str) -> StatusReport {
    match pdu::decode(hex).unwrap() {
        Pdu::StatusReport(s) => s,
        other => panic!("not a STATUS-REPORT: {other:?}"),
    }
}

fn encoding(alphabet: Alphabet) -> &'static str {
    match alphabet {
        Alphabet::Gsm7 => "gsm",
        Alphabet::Ucs2 => "ucs2",
        Alphabet::EightBit => "binary",
    }
}

/// smspdudecoder's concatenation element for `decode`'s `Concat`: 8-bit
/// (IEI 0) as `submit` and the simulated modem write it, 16-bit (IEI 8)
/// in the vectors that have one (D2, V3-16), each with a reference over 255.
fn concat_json(concat: Option<pdu::Concat>) -> Value {
    match concat {
        None => Value::Null,
        Some(c) => json!({
            "iei": if c.reference > 0xFF { 8 } else { 0 },
            "reference": c.reference, "parts": c.total, "part": c.seq,
        }),
    }
}

/// The texts smspdudecoder read from each written text's parts (cases
/// `<text>/<part>`), joined: the text written, whole.
fn check_joined(section: &str, cases: &[Written]) {
    let mut texts: BTreeMap<&str, (String, &str)> = BTreeMap::new();
    for case in cases {
        let (Some(text), Some((group, _))) = (&case.text, case.name.split_once('/')) else {
            continue;
        };
        let part = answer(section, &case.name)["text"].as_str().unwrap();
        let joined = texts.entry(group).or_insert((String::new(), text));
        joined.0.push_str(part);
    }
    for (group, (joined, text)) in texts {
        assert_eq!(joined, text, "{group}: smspdudecoder's parts, joined");
    }
}

fn text_of(user_data: &pdu::UserData) -> &str {
    user_data.text().expect("a text, not 8-bit data")
}

#[test]
fn gsmmodem_encodes_the_same_submits_byte_for_byte() {
    require_tools!(common::Tool::PythonPdu);
    for case in both_encode() {
        let ours = pdu::submit(case.to, &case.text, case.options).unwrap();
        let theirs = answer("submit", &case.name).as_array().unwrap();
        assert_eq!(ours.len(), theirs.len(), "{}: parts", case.name);
        for (i, (ours, theirs)) in ours.iter().zip(theirs).enumerate() {
            let name = format!("{} part {}", case.name, i + 1);
            let hex = theirs["hex"].as_str().unwrap();
            // TP-MR, the octet after the SCA (00) and the first octet:
            // gsmmodem writes its `reference` there as well as in the
            // concatenation header; `submit` writes 0, as the modem numbers
            // each message itself (`+CMGS: <mr>`).
            let reference = format!("{:02X}", case.options.concat_ref);
            assert_eq!(&hex[..2], "00", "{name}: gsmmodem's SCA (smsc=None)");
            assert_eq!(&hex[4..6], reference, "{name}: gsmmodem's TP-MR");
            let expected = format!("{}00{}", &hex[..4], &hex[6..]);
            assert_eq!(ours.hex, expected, "{name}: gsmmodem's PDU (TP-MR 0)");
            // gsmmodem's tpduLength is right with smsc=None only (it is
            // len - 1 whatever the SCA's length): the only way it is used.
            assert_eq!(
                theirs["tpdu_length"], ours.tpdu_len,
                "{name}: AT+CMGS length"
            );
        }
    }
}

#[test]
fn smspdudecoder_reads_every_submit_as_sent() {
    require_tools!(common::Tool::PythonPdu);
    let cases = submitted();
    for Written { name, hex, .. } in &cases {
        let ours = decode_submit(hex);
        let theirs = answer("outgoing", name);
        assert_eq!(theirs["recipient"], ours.destination, "{name}: recipient");
        assert_eq!(theirs["text"], text_of(&ours.user_data), "{name}: text");
        let concat = concat_json(ours.user_data.concat);
        assert_eq!(theirs["concat"], concat, "{name}: concatenation");
        assert_eq!(theirs["message_ref"], ours.message_reference, "{name}");
        assert_eq!(theirs["status_report"], ours.status_report, "{name}");
        let alphabet = encoding(ours.user_data.alphabet);
        assert_eq!(theirs["encoding"], alphabet, "{name}: alphabet");
    }
    check_joined("outgoing", &cases);
    // The vectors' own values, not only agreement.
    let first = answer("outgoing", "V3a-16");
    assert_eq!(first["text"], &digits200()[..152]);
    assert_eq!(
        first["concat"],
        json!({"iei": 8, "reference": 0x1234, "parts": 2, "part": 1})
    );
    assert_eq!(answer("outgoing", "emoji/1")["text"], "Hi 😀");
    assert_eq!(answer("outgoing", "national/1")["recipient"], "0772123456");
}

#[test]
fn smspdudecoder_reads_delivers_as_decode_does() {
    require_tools!(common::Tool::PythonPdu);
    let cases = delivers();
    for Written { name, hex, .. } in &cases {
        let ours = decode_deliver(hex);
        let theirs = answer("incoming", name);
        // smspdudecoder ignores an alphanumeric address's semi-octet count
        // and reads its padding as one more septet ("Smsflow@"): research
        // note 18, §2. Numbers only.
        if !name.contains("alphanumeric") && name.as_str() != "D2" {
            assert_eq!(theirs["sender"], ours.originator, "{name}: sender");
        }
        let text = text_of(&ours.user_data);
        assert_eq!(theirs["text"], text, "{name}: text");
        // smspdudecoder gives the time in UTC: the same instant.
        let date = DateTime::parse_from_rfc3339(theirs["date"].as_str().unwrap()).unwrap();
        assert_eq!(date, ours.timestamp, "{name}: TP-SCTS");
        let concat = ours.user_data.concat;
        assert_eq!(theirs["concat"], concat_json(concat), "{name}");
        // read_incoming_sms's summary: reference "<ref>-<total>".
        let partial = match concat {
            None => json!(false),
            Some(c) => json!({"reference": format!("{}-{}", c.reference, c.total),
                              "parts_count": c.total, "part_number": c.seq}),
        };
        assert_eq!(theirs["partial"], partial, "{name}: partial");
        let alphabet = encoding(ours.user_data.alphabet);
        assert_eq!(theirs["encoding"], alphabet, "{name}: alphabet");
    }
    check_joined("incoming", &cases);
    let d2 = answer("incoming", "D2");
    assert_eq!(d2["text"], "Price: 5€ {ok}");
    assert_eq!(d2["partial"]["reference"], "48879-3");
    assert_eq!(answer("incoming", "D3")["text"], "Hi 😀");
    assert_eq!(answer("incoming", "D1")["sender"], "+31641600986");
}

#[test]
fn gsmmodem_reads_status_reports_as_decode_does() {
    require_tools!(common::Tool::PythonPdu);
    for Written { name, hex, .. } in reports() {
        let ours = decode_report(&hex);
        let theirs = answer("reports", &name);
        assert_eq!(theirs["type"], "SMS-STATUS-REPORT", "{name}");
        assert_eq!(theirs["reference"], ours.message_reference, "{name}: TP-MR");
        assert_eq!(theirs["number"], ours.recipient, "{name}: TP-RA");
        assert_eq!(theirs["status"], ours.status_octet, "{name}: TP-ST");
        // Offsets kept: the service centre's local times, as written.
        let time = ours.timestamp.to_rfc3339();
        assert_eq!(theirs["time"], time, "{name}: TP-SCTS");
        let discharge = ours.discharge_time.to_rfc3339();
        assert_eq!(theirs["discharge"], discharge, "{name}: TP-DT");
        let tpdu = pdus::tpdu_len(&hex).unwrap();
        assert_eq!(theirs["tpdu_length"], tpdu, "{name}: TPDU octets");
    }
    let s2 = answer("reports", "S2");
    assert_eq!(
        (&s2["reference"], &s2["status"]),
        (&json!(0x43), &json!(0x46))
    );
    assert_eq!(answer("reports", "sim_pending")["reference"], 0xFF);
}
