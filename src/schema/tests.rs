//! The codecs' unit tests.
use super::*;
use crate::message::*;

fn sample_inbound() -> InboundMessage {
    let mut m = InboundMessage::new(
        Connection::new("message_tester", "+15551234"),
        "echo héllo ✓",
    );
    m.external_id = Some("SM123".into());
    m.fields.insert("to".into(), "+1800".into());
    m
}

fn sample_contact() -> Contact {
    Contact {
        id: new_id(),
        name: "Ada".into(),
        language: "fr".into(),
        connections: vec![Connection::new("kannel", "+2567")],
        groups: vec!["staff".into()],
        created_at: 1,
        modified_at: 2,
    }
}

#[test]
fn every_schema_parses() {
    for (file, json) in SCHEMA_FILES {
        Schema::parse_str(json).unwrap_or_else(|e| panic!("{file}: {e}"));
    }
}

#[test]
fn schema_files_on_disk_are_the_compiled_ones() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("schemas");
    let mut on_disk: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|f| f.ends_with(".avsc"))
        .collect();
    on_disk.sort();
    let mut compiled: Vec<_> = SCHEMA_FILES.iter().map(|(f, _)| f.to_string()).collect();
    compiled.sort();
    assert_eq!(on_disk, compiled, "every .avsc must be compiled in");
}

#[test]
fn inlined_records_match_their_own_files() {
    // RoutedMessage inlines InboundMessage and Contact: they must not drift.
    let routed: serde_json::Value = serde_json::from_str(SCHEMA_FILES[1].1).unwrap();
    let inbound: serde_json::Value = serde_json::from_str(SCHEMA_FILES[0].1).unwrap();
    let contact: serde_json::Value = serde_json::from_str(SCHEMA_FILES[4].1).unwrap();
    assert_eq!(routed["fields"][0]["type"]["fields"], inbound["fields"]);
    let inlined_contact = &routed["fields"][5]["type"][1];
    let names = |v: &serde_json::Value| -> Vec<String> {
        v["fields"]
            .as_array()
            .unwrap()
            .iter()
            .map(|f| f["name"].as_str().unwrap().to_owned())
            .collect()
    };
    assert_eq!(names(inlined_contact), names(&contact));
}

/// `value` survives the per-record path, and apache-avro's encoder
/// ([`Codec::reference`]) writes the very same bytes, each library
/// reading what the other wrote.
fn round_trip<T>(codec: &Codec<T>, value: &T)
where
    T: Serialize + DeserializeOwned + PartialEq + std::fmt::Debug,
{
    let fast = codec.encode(value).unwrap();
    let reference = codec.reference().encode(value).unwrap();
    assert_eq!(
        fast,
        reference,
        "{}: the two libraries' bytes",
        codec.name()
    );
    assert_eq!(&codec.decode(&fast).unwrap(), value);
    assert_eq!(&codec.reference().decode(&fast).unwrap(), value);
}

#[test]
fn every_type_round_trips_and_both_libraries_write_the_same_bytes() {
    let m = sample_inbound();
    round_trip(inbound(), &m);

    let r = RoutedMessage {
        message: m.clone(),
        app: "echo".into(),
        route: "echo".into(),
        rest: Some("hi".into()),
        captures: [("name".to_string(), "x".to_string())].into(),
        contact: Some(sample_contact()),
    };
    round_trip(routed(), &r);

    let mut o = OutboundMessage::reply_to(&m, "hi");
    o.encoding = Some(Encoding::Ucs2);
    o.segments = 2;
    o.priority = Priority::High;
    round_trip(outbound(), &o);

    let e = DeliveryEvent {
        message_id: o.id.clone(),
        connection: o.connection.clone(),
        status: DeliveryStatus::Delivered,
        at: now_millis(),
        provider_id: None,
        error: Some("x".into()),
        provider_status: Some("2".into()),
        campaign_id: Some("spring".into()),
        segments: 2,
        app: Some("echo".into()),
        accepted_at: 5,
        sent_at: 7,
        report: true,
    };
    round_trip(event(), &e);

    let c = sample_contact();
    round_trip(contact(), &c);

    let l = LogEntry {
        message_id: o.id.clone(),
        direction: Direction::Out,
        connection: o.connection.clone(),
        contact_id: Some(c.id.clone()),
        contact_name: c.name.clone(),
        text: o.text.clone(),
        at: now_millis(),
        app: o.app.clone(),
        in_response_to: o.in_response_to.clone(),
    };
    round_trip(log(), &l);

    let k = Campaign {
        id: "spring-2026".into(),
        name: "Spring".into(),
        backend: "twilio".into(),
        texts: [
            ("en".to_string(), "Hi {name}".to_string()),
            ("fr".to_string(), "Salut {name}".to_string()),
        ]
        .into(),
        default_language: "en".into(),
        defaults: [("name".to_string(), "friend".to_string())].into(),
        audience: Audience {
            file: Some("list.csv".into()),
            groups: vec!["farmers".into()],
            region: Some("KE".into()),
            recipients: 1_000_000,
            chunks: 1000,
            segments: 1_000_200,
            cost: 7500.25,
        },
        start_at: Some(now_millis()),
        end_at: None,
        messages_per_second: Some(50.0),
        segments_per_second: None,
        daily_cap: Some(200_000),
        quiet_from: Some("21:00".into()),
        quiet_until: Some("08:00".into()),
        timezone: "Africa/Nairobi".into(),
        auto_pause_errors: 10,
        state: CampaignState::Paused,
        state_reason: Some("paused by the operator".into()),
        created_at: now_millis(),
        updated_at: now_millis(),
    };
    round_trip(campaign(), &k);

    let chunk = AudienceChunk {
        campaign_id: k.id.clone(),
        index: 3,
        last: true,
        rows: vec![AudienceRow {
            line: 12,
            phone: "+254712345678".into(),
            name: Some("Wanjiru".into()),
            language: Some("sw".into()),
            timezone: None,
            vars: [("city".to_string(), "Nyeri".to_string())].into(),
        }],
    };
    round_trip(audience(), &chunk);
}

#[test]
fn stats_round_trip_with_their_histograms() {
    let mut latency = Latency::default();
    for ms in [0, 4, 4, 250, 90_000_000] {
        latency.record(ms);
    }
    let s = Stats {
        window: StatsWindow::Minute,
        start: StatsWindow::Minute.start_of(now_millis()),
        dimension: StatsDimension::Campaign,
        value: "spring".into(),
        topic: "sms.events".into(),
        partition: 3,
        through_offset: 41,
        inbound: 0,
        outbound: 5,
        queued: 5,
        sent: 4,
        delivered: 3,
        failed: 1,
        expired: 0,
        suppressed: 0,
        segments: 6,
        accepted_to_sent: latency.clone(),
        sent_to_delivered: Latency::default(),
        closed: false,
        updated_at: now_millis(),
    };
    round_trip(stats(), &s);
    assert_eq!(
        s.key(),
        format!("minute/{}/campaign/spring/sms.events/3", s.start)
    );
    // 0 → bucket ≤1, 4 → ≤5 (twice), 250 → ≤300, a day and more → the top bucket.
    assert_eq!(latency.quantile(0.2), Some(1));
    assert_eq!(latency.quantile(0.6), Some(5));
    assert_eq!(latency.quantile(0.8), Some(300));
    assert_eq!(latency.quantile(1.0), Some(90_000_000));
    assert_eq!(Latency::default().quantile(0.5), None);
    let mut merged = Latency::default();
    merged.merge(&latency);
    merged.merge(&latency);
    assert_eq!((merged.count, merged.quantile(0.6)), (10, Some(5)));
}

#[test]
fn records_of_an_earlier_version_are_read_with_the_fields_added_since_defaulted() {
    /// `DeliveryEvent` as version 2 of its schema wrote it (issue 15).
    #[derive(Serialize)]
    struct Version2<'a> {
        message_id: &'a str,
        connection: Connection,
        status: DeliveryStatus,
        at: i64,
        provider_id: Option<&'a str>,
        error: Option<&'a str>,
        provider_status: Option<&'a str>,
        campaign_id: Option<&'a str>,
        segments: i32,
    }
    let v2 = versions("delivery_event.avsc")
        .into_iter()
        .find(|k| k.version == 2)
        .unwrap();
    let mut bytes = vec![0xC3, 0x01];
    bytes.extend_from_slice(&v2.fingerprint);
    GenericDatumWriter::builder(&v2.schema)
        .human_readable(false)
        .build()
        .unwrap()
        .write_ser(
            &mut bytes,
            &Version2 {
                message_id: "m1",
                connection: Connection::new("kannel", "+2547"),
                status: DeliveryStatus::Sent,
                at: 1_700_000_000_000,
                provider_id: Some("p1"),
                error: None,
                provider_status: None,
                campaign_id: Some("spring"),
                segments: 2,
            },
        )
        .unwrap();
    let e = event().decode(&bytes).unwrap();
    assert_eq!((e.message_id.as_str(), e.segments), ("m1", 2));
    assert_eq!(e.campaign_id.as_deref(), Some("spring"));
    assert_eq!(
        (&e.app, e.accepted_at, e.sent_at, e.report),
        (&None, 0, 0, false)
    );
    // Also in Confluent framing, with version 2's own id.
    let confluent = reframe(bytes.clone(), Framing::Confluent);
    assert_eq!(&confluent[1..5], &v2.id.to_be_bytes());
    assert_eq!(event().decode(&confluent).unwrap(), e);
    // Another file's schema is still refused.
    assert!(matches!(
        inbound().decode(&bytes),
        Err(DecodeError::OtherSchema { .. })
    ));
}

#[test]
fn garbage_and_other_schemas_are_rejected_with_a_reason() {
    for short in [&b""[..], b"h", b"\xC3\x01abc", b"\x00\x01"] {
        assert!(matches!(
            inbound().decode(short),
            Err(DecodeError::TooShort { .. })
        ));
    }
    assert!(matches!(
        inbound().decode(b"{\"json\": true}"),
        Err(DecodeError::NotAvro { .. })
    ));
    let o = outbound()
        .encode(&OutboundMessage::new(Connection::new("a", "b"), "x"))
        .unwrap();
    let err = inbound().decode(&o).unwrap_err();
    assert!(matches!(err, DecodeError::OtherSchema { .. }), "{err}");
    let mut truncated = inbound().encode(&sample_inbound()).unwrap();
    truncated.truncate(20);
    assert!(matches!(
        inbound().decode(&truncated),
        Err(DecodeError::Invalid { .. })
    ));
}

#[test]
fn broken_datums_are_refused_never_panicking() {
    let whole = routed()
        .encode(&RoutedMessage {
            message: sample_inbound(),
            app: "echo".into(),
            route: "echo".into(),
            rest: Some("hi".into()),
            captures: [("name".to_string(), "x".to_string())].into(),
            contact: Some(sample_contact()),
        })
        .unwrap();
    // Every truncation, and every one-byte change, of a whole record.
    for n in 10..whole.len() {
        let err = routed().decode(&whole[..n]).unwrap_err();
        assert!(matches!(err, DecodeError::Invalid { .. }), "{n}: {err}");
    }
    let mut rng = fastrand::Rng::with_seed(7);
    for i in 10..whole.len() {
        let mut changed = whole.clone();
        changed[i] = rng.u8(..);
        let _ = routed().decode(&changed);
    }
    // Random datums behind the right header.
    for _ in 0..20_000 {
        let mut bytes = routed().header().to_vec();
        bytes.extend((0..rng.usize(0..64)).map(|_| rng.u8(..)));
        let _ = routed().decode(&bytes);
    }
    // A count of ten million map entries in a 20-byte datum.
    let mut huge = inbound().header().to_vec();
    huge.extend([2, b'x', 2, b'b', 2, b'i', 2, b't', 2]); // id, connection, text, time
    huge.extend([0]); // external_id: null
    huge.extend([0x80, 0xDA, 0xC4, 0x09]); // fields: 10,000,000 entries
    let err = inbound().decode(&huge).unwrap_err();
    assert!(matches!(err, DecodeError::Invalid { .. }), "{err}");
}

#[test]
fn confluent_framing_is_read_like_single_object_and_converted_both_ways() {
    let m = sample_inbound();
    let single = inbound().encode(&m).unwrap();
    let confluent = reframe(single.clone(), Framing::Confluent);
    let id = by_file("inbound_message.avsc").unwrap().id;
    assert_eq!(confluent[0], 0);
    assert_eq!(&confluent[1..5], &id.to_be_bytes());
    assert_eq!(&confluent[5..], &single[10..]);
    assert_eq!(inbound().decode(&confluent).unwrap(), m);
    assert_eq!(reframe(confluent.clone(), Framing::SingleObject), single);
    assert_eq!(reframe(single.clone(), Framing::SingleObject), single);
    // Not Avro: left alone.
    assert_eq!(reframe(b"plain".to_vec(), Framing::Confluent), b"plain");

    // Another schema's id is named, an unknown id too.
    let event = reframe(
        event()
            .encode(&DeliveryEvent::now(
                &OutboundMessage::new(Connection::new("a", "b"), "x"),
                DeliveryStatus::Sent,
            ))
            .unwrap(),
        Framing::Confluent,
    );
    let err = inbound().decode(&event).unwrap_err().to_string();
    assert!(err.contains("delivery_event.avsc"), "{err}");
    let mut unknown = confluent.clone();
    unknown[1..5].copy_from_slice(&7u32.to_be_bytes());
    let err = inbound().decode(&unknown).unwrap_err();
    assert!(matches!(err, DecodeError::UnknownId { id: 7 }), "{err}");

    // An id learned from an external registry is read and written.
    learn_id(by_file("log_entry.avsc").unwrap(), 90_001);
    let l = LogEntry {
        message_id: "m".into(),
        direction: Direction::In,
        connection: Connection::new("a", "b"),
        contact_id: None,
        contact_name: String::new(),
        text: "hi".into(),
        at: 1,
        app: None,
        in_response_to: None,
    };
    let framed = reframe(log().encode(&l).unwrap(), Framing::Confluent);
    assert_eq!(&framed[1..5], &90_001u32.to_be_bytes());
    assert_eq!(log().decode(&framed).unwrap(), l);
}

#[test]
fn own_ids_are_distinct_positive_and_follow_the_fingerprint() {
    // The fingerprint's first four bytes, big-endian, top bit cleared
    // (what examples/external_app.py and docs/analytics.md compute).
    assert_eq!(by_file("inbound_message.avsc").unwrap().id, 0x1b55_7ac9);
    let mut ids: Vec<u32> = known().iter().map(|k| k.id).collect();
    assert!(ids.iter().all(|&id| id > 0 && id <= i32::MAX as u32));
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), SCHEMA_FILES.len());
    for k in known() {
        assert_eq!(by_id(k.id).unwrap().file, k.file);
        assert!(k.name.starts_with("smsflow."), "{}", k.name);
    }
}

#[test]
fn framing_is_single_object_encoding() {
    let bytes = inbound().encode(&sample_inbound()).unwrap();
    assert_eq!(&bytes[..2], &[0xC3, 0x01]);
    // The specification's fingerprint, as fastavro 1.13.1 computes it
    // (fingerprint(to_parsing_canonical_form(schema), "CRC-64-AVRO"),
    // in the bytes' order): what any other Avro library checks.
    let expected = [
        ("inbound_message.avsc", "1b557ac9cefd4da1"),
        ("routed_message.avsc", "32cde57ba797eff9"),
        ("log_entry.avsc", "984a084a7c2c7b06"),
    ];
    for (file, fastavro) in expected {
        let json = SCHEMA_FILES.iter().find(|(f, _)| *f == file).unwrap().1;
        assert_eq!(
            framing::hex(&fingerprint(json).unwrap()),
            fastavro,
            "{file}"
        );
    }
    assert_eq!(&bytes[2..10], &fingerprint(SCHEMA_FILES[0].1).unwrap()[..]);
}
