//! What the exporter needs to know of a record before it buffers it:
//! which schema wrote it, that its datum decodes whole against that schema
//! (a record that does not is poison: it would corrupt a file), and its
//! event time, which picks the `dt=` directory.

use std::borrow::Cow;
use std::sync::LazyLock;

use apache_avro::reader::datum::GenericDatumReader;
use apache_avro::schema::Schema;
use apache_avro::types::Value;
use apache_avro::writer::datum::GenericDatumWriter;

use crate::schema::{self, Known};

/// A datum reader per known schema and version, built once (resolving a
/// schema costs more than reading a record). An earlier version's reader
/// resolves its records into today's schema.
type Readers = Vec<(&'static Known, Result<GenericDatumReader<'static>, String>)>;
static READERS: LazyLock<Readers> = LazyLock::new(|| {
    schema::known()
        .iter()
        .flat_map(|today| {
            schema::versions(today.file).into_iter().map(move |k| {
                let r = match k.latest {
                    true => GenericDatumReader::builder(&k.schema)
                        .human_readable(false)
                        .build(),
                    false => GenericDatumReader::builder(&k.schema)
                        .reader_schema(&today.schema)
                        .human_readable(false)
                        .build(),
                };
                (k, r.map_err(|e| e.to_string()))
            })
        })
        .collect()
});

/// A record that can be exported.
pub struct Row<'a> {
    /// Today's version of its schema.
    pub known: &'static Known,
    /// The Avro binary datum, without framing, in today's schema: a record
    /// an earlier version wrote is resolved and written again, so that a
    /// file holds one schema however the topic's writers were upgraded.
    pub datum: Cow<'a, [u8]>,
    /// Its event time (ms since the epoch): the schema's first top-level
    /// `timestamp-millis` field that is not optional (`at`, `received_at`,
    /// `created_at`, a stats window's `start`); none for the schemas
    /// without one.
    pub millis: Option<i64>,
}

/// Inspect a record's value; `Err` says why it cannot be exported.
pub fn inspect(payload: &[u8]) -> Result<Row<'_>, String> {
    let (known, datum) = schema::split(payload).map_err(|e| e.to_string())?;
    let mut reader = datum;
    let value = READERS
        .iter()
        .find(|(k, _)| std::ptr::eq(*k, known))
        .ok_or_else(|| format!("{}: no reader for this schema", known.name))?
        .1
        .as_ref()
        .map_err(|e| format!("{}: {e}", known.name))?
        .read_value(&mut reader)
        .map_err(|e| format!("{}: the datum does not decode: {e}", known.name))?;
    if !reader.is_empty() {
        return Err(format!(
            "{}: {} bytes after the end of the datum",
            known.name,
            reader.len()
        ));
    }
    let (known, datum) = match known.latest {
        true => (known, Cow::Borrowed(datum)),
        false => {
            let today = schema::by_file(known.file)
                .ok_or_else(|| format!("{}: no current version", known.name))?;
            let again = GenericDatumWriter::builder(&today.schema)
                .human_readable(false)
                .build()
                .and_then(|w| w.write_value_to_vec(value.clone()))
                .map_err(|e| format!("{}: cannot write it in today's schema: {e}", known.name))?;
            (today, Cow::Owned(again))
        }
    };
    let millis = event_time(&known.schema, &value);
    Ok(Row {
        known,
        datum,
        millis,
    })
}

fn event_time(schema: &Schema, value: &Value) -> Option<i64> {
    let Schema::Record(record) = schema else {
        return None;
    };
    let index = record
        .fields
        .iter()
        .position(|f| matches!(f.schema, Schema::TimestampMillis))?;
    match value {
        Value::Record(fields) => match fields.get(index).map(|(_, v)| v) {
            Some(Value::TimestampMillis(ms)) | Some(Value::Long(ms)) => Some(*ms),
            _ => None,
        },
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::message::{Connection, DeliveryEvent, DeliveryStatus};

    fn event() -> DeliveryEvent {
        DeliveryEvent {
            message_id: "m1".into(),
            connection: Connection::new("discard", "+254700000001"),
            status: DeliveryStatus::Delivered,
            at: 1_772_409_600_123,
            provider_id: None,
            error: None,
            provider_status: None,
            campaign_id: None,
            segments: 1,
            app: None,
            accepted_at: 0,
            sent_at: 0,
            report: false,
        }
    }

    #[test]
    fn a_known_record_gives_its_schema_and_event_time() {
        let bytes = schema::event().encode(&event()).unwrap();
        let row = inspect(&bytes).unwrap();
        assert_eq!(row.known.name, "smsflow.DeliveryEvent");
        assert_eq!(row.millis, Some(1_772_409_600_123));
        assert_eq!(&row.datum[..], &bytes[10..]);
    }

    #[test]
    fn poison_is_refused_with_the_reason() {
        assert!(inspect(b"not avro").is_err());
        let bytes = schema::event().encode(&event()).unwrap();
        let e = inspect(&bytes[..bytes.len() - 3]).err().unwrap();
        assert!(e.contains("does not decode"), "{e}");
        let mut longer = bytes.to_vec();
        longer.push(0);
        let e = inspect(&longer).err().unwrap();
        assert!(e.contains("after the end"), "{e}");
    }

    #[test]
    fn a_record_of_an_earlier_version_is_exported_in_todays_schema() {
        // DeliveryEvent version 2 (before app, accepted_at, sent_at, report).
        let v2 = schema::versions("delivery_event.avsc")
            .into_iter()
            .find(|k| k.version == 2)
            .unwrap();
        let value = Value::Record(vec![
            ("message_id".into(), Value::String("m2".into())),
            (
                "connection".into(),
                Value::Record(vec![
                    ("backend".into(), Value::String("kannel".into())),
                    ("identity".into(), Value::String("+2547".into())),
                ]),
            ),
            ("status".into(), Value::Enum(1, "sent".into())),
            ("at".into(), Value::TimestampMillis(1_772_409_600_456)),
            ("provider_id".into(), Value::Union(0, Box::new(Value::Null))),
            ("error".into(), Value::Union(0, Box::new(Value::Null))),
            (
                "provider_status".into(),
                Value::Union(0, Box::new(Value::Null)),
            ),
            ("campaign_id".into(), Value::Union(0, Box::new(Value::Null))),
            ("segments".into(), Value::Int(3)),
        ]);
        let mut bytes = vec![0xC3, 0x01];
        bytes.extend_from_slice(&v2.fingerprint);
        GenericDatumWriter::builder(&v2.schema)
            .build()
            .unwrap()
            .write_value(&mut bytes, value)
            .unwrap();
        let row = inspect(&bytes).unwrap();
        assert!(row.known.latest);
        assert_eq!(row.millis, Some(1_772_409_600_456));
        // The datum is today's: today's codec reads it, with the defaults.
        let mut today = vec![0xC3, 0x01];
        today.extend_from_slice(&row.known.fingerprint);
        today.extend_from_slice(&row.datum);
        let e = schema::event().decode(&today).unwrap();
        assert_eq!(
            (e.message_id.as_str(), e.segments, e.report),
            ("m2", 3, false)
        );
    }
}
