//! The wire format, checked by a third Avro implementation: Python's
//! fastavro reads a record of every type smsflow writes, with the `.avsc`
//! file alone, and writes it again; the bytes are smsflow's to the last
//! one, and smsflow reads fastavro's record back to the same value
//! (tests/helpers/fastavro_reencode.py). With the unit test that compares
//! serde_avro_fast's bytes with apache-avro's (src/schema/mod.rs), three
//! libraries agree.

use std::io::Write;
use std::process::{Command, Stdio};

use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::Value;
use smsflow::message::*;
use smsflow::schema::{self, Codec};

mod common;

/// Whether smsflow reads these bytes as the sample's value.
type Same = Box<dyn Fn(&[u8]) -> bool>;

/// One record of a type: its schema file, its bytes, and a check that
/// smsflow reads `bytes` as the same value.
struct Sample {
    file: &'static str,
    bytes: Vec<u8>,
    same: Same,
}

fn sample<T>(file: &'static str, codec: &'static Codec<T>, value: T) -> Sample
where
    T: Serialize + DeserializeOwned + PartialEq + 'static,
{
    Sample {
        file,
        bytes: codec.encode(&value).unwrap(),
        same: Box::new(move |bytes| codec.decode(bytes).is_ok_and(|v| v == value)),
    }
}

fn samples() -> Vec<Sample> {
    let ada = Contact {
        id: new_id(),
        name: "Ada Nakato".into(),
        language: "lg".into(),
        connections: vec![
            Connection::new("kannel", "+256772123456"),
            Connection::new("twilio", "+256772123457"),
        ],
        groups: vec!["farmers".into(), "staff".into()],
        created_at: 1_700_000_000_000,
        modified_at: 1_700_000_000_001,
    };
    let mut inbound = InboundMessage::new(
        Connection::new("kannel", "+256772123456"),
        "register Ada — café ✓ 🌽",
    );
    inbound.external_id = Some("SM123".into());
    inbound.fields.insert("to".into(), "15000".into());
    let routed = RoutedMessage {
        message: inbound.clone(),
        app: "register".into(),
        route: "register".into(),
        rest: Some("Ada — café ✓ 🌽".into()),
        captures: [("name".to_owned(), "Ada".to_owned())].into(),
        contact: Some(ada.clone()),
    };
    let mut outbound = OutboundMessage::reply_to(&inbound, "Merci Ada, vous êtes inscrite.");
    outbound.app = Some("register".into());
    outbound.encoding = Some(Encoding::Ucs2);
    outbound.segments = 1;
    outbound.priority = Priority::High;
    let mut event = DeliveryEvent::now(&outbound, DeliveryStatus::Failed);
    event.error = Some("number unreachable".into());
    event.provider_status = Some("16".into());
    let log = LogEntry {
        message_id: outbound.id.clone(),
        direction: Direction::Out,
        connection: outbound.connection.clone(),
        contact_id: Some(ada.id.clone()),
        contact_name: ada.name.clone(),
        text: outbound.text.clone(),
        at: outbound.created_at,
        app: outbound.app.clone(),
        in_response_to: outbound.in_response_to.clone(),
    };
    let campaign = Campaign {
        id: "spring-2026".into(),
        name: "Spring".into(),
        backend: "twilio".into(),
        texts: [("en".to_owned(), "Hi {name}".to_owned())].into(),
        default_language: "en".into(),
        defaults: [("name".to_owned(), "friend".to_owned())].into(),
        audience: Audience {
            file: Some("list.csv".into()),
            groups: vec!["farmers".into()],
            region: Some("KE".into()),
            recipients: 1_000_000,
            chunks: 1000,
            segments: 1_000_200,
            cost: 7500.25,
        },
        start_at: Some(1_700_000_000_000),
        end_at: None,
        messages_per_second: Some(50.5),
        segments_per_second: None,
        daily_cap: Some(200_000),
        quiet_from: Some("21:00".into()),
        quiet_until: Some("08:00".into()),
        timezone: "Africa/Nairobi".into(),
        auto_pause_errors: 10,
        state: CampaignState::Running,
        state_reason: None,
        created_at: 1_700_000_000_000,
        updated_at: 1_700_000_000_002,
    };
    let chunk = AudienceChunk {
        campaign_id: campaign.id.clone(),
        index: 3,
        last: true,
        rows: (0..3)
            .map(|i| AudienceRow {
                line: i + 2,
                phone: format!("+25471234567{i}"),
                name: Some("Wanjiru".into()),
                language: (i == 0).then(|| "sw".into()),
                timezone: None,
                vars: [("city".to_owned(), "Nyeri".to_owned())].into(),
            })
            .collect(),
    };
    let mut stats = Stats::empty(
        StatsWindow::Hour,
        1_700_000_000_000,
        StatsDimension::Keyword,
        "register",
        "sms.events",
        2,
    );
    (stats.through_offset, stats.inbound, stats.delivered) = (41, 7, 5);
    for ms in [0, 4, 250, 90_000_000] {
        stats.accepted_to_sent.record(ms);
    }
    vec![
        sample("inbound_message.avsc", schema::inbound(), inbound),
        sample("routed_message.avsc", schema::routed(), routed),
        sample("outbound_message.avsc", schema::outbound(), outbound),
        sample("delivery_event.avsc", schema::event(), event),
        sample("contact.avsc", schema::contact(), ada),
        sample("log_entry.avsc", schema::log(), log),
        sample("campaign.avsc", schema::campaign(), campaign),
        sample("audience_chunk.avsc", schema::audience(), chunk),
        sample("stats.avsc", schema::stats(), stats),
    ]
}

#[test]
fn fastavro_reads_every_record_type_and_writes_the_same_bytes() {
    require_tools!(common::Tool::PythonKafka);
    let samples = samples();
    let mut child = Command::new(common::Tool::PythonKafka.path())
        .arg(common::root().join("tests/helpers/fastavro_reencode.py"))
        .arg(common::root().join("schemas"))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    for s in &samples {
        let ask = serde_json::json!({"schema": s.file, "record": hex(&s.bytes)});
        writeln!(stdin, "{ask}").unwrap();
    }
    drop(stdin);
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let answers: Vec<Value> = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(answers.len(), samples.len());
    for (s, a) in samples.iter().zip(&answers) {
        let again = unhex(a["again"].as_str().unwrap());
        assert_eq!(hex(&again), hex(&s.bytes), "{}: fastavro's bytes", s.file);
        assert!(
            (s.same)(&again),
            "{}: smsflow reads fastavro's record",
            s.file
        );
    }
    // What fastavro read, field by field, for a few.
    assert_eq!(answers[0]["value"]["text"], "register Ada — café ✓ 🌽");
    assert_eq!(
        answers[1]["value"]["contact"]["connections"][1]["backend"],
        "twilio"
    );
    assert_eq!(answers[3]["value"]["status"], "failed");
    assert_eq!(answers[6]["value"]["messages_per_second"], 50.5);
    assert_eq!(answers[8]["value"]["through_offset"], 41);
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn unhex(s: &str) -> Vec<u8> {
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}
