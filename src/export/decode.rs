//! What the exporter needs to know of a record before it buffers it:
//! which schema wrote it, that its datum decodes whole against that schema
//! (a record that does not is poison: it would corrupt a file), and its
//! event time, which picks the `dt=` directory.

use std::sync::LazyLock;

use apache_avro::reader::datum::GenericDatumReader;
use apache_avro::schema::Schema;
use apache_avro::types::Value;

use crate::schema::{self, Known};

/// A datum reader per known schema, built once (resolving a schema costs
/// more than reading a record).
type Readers = Vec<(&'static Known, Result<GenericDatumReader<'static>, String>)>;
static READERS: LazyLock<Readers> = LazyLock::new(|| {
    schema::known()
        .iter()
        .map(|k| {
            let r = GenericDatumReader::builder(&k.schema)
                .human_readable(false)
                .build()
                .map_err(|e| e.to_string());
            (k, r)
        })
        .collect()
});

/// A record that can be exported.
pub struct Row<'a> {
    pub known: &'static Known,
    /// The Avro binary datum, without framing.
    pub datum: &'a [u8],
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
        }
    }

    #[test]
    fn a_known_record_gives_its_schema_and_event_time() {
        let bytes = schema::event().encode(&event()).unwrap();
        let row = inspect(&bytes).unwrap();
        assert_eq!(row.known.name, "smsflow.DeliveryEvent");
        assert_eq!(row.millis, Some(1_772_409_600_123));
        assert_eq!(row.datum, &bytes[10..]);
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
}
