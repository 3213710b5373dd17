//! Avro encoding of the domain types against `schemas/*.avsc`.
//!
//! The `.avsc` files are the contract: they are compiled into the binary and
//! every record is written and read through them. The per-record path is
//! `serde_avro_fast` (no per-field name lookups, one allocation per string);
//! apache-avro parses the schemas, computes their fingerprints, resolves
//! records of earlier versions into today's, and writes the export's
//! container files. Both write the same bytes for every record type
//! (`every_type_round_trips_and_both_libraries_write_the_same_bytes`), and
//! [`Codec::reference`] keeps apache-avro's own encoder and decoder at hand
//! for that test and for `benches/micro.rs`. The router's own path, which
//! every message takes, reads the inbound datum and writes the routing
//! fields by hand instead (`binary.rs`, [`Codec::view`], [`splice`]),
//! checked against serde_avro_fast byte for byte.
//!
//! A codec writes Avro *single-object encoding* (`C3 01`, fingerprint,
//! datum); the bus turns that into the Confluent wire format on the way out
//! when the pipeline asks for it (`kafka.framing`). Every codec reads both
//! framings: see [`split`] and [`reframe`].

mod binary;
mod framing;
pub mod registry;
pub mod splice;

pub use framing::{
    by_file, by_id, fingerprint, id_of, known, learn_id, reframe, split, versions, DecodeError,
    Framing, Known, HISTORY, SCHEMA_FILES,
};

use std::io::Cursor;
use std::marker::PhantomData;
use std::sync::LazyLock;

use apache_avro::reader::datum::GenericDatumReader;
use apache_avro::writer::datum::GenericDatumWriter;
use apache_avro::Schema;
use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::message::{
    AudienceChunk, Campaign, Contact, DeliveryEvent, InboundMessage, InboundView, LogEntry,
    OutboundMessage, RoutedMessage, Stats,
};

/// Why a value could not be encoded: always a bug (the types mirror the schemas).
#[derive(Debug, thiserror::Error)]
#[error("cannot encode {schema}: {reason}")]
pub struct EncodeError {
    schema: &'static str,
    reason: String,
}

/// Encoder and decoder of one domain type, built once per process.
pub struct Codec<T> {
    name: &'static str,
    header: [u8; 10],
    /// Today's schema, for the per-record path.
    fast: serde_avro_fast::Schema,
    writer: GenericDatumWriter<'static>,
    reader: GenericDatumReader<'static>,
    /// Readers of the file's earlier versions ([`HISTORY`]), resolving
    /// their records into today's schema: fingerprint → reader.
    older: Vec<([u8; 8], GenericDatumReader<'static>)>,
    _type: PhantomData<fn() -> T>,
}

impl<T: Serialize + DeserializeOwned> Codec<T> {
    fn new(name: &'static str, file: &str, json: &str) -> anyhow::Result<Self> {
        // Codecs live for the whole process (they sit in statics below), so the
        // schema does too; leaking it lets the writer and reader borrow it.
        let schema: &'static Schema = Box::leak(Box::new(Schema::parse_str(json)?));
        let mut header = [0xC3, 0x01, 0, 0, 0, 0, 0, 0, 0, 0];
        header[2..].copy_from_slice(&fingerprint(json)?);
        let older = versions(file)
            .into_iter()
            .filter(|k| !k.latest)
            .map(|k| {
                let reader = GenericDatumReader::builder(&k.schema)
                    .reader_schema(schema)
                    .human_readable(false)
                    .build()?;
                Ok((k.fingerprint, reader))
            })
            .collect::<Result<_, apache_avro::Error>>()?;
        let fast = json.parse()?;
        Ok(Self {
            older,
            name,
            header,
            fast,
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
        let mut config = serde_avro_fast::ser::SerializerConfig::new(&self.fast);
        serde_avro_fast::to_datum(value, out, &mut config).map_err(|e| EncodeError {
            schema: self.name,
            reason: e.to_string(),
        })
    }

    /// Decode a record written by [`Codec::encode`], or by any Avro writer
    /// using the same schema or one of its earlier versions, in
    /// single-object or Confluent framing.
    pub fn decode(&self, bytes: &[u8]) -> Result<T, DecodeError> {
        match self.locate(bytes)? {
            (datum, None) => self.read_today(datum),
            // An earlier version: resolved into today's schema first (the
            // fields added since take their defaults). apache-avro resolves
            // only through its `Value`, so this path is slower.
            (datum, Some(older)) => {
                let invalid = |e: apache_avro::Error| DecodeError::Invalid {
                    schema: self.name,
                    reason: e.to_string(),
                };
                let mut cursor = Cursor::new(datum);
                let value =
                    apache_avro::from_value(&older.read_value(&mut cursor).map_err(invalid)?)
                        .map_err(invalid)?;
                left_over(self.name, datum.len() - cursor.position() as usize)?;
                Ok(value)
            }
        }
    }

    /// The datum in `bytes`, and the reader of the earlier version that
    /// wrote it (`None`: today's schema).
    fn locate<'a>(
        &self,
        bytes: &'a [u8],
    ) -> Result<(&'a [u8], Option<&GenericDatumReader<'static>>), DecodeError> {
        if let Some(datum) = bytes.strip_prefix(&self.header) {
            return Ok((datum, None));
        }
        let (known, datum) = split(bytes)?;
        if known.fingerprint == self.header[2..] {
            return Ok((datum, None));
        }
        match self.older.iter().find(|(fp, _)| *fp == known.fingerprint) {
            Some((_, older)) => Ok((datum, Some(older))),
            None => Err(DecodeError::OtherSchema {
                schema: self.name,
                found: format!("{} ({})", framing::hex(&known.fingerprint), known.file),
                expected: framing::hex(&self.header[2..10]),
            }),
        }
    }

    /// `datum`, written with today's schema, straight into `T`.
    fn read_today(&self, datum: &[u8]) -> Result<T, DecodeError> {
        let mut config = serde_avro_fast::de::DeserializerConfig::new(&self.fast);
        // Every item of the schemas' arrays and maps takes a byte at least:
        // a longer count is a broken record, refused before it is looped over.
        config.max_seq_size = datum.len();
        let mut state = serde_avro_fast::de::DeserializerState::with_config(
            serde_avro_fast::de::read::SliceRead::new(datum),
            config,
        );
        let value = T::deserialize(state.deserializer()).map_err(|e| DecodeError::Invalid {
            schema: self.name,
            reason: e.to_string(),
        })?;
        let left = std::io::BufRead::fill_buf(&mut state.into_reader()).map_or(0, <[u8]>::len);
        left_over(self.name, left)?;
        Ok(value)
    }

    /// apache-avro's own encoder and decoder of the same schema: the
    /// reference the per-record path is checked and measured against.
    pub fn reference(&self) -> Reference<'_, T> {
        Reference(self)
    }
}

impl Codec<InboundMessage> {
    /// The message in `bytes`, its strings borrowed from them, when it was
    /// written with today's schema: the router's read of every message
    /// (field by field, `binary.rs`). `Ok(None)` when an earlier version
    /// wrote it: [`Codec::decode`] resolves those.
    pub fn view<'a>(&self, bytes: &'a [u8]) -> Result<Option<InboundView<'a>>, DecodeError> {
        match self.locate(bytes)? {
            (datum, None) => {
                binary::read_inbound(datum)
                    .map(Some)
                    .map_err(|reason| DecodeError::Invalid {
                        schema: self.name,
                        reason,
                    })
            }
            (_, Some(_)) => Ok(None),
        }
    }
}

/// [`Codec::reference`]: apache-avro's schema-aware serde path, today's
/// schema only, single-object framing.
pub struct Reference<'a, T>(&'a Codec<T>);

impl<T: Serialize + DeserializeOwned> Reference<'_, T> {
    pub fn encode(&self, value: &T) -> Result<Vec<u8>, EncodeError> {
        let c = self.0;
        let mut out = Vec::with_capacity(256);
        out.extend_from_slice(&c.header);
        c.writer
            .write_ser(&mut out, value)
            .map_err(|e| EncodeError {
                schema: c.name,
                reason: e.to_string(),
            })?;
        Ok(out)
    }

    pub fn decode(&self, bytes: &[u8]) -> Result<T, DecodeError> {
        let c = self.0;
        let datum = match bytes.get(..10) {
            Some(header) if header == c.header => &bytes[10..],
            _ => {
                return Err(DecodeError::Invalid {
                    schema: c.name,
                    reason: "not single-object encoded with today's schema".into(),
                })
            }
        };
        let mut cursor = Cursor::new(datum);
        let value = c
            .reader
            .read_deser(&mut cursor)
            .map_err(|e| DecodeError::Invalid {
                schema: c.name,
                reason: e.to_string(),
            })?;
        left_over(c.name, datum.len() - cursor.position() as usize)?;
        Ok(value)
    }
}

/// A datum must end where its record does.
fn left_over(schema: &'static str, left: usize) -> Result<(), DecodeError> {
    if left == 0 {
        return Ok(());
    }
    Err(DecodeError::Invalid {
        schema,
        reason: format!("{left} bytes left over after the record"),
    })
}

macro_rules! codec {
    ($fn:ident, $ty:ty, $name:literal, $index:literal) => {
        #[doc = concat!("The codec of `", stringify!($ty), "` (`", $name, "`).")]
        pub fn $fn() -> &'static Codec<$ty> {
            static CODEC: LazyLock<Codec<$ty>> = LazyLock::new(|| {
                // Infallible in practice: the file is compiled in and
                // `tests::every_schema_parses` parses it on every test run.
                let (file, json) = SCHEMA_FILES[$index];
                Codec::new($name, file, json).expect("compiled-in schema parses")
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
codec!(stats, Stats, "Stats", 8);

#[cfg(test)]
mod tests;
