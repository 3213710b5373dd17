//! Avro encoding of the domain types against `schemas/*.avsc`.
//!
//! The `.avsc` files are the contract: they are compiled into the binary and
//! every record is written and read through them with apache-avro's
//! schema-aware serde path (no `Value` in between).
//!
//! Framing on the topics is Avro *single-object encoding*: the two bytes
//! `C3 01`, the 8-byte little-endian CRC-64-AVRO (Rabin) fingerprint of the
//! schema's canonical form, then the Avro binary datum. A consumer that has the
//! `.avsc` file can check the fingerprint and decode the rest.

use std::io::Cursor;
use std::marker::PhantomData;
use std::sync::LazyLock;

use apache_avro::reader::datum::GenericDatumReader;
use apache_avro::writer::datum::GenericDatumWriter;
use apache_avro::Schema;
use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::message::{
    AudienceChunk, Campaign, Contact, DeliveryEvent, InboundMessage, LogEntry, OutboundMessage,
    RoutedMessage,
};

/// The schema files, by name, as compiled in.
pub const SCHEMA_FILES: [(&str, &str); 8] = [
    (
        "inbound_message.avsc",
        include_str!("../../schemas/inbound_message.avsc"),
    ),
    (
        "routed_message.avsc",
        include_str!("../../schemas/routed_message.avsc"),
    ),
    (
        "outbound_message.avsc",
        include_str!("../../schemas/outbound_message.avsc"),
    ),
    (
        "delivery_event.avsc",
        include_str!("../../schemas/delivery_event.avsc"),
    ),
    ("contact.avsc", include_str!("../../schemas/contact.avsc")),
    (
        "log_entry.avsc",
        include_str!("../../schemas/log_entry.avsc"),
    ),
    ("campaign.avsc", include_str!("../../schemas/campaign.avsc")),
    (
        "audience_chunk.avsc",
        include_str!("../../schemas/audience_chunk.avsc"),
    ),
];

/// Why a record could not be decoded. All of these are the record's fault:
/// retrying cannot help, the record goes to the dead-letter topic.
#[derive(Debug, thiserror::Error)]
pub enum DecodeError {
    #[error("record is {len} bytes, too short for Avro single-object framing (10-byte header)")]
    TooShort { len: usize },
    #[error("record does not start with the Avro single-object marker C3 01 (found {found:02X?})")]
    NotSingleObject { found: [u8; 2] },
    #[error("record was written with another schema (fingerprint {found}, expected {expected} for {schema})")]
    OtherSchema {
        schema: &'static str,
        found: String,
        expected: String,
    },
    #[error("record is not a valid {schema}: {reason}")]
    Invalid {
        schema: &'static str,
        reason: String,
    },
}

/// Why a value could not be encoded: always a bug (the types mirror the schemas).
#[derive(Debug, thiserror::Error)]
#[error("cannot encode {schema}: {reason}")]
pub struct EncodeError {
    schema: &'static str,
    reason: String,
}

/// The CRC-64-AVRO (Rabin) fingerprint of a schema's Parsing Canonical
/// Form, as the Avro specification, Java's `SchemaNormalization` and
/// fastavro compute it, in the byte order single-object encoding writes.
///
/// apache-avro 0.22 keeps `{"type":"long"}` for a primitive that had a
/// logical type, where the specification strips the attribute and writes
/// `"long"`: its fingerprints of our schemas (which all have
/// `timestamp-millis` fields) match no other Avro library. The logical types
/// are removed first (the canonical form drops them anyway), and the library
/// does the rest.
pub fn fingerprint(json: &str) -> Result<[u8; 8], apache_avro::Error> {
    fn strip(v: &mut serde_json::Value) {
        match v {
            serde_json::Value::Object(m) => {
                m.remove("logicalType");
                m.values_mut().for_each(strip);
            }
            serde_json::Value::Array(a) => a.iter_mut().for_each(strip),
            _ => {}
        }
    }
    let mut value: serde_json::Value = serde_json::from_str(json)
        .map_err(|e| apache_avro::Error::new(apache_avro::error::Details::ParseSchemaJson(e)))?;
    strip(&mut value);
    let fp = Schema::parse(&value)?.fingerprint::<apache_avro::rabin::Rabin>();
    let mut out = [0u8; 8];
    out.copy_from_slice(&fp.bytes);
    Ok(out)
}

/// Encoder and decoder of one domain type, built once per process.
pub struct Codec<T> {
    name: &'static str,
    header: [u8; 10],
    writer: GenericDatumWriter<'static>,
    reader: GenericDatumReader<'static>,
    _type: PhantomData<fn() -> T>,
}

impl<T: Serialize + DeserializeOwned> Codec<T> {
    fn new(name: &'static str, json: &str) -> Result<Self, apache_avro::Error> {
        // Codecs live for the whole process (they sit in statics below), so the
        // schema does too; leaking it lets the writer and reader borrow it.
        let schema: &'static Schema = Box::leak(Box::new(Schema::parse_str(json)?));
        let mut header = [0xC3, 0x01, 0, 0, 0, 0, 0, 0, 0, 0];
        header[2..].copy_from_slice(&fingerprint(json)?);
        Ok(Self {
            name,
            header,
            writer: GenericDatumWriter::builder(schema)
                .human_readable(false)
                .build()?,
            reader: GenericDatumReader::builder(schema)
                .human_readable(false)
                .build()?,
            _type: PhantomData,
        })
    }

    /// The schema's record name, for error messages and headers.
    pub fn name(&self) -> &'static str {
        self.name
    }

    /// The single-object header: marker plus fingerprint.
    pub fn header(&self) -> &[u8; 10] {
        &self.header
    }

    /// Encode `value` with single-object framing.
    pub fn encode(&self, value: &T) -> Result<Vec<u8>, EncodeError> {
        let mut out = Vec::with_capacity(256);
        out.extend_from_slice(&self.header);
        self.writer
            .write_ser(&mut out, value)
            .map_err(|e| EncodeError {
                schema: self.name,
                reason: e.to_string(),
            })?;
        Ok(out)
    }

    /// Decode a record written by [`Codec::encode`] (or any Avro writer using
    /// the same schema and single-object framing).
    pub fn decode(&self, bytes: &[u8]) -> Result<T, DecodeError> {
        if bytes.len() < 10 {
            return Err(DecodeError::TooShort { len: bytes.len() });
        }
        if bytes[..2] != self.header[..2] {
            return Err(DecodeError::NotSingleObject {
                found: [bytes[0], bytes[1]],
            });
        }
        if bytes[..10] != self.header {
            return Err(DecodeError::OtherSchema {
                schema: self.name,
                found: hex(&bytes[2..10]),
                expected: hex(&self.header[2..10]),
            });
        }
        let mut cursor = Cursor::new(&bytes[10..]);
        let value = self
            .reader
            .read_deser(&mut cursor)
            .map_err(|e| DecodeError::Invalid {
                schema: self.name,
                reason: e.to_string(),
            })?;
        let left = bytes.len() - 10 - cursor.position() as usize;
        if left != 0 {
            return Err(DecodeError::Invalid {
                schema: self.name,
                reason: format!("{left} bytes left over after the record"),
            });
        }
        Ok(value)
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

macro_rules! codec {
    ($fn:ident, $ty:ty, $name:literal, $index:literal) => {
        #[doc = concat!("The codec of `", stringify!($ty), "` (`", $name, "`).")]
        pub fn $fn() -> &'static Codec<$ty> {
            static CODEC: LazyLock<Codec<$ty>> = LazyLock::new(|| {
                // Infallible in practice: the file is compiled in and
                // `tests::every_schema_parses` parses it on every test run.
                Codec::new($name, SCHEMA_FILES[$index].1).expect("compiled-in schema parses")
            });
            &CODEC
        }
    };
}

codec!(inbound, InboundMessage, "InboundMessage", 0);
codec!(routed, RoutedMessage, "RoutedMessage", 1);
codec!(outbound, OutboundMessage, "OutboundMessage", 2);
codec!(event, DeliveryEvent, "DeliveryEvent", 3);
codec!(contact, Contact, "Contact", 4);
codec!(log, LogEntry, "LogEntry", 5);
codec!(campaign, Campaign, "Campaign", 6);
codec!(audience, AudienceChunk, "AudienceChunk", 7);

#[cfg(test)]
mod tests {
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

    #[test]
    fn every_type_round_trips() {
        let m = sample_inbound();
        assert_eq!(inbound().decode(&inbound().encode(&m).unwrap()).unwrap(), m);

        let r = RoutedMessage {
            message: m.clone(),
            app: "echo".into(),
            route: "echo".into(),
            rest: Some("hi".into()),
            captures: [("name".to_string(), "x".to_string())].into(),
            contact: Some(sample_contact()),
        };
        assert_eq!(routed().decode(&routed().encode(&r).unwrap()).unwrap(), r);

        let mut o = OutboundMessage::reply_to(&m, "hi");
        o.encoding = Some(Encoding::Ucs2);
        o.segments = 2;
        o.priority = Priority::High;
        assert_eq!(
            outbound().decode(&outbound().encode(&o).unwrap()).unwrap(),
            o
        );

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
        };
        assert_eq!(event().decode(&event().encode(&e).unwrap()).unwrap(), e);

        let c = sample_contact();
        assert_eq!(contact().decode(&contact().encode(&c).unwrap()).unwrap(), c);

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
        assert_eq!(log().decode(&log().encode(&l).unwrap()).unwrap(), l);

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
        assert_eq!(
            campaign().decode(&campaign().encode(&k).unwrap()).unwrap(),
            k
        );

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
        assert_eq!(
            audience()
                .decode(&audience().encode(&chunk).unwrap())
                .unwrap(),
            chunk
        );
    }

    #[test]
    fn garbage_and_other_schemas_are_rejected_with_a_reason() {
        assert!(matches!(
            inbound().decode(b"hi"),
            Err(DecodeError::TooShort { .. })
        ));
        assert!(matches!(
            inbound().decode(b"{\"json\": true}"),
            Err(DecodeError::NotSingleObject { .. })
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
            assert_eq!(hex(&fingerprint(json).unwrap()), fastavro, "{file}");
        }
        assert_eq!(&bytes[2..10], &fingerprint(SCHEMA_FILES[0].1).unwrap()[..]);
    }
}
