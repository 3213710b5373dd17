//! The real-Kannel harness (tests/common/kannel/) against Kannel 1.4.5
//! alone, without smsflow: fakesmsc → bearerbox → smsbox → a trivial echo
//! application → sendsms → bearerbox → fakesmsc.

mod common;

use std::time::{Duration, Instant};

use common::kannel::{self, reassemble, EchoApp, Kannel, Mo, MtKind};

const PHONE: &str = "255700000001";
const SHORTCODE: &str = "15000";

#[test]
fn echoes_come_back_exactly_with_their_delivery_reports() {
    require_tools!(
        common::Tool::Bearerbox,
        common::Tool::Smsbox,
        common::Tool::Fakesmsc
    );
    let app = EchoApp::start(true, 8);
    let k = Kannel::start(&app.get_url());
    app.connect(&k);

    let long: String = (0..80)
        .map(|i| format!("w{:03} ", i % 1000))
        .collect::<String>()[..400]
        .to_string();
    assert_eq!(long.chars().count(), 400);
    let cases = [
        // UCS-2 MO (recoded to UTF-8 for the app); echoed with coding=2.
        (
            Mo::ucs2(PHONE, SHORTCODE, "Habari, ñ € 😀"),
            "Habari, ñ € 😀",
            MtKind::Ucs2,
            1,
        ),
        (
            Mo::text(PHONE, SHORTCODE, "two  spaces,   three and    four"),
            "two  spaces,   three and    four",
            MtKind::Text,
            1,
        ),
        // 400 GSM characters: 3 concatenated parts (153 + 153 + 94).
        (
            Mo::text(PHONE, SHORTCODE, &long),
            long.as_str(),
            MtKind::Udh,
            3,
        ),
    ];

    for (i, (mo, text, kind, parts)) in cases.iter().enumerate() {
        let mts = k.exchange(
            mo,
            |mts| !reassemble(mts).is_empty(),
            Duration::from_secs(30),
        );
        let sms = reassemble(&mts);
        assert_eq!(sms.len(), 1, "case {i}: {mts:#?}");
        let sms = &sms[0];
        assert_eq!(sms.sender, SHORTCODE, "case {i}");
        assert_eq!(sms.receiver, PHONE, "case {i}");
        assert_eq!(sms.kind, *kind, "case {i}: {mts:#?}");
        assert_eq!(sms.parts, *parts, "case {i}: {mts:#?}");
        assert_eq!(sms.text(), *text, "case {i}: {mts:#?}");
        // What the app got from smsbox: the exact text, as UTF-8.
        let mo_req = &app.mos()[i];
        assert_eq!(mo_req.text(), *text, "case {i}: {}", mo_req.uri);
        assert_eq!(mo_req.get("from"), PHONE);
        assert_eq!(mo_req.get("to"), SHORTCODE);
        assert_eq!(mo_req.get("coding"), "0");
        assert_eq!(mo_req.get("charset"), "UTF-8");
        assert_eq!(mo_req.get("smsc"), kannel::SMSC_ID);
        assert_eq!(mo_req.get("service"), "default");
    }

    let echoes = app.echoes();
    assert_eq!(echoes.len(), cases.len(), "{echoes:#?}");
    for e in &echoes {
        assert_eq!(
            (e.status, e.body.as_str()),
            (202, "0: Accepted for delivery"),
            "{e:?}"
        );
    }
    assert_eq!(echoes.iter().find(|e| e.reference == 1).unwrap().coding, 2);

    // Each echo, even the 3-part one, gets one DLR 8 (SMSC ack) and one
    // DLR 1 (delivered), in either order.
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let dlrs = app.dlrs();
        let complete = (1..=cases.len() as u64).all(|r| {
            [1, 8]
                .iter()
                .all(|s| dlrs.iter().any(|d| d.reference == r && d.status == *s))
        });
        if complete {
            assert_eq!(dlrs.len(), 2 * cases.len(), "{dlrs:#?}");
            break;
        }
        if Instant::now() > deadline {
            k.dump_logs();
            panic!("missing DLRs: {dlrs:#?}");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn sendsms_to_a_receiving_phone_and_the_mt_format() {
    require_tools!(
        common::Tool::Bearerbox,
        common::Tool::Smsbox,
        common::Tool::Fakesmsc
    );
    let app = EchoApp::start(false, 1);
    let k = Kannel::start(&app.get_url());
    let phone = k.phone();
    let send = |params: &[(&str, &str)]| {
        let mut all = vec![("from", SHORTCODE), ("to", PHONE), ("charset", "UTF-8")];
        all.extend_from_slice(params);
        assert_eq!(
            k.sendsms(&all),
            (202, "0: Accepted for delivery".to_string())
        );
    };
    let emoji8 = "Habari, ñ € 😀 ".repeat(8);
    send(&[("text", "<a> % + 100%")]);
    send(&[("text", &emoji8), ("coding", "2")]);
    send(&[("text", &"€".repeat(100))]);
    send(&[("text", "line one\nline two")]);
    let mts = phone
        .wait_for(|m| reassemble(m).len() >= 4, Duration::from_secs(20))
        .unwrap_or_else(|m| panic!("{m:#?}\n{}", k.logs()));
    let summary = phone.stop();
    assert!(summary.clean, "{}", summary.output);
    assert_eq!(
        summary.received,
        Some(mts.len() as u64 + 1),
        "newline: two lines"
    );
    let sms = reassemble(&mts);
    let texts: Vec<String> = sms.iter().map(|s| s.text()).collect();
    assert_eq!(
        texts,
        [
            "<a> % + 100%",
            &emoji8,
            &"€".repeat(100),
            "line one\nline two"
        ]
    );
    assert_eq!(sms[1].parts, 2);
    assert_eq!(sms[2].parts, 2);
    assert_eq!(sms[3].kind, MtKind::Text);
}

#[test]
fn ceiling_round_trip_brings_every_message_back() {
    require_tools!(
        common::Tool::Bearerbox,
        common::Tool::Smsbox,
        common::Tool::Fakesmsc
    );
    let n = 200;
    let rt = kannel::ceiling_round_trip(n);
    assert_eq!(rt.received, n, "{rt:?}");
    assert_eq!(rt.sent, n, "{rt:?}");
    eprintln!(
        "Kannel ceiling: {n} round trips in {:.2} s = {:.1} msgs/s (fakesmsc: {:?} s, {:?} msgs/s first to last received)",
        rt.elapsed.as_secs_f64(),
        rt.rate,
        rt.fakesmsc_seconds,
        rt.fakesmsc_rate
    );
}
