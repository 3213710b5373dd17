//! How a record on a topic says which schema wrote it, and the schemas
//! smsflow knows.
//!
//! Two framings are read everywhere, so a topic can hold both while its
//! writers move from one to the other:
//!
//! - Avro *single-object encoding*: the two bytes `C3 01`, the 8-byte
//!   little-endian CRC-64-AVRO (Rabin) fingerprint of the schema's
//!   canonical form, then the Avro binary datum;
//! - the *Confluent wire format*: byte `00`, the schema's registry id as a
//!   4-byte big-endian integer, then the datum. This is what Kafka Connect,
//!   ksqlDB, ClickHouse's `AvroConfluent` and Confluent's serdes read.
//!
//! smsflow's own id of a schema is taken from its fingerprint (the first
//! four bytes, big-endian, top bit cleared), so every process and every
//! version agree on it without a registry, and an edited schema gets a new
//! id. Ids that an external registry gave are learned with [`learn_id`].

use std::collections::HashMap;
use std::sync::{LazyLock, RwLock};

use apache_avro::Schema;

/// The schema files, by name, as compiled in.
pub const SCHEMA_FILES: [(&str, &str); 9] = [
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
    ("stats.avsc", include_str!("../../schemas/stats.avsc")),
];

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

/// Why a record could not be decoded. All of these are the record's fault:
/// retrying cannot help, the record goes to the dead-letter topic.
#[derive(Debug, thiserror::Error)]
pub enum DecodeError {
    #[error("record is {len} bytes, too short for Avro single-object (10-byte header) or Confluent (5-byte header) framing")]
    TooShort { len: usize },
    #[error("record starts with neither the Avro single-object marker C3 01 nor the Confluent magic byte 00 (found {found:02X?})")]
    NotAvro { found: [u8; 2] },
    #[error("record names schema id {id}, which smsflow does not know (none of its schemas, nor an id learned from the schema registry)")]
    UnknownId { id: u32 },
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

/// How records are framed when written (`kafka.framing`).
pub use crate::config::Framing;

/// Earlier versions of the schema files, as released: records they wrote
/// are still on the topics after an upgrade, and are read by resolving them
/// against today's file (the fields added since take their defaults).
/// When a schema changes, its previous text goes here, numbered after the
/// ones before it (`tests::history_is_backward_compatible` checks that the
/// new one can read it).
pub const HISTORY: [(&str, u32, &str); 2] = [
    (
        "delivery_event.avsc",
        1,
        include_str!("../../schemas/history/delivery_event.1.avsc"),
    ),
    (
        "delivery_event.avsc",
        2,
        include_str!("../../schemas/history/delivery_event.2.avsc"),
    ),
];

/// One schema smsflow knows: a compiled-in `.avsc` file, or an earlier
/// version of one.
#[derive(Debug)]
pub struct Known {
    /// The file name, such as `delivery_event.avsc` (for an earlier
    /// version, the file it is a version of).
    pub file: &'static str,
    /// 1 for the first version; today's file has the highest.
    pub version: u32,
    /// Today's version of the file, which codecs decode into.
    pub latest: bool,
    /// The record's full name, such as `smsflow.DeliveryEvent`.
    pub name: String,
    /// The file's text.
    pub json: &'static str,
    /// The parsed schema.
    pub schema: Schema,
    /// Its CRC-64-AVRO fingerprint, as single-object encoding writes it.
    pub fingerprint: [u8; 8],
    /// smsflow's own registry id for it.
    pub id: u32,
}

/// Today's schemas first, in [`SCHEMA_FILES`] order, then [`HISTORY`].
static KNOWN: LazyLock<Vec<Known>> = LazyLock::new(|| {
    let latest = SCHEMA_FILES.iter().map(|(file, json)| {
        let version = 1 + HISTORY.iter().filter(|(f, ..)| f == file).count() as u32;
        (*file, version, *json, true)
    });
    let older = HISTORY
        .iter()
        .map(|(file, version, json)| (*file, *version, *json, false));
    latest
        .chain(older)
        .map(|(file, version, json, latest)| {
            // Infallible in practice: the files are compiled in and
            // `tests::every_schema_parses` parses them on every test run.
            let schema = Schema::parse_str(json).expect("compiled-in schema parses");
            let fingerprint = fingerprint(json).expect("compiled-in schema parses");
            let name = match &schema {
                Schema::Record(r) => r.name.fullname(None),
                _ => file.to_string(),
            };
            Known {
                file,
                version,
                latest,
                name,
                json,
                schema,
                fingerprint,
                id: own_id(&fingerprint),
            }
        })
        .collect()
});

/// Ids an external registry gave to smsflow's schemas: id → index in [`known`].
static LEARNED: LazyLock<RwLock<HashMap<u32, usize>>> = LazyLock::new(Default::default);

/// smsflow's own id of the schema with fingerprint `fp`.
fn own_id(fp: &[u8; 8]) -> u32 {
    u32::from_be_bytes([fp[0], fp[1], fp[2], fp[3]]) & 0x7fff_ffff
}

/// Today's schemas, in [`SCHEMA_FILES`] order.
pub fn known() -> &'static [Known] {
    &KNOWN[..SCHEMA_FILES.len()]
}

/// Today's version of `file` (such as `stats.avsc`).
pub fn by_file(file: &str) -> Option<&'static Known> {
    known().iter().find(|k| k.file == file)
}

/// Every version of `file`, the first first.
pub fn versions(file: &str) -> Vec<&'static Known> {
    let mut all: Vec<&Known> = KNOWN.iter().filter(|k| k.file == file).collect();
    all.sort_by_key(|k| k.version);
    all
}

/// The known schema with registry id `id`: smsflow's own, or one learned.
pub fn by_id(id: u32) -> Option<&'static Known> {
    if let Some(k) = KNOWN.iter().find(|k| k.id == id) {
        return Some(k);
    }
    let learned = LEARNED.read().unwrap_or_else(|e| e.into_inner());
    learned.get(&id).map(|&i| &KNOWN[i])
}

/// Remember that an external registry calls `known`'s schema `id`.
pub fn learn_id(known: &'static Known, id: u32) {
    if let Some(i) = KNOWN.iter().position(|k| std::ptr::eq(k, known)) {
        LEARNED
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .insert(id, i);
    }
}

/// The id records of `known` are written with in Confluent framing: the
/// one learned from an external registry, else smsflow's own.
pub fn id_of(known: &'static Known) -> u32 {
    let learned = LEARNED.read().unwrap_or_else(|e| e.into_inner());
    learned
        .iter()
        .find(|(_, &i)| std::ptr::eq(&KNOWN[i], known))
        .map(|(&id, _)| id)
        .unwrap_or(known.id)
}

/// Which known schema wrote `bytes`, and its Avro datum, in either framing.
pub fn split(bytes: &[u8]) -> Result<(&'static Known, &[u8]), DecodeError> {
    match bytes {
        [0xC3, 0x01, rest @ ..] if rest.len() >= 8 => {
            let fp = &rest[..8];
            let known = KNOWN.iter().find(|k| k.fingerprint == fp).ok_or_else(|| {
                DecodeError::OtherSchema {
                    schema: "any smsflow schema",
                    found: hex(fp),
                    expected: "one of schemas/*.avsc".into(),
                }
            })?;
            Ok((known, &rest[8..]))
        }
        [0x00, a, b, c, d, datum @ ..] => {
            let id = u32::from_be_bytes([*a, *b, *c, *d]);
            let known = by_id(id).ok_or(DecodeError::UnknownId { id })?;
            Ok((known, datum))
        }
        [0xC3, 0x01, ..] | [0x00, ..] | [] | [_] => Err(DecodeError::TooShort { len: bytes.len() }),
        [a, b, ..] => Err(DecodeError::NotAvro { found: [*a, *b] }),
    }
}

/// `payload` in `framing`: a single-object record of a known schema gets
/// the Confluent header instead when asked (and the reverse); anything
/// else is left as it is.
pub fn reframe(mut payload: Vec<u8>, framing: Framing) -> Vec<u8> {
    let Ok((known, datum)) = split(&payload) else {
        return payload;
    };
    let header_len = payload.len() - datum.len();
    match (framing, payload.first()) {
        (Framing::Confluent, Some(0xC3)) => {
            let mut header = [0u8; 5];
            header[1..].copy_from_slice(&id_of(known).to_be_bytes());
            payload.splice(..header_len, header);
        }
        (Framing::SingleObject, Some(0x00)) => {
            let mut header = [0xC3, 0x01, 0, 0, 0, 0, 0, 0, 0, 0];
            header[2..].copy_from_slice(&known.fingerprint);
            payload.splice(..header_len, header);
        }
        _ => {}
    }
    payload
}

pub(super) fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use apache_avro::schema_compatibility::SchemaCompatibility;

    use super::*;

    #[test]
    fn history_is_backward_compatible_and_on_disk() {
        for (file, version, _) in HISTORY {
            let old = KNOWN
                .iter()
                .find(|k| k.file == file && k.version == version)
                .unwrap();
            let today = by_file(file).unwrap();
            assert!(today.version > version, "{file} {version}");
            assert_ne!(old.fingerprint, today.fingerprint, "{file} {version}");
            SchemaCompatibility::can_read(&old.schema, &today.schema).unwrap_or_else(|e| {
                panic!("today's {file} cannot read version {version}'s records: {e}")
            });
        }
        // Each version once, numbered 1, 2, ... up to today's.
        for k in known() {
            let numbers: Vec<u32> = versions(k.file).iter().map(|v| v.version).collect();
            assert_eq!(numbers, (1..=k.version).collect::<Vec<_>>(), "{}", k.file);
        }
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("schemas/history");
        let mut on_disk: Vec<String> = std::fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        on_disk.sort();
        let mut compiled: Vec<String> = HISTORY
            .iter()
            .map(|(file, version, _)| file.replace(".avsc", &format!(".{version}.avsc")))
            .collect();
        compiled.sort();
        assert_eq!(
            on_disk, compiled,
            "every file in schemas/history is compiled in"
        );
    }

    #[test]
    fn an_incompatible_edit_is_caught() {
        // A new field without a default: today's reader could not read the
        // old records (the check the history test runs for each version).
        let old = Schema::parse_str(
            r#"{"type":"record","name":"E","fields":[{"name":"a","type":"string"}]}"#,
        )
        .unwrap();
        let new = Schema::parse_str(
            r#"{"type":"record","name":"E","fields":[{"name":"a","type":"string"},{"name":"b","type":"long"}]}"#,
        )
        .unwrap();
        assert!(SchemaCompatibility::can_read(&old, &new).is_err());
    }
}
