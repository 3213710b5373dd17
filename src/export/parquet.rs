//! Parquet files from datums, through arrow-rs: arrow-avro decodes the
//! datums into Arrow record batches (timestamps as
//! `Timestamp(Millisecond, "+00:00")`, enums as dictionary-encoded
//! strings, `["null", T]` unions as nullable columns, maps and records as
//! Arrow maps and structs) and the `parquet` crate writes them.
//!
//! The Arrow schema is not embedded in the file (`skip_arrow_metadata`):
//! readers then take the Parquet types themselves, so a timestamp is
//! `TIMESTAMP(MILLIS, isAdjustedToUTC=true)` and an enum a plain `STRING`
//! column (not an Arrow dictionary) in DuckDB, pyarrow, pandas and Spark.

use std::io::Write;
use std::path::Path;

use arrow_avro::reader::{DecoderMode, ReaderBuilder};
use arrow_avro::schema::{AvroSchema, SchemaStore};
use parquet::arrow::arrow_writer::{ArrowWriter, ArrowWriterOptions};
use parquet::basic::Compression;
use parquet::file::metadata::KeyValue;
use parquet::file::properties::WriterProperties;
use parquet::file::reader::{FileReader, SerializedFileReader};

use crate::schema::Known;

/// Rows decoded into one Arrow batch (and written as one Parquet row group
/// at most: the writer's own limit is 1 Mi rows).
const BATCH_ROWS: usize = 64 * 1024;

/// The key of the file metadata naming the rows' Avro record.
pub const SCHEMA_KEY: &str = "smsflow.schema";

/// Write `datums` of `known`'s schema as one Parquet file to `out`.
pub fn write<'a, W: Write + Send>(
    out: W,
    known: &Known,
    datums: impl IntoIterator<Item = &'a [u8]>,
) -> Result<W, String> {
    let mut store = SchemaStore::new();
    let fp = store
        .register(AvroSchema::new(known.json.to_owned()))
        .map_err(|e| format!("arrow-avro refuses {}: {e}", known.name))?;
    let mut decoder = ReaderBuilder::new()
        .with_writer_schema_store(store)
        .with_active_fingerprint(fp)
        .with_decoder_mode(DecoderMode::UnframedDatum)
        .with_batch_size(BATCH_ROWS)
        .build_decoder()
        .map_err(|e| format!("arrow-avro refuses {}: {e}", known.name))?;
    let props = WriterProperties::builder()
        .set_compression(Compression::SNAPPY)
        .set_created_by(format!("smsflow {}", env!("CARGO_PKG_VERSION")))
        .set_key_value_metadata(Some(vec![
            KeyValue::new(SCHEMA_KEY.to_owned(), known.name.clone()),
            KeyValue::new("avro.schema".to_owned(), known.json.to_owned()),
        ]))
        .build();
    let options = ArrowWriterOptions::new()
        .with_properties(props)
        .with_skip_arrow_metadata(true);
    let mut writer = ArrowWriter::try_new_with_options(out, decoder.schema(), options)
        .map_err(|e| format!("cannot start a Parquet file: {e}"))?;
    let bad = |e: &dyn std::fmt::Display| format!("{}: {e}", known.name);
    for d in datums {
        let used = decoder.decode(d).map_err(|e| bad(&e))?;
        if used != d.len() {
            return Err(format!(
                "{}: arrow-avro read {used} of the datum's {} bytes",
                known.name,
                d.len()
            ));
        }
        if decoder.batch_is_full() {
            if let Some(batch) = decoder.flush().map_err(|e| bad(&e))? {
                writer.write(&batch).map_err(|e| bad(&e))?;
            }
        }
    }
    if let Some(batch) = decoder.flush().map_err(|e| bad(&e))? {
        writer.write(&batch).map_err(|e| bad(&e))?;
    }
    writer
        .into_inner()
        .map_err(|e| format!("cannot finish a Parquet file: {e}"))
}

/// The rows of a Parquet file (recovery repairing its manifest), from its
/// footer, and the record name written in it.
pub fn count(path: &Path) -> Result<(u64, String), String> {
    let file = std::fs::File::open(path).map_err(|e| e.to_string())?;
    let reader = SerializedFileReader::new(file).map_err(|e| e.to_string())?;
    let meta = reader.metadata().file_metadata();
    let name = meta
        .key_value_metadata()
        .and_then(|kv| kv.iter().find(|k| k.key == SCHEMA_KEY))
        .and_then(|k| k.value.clone())
        .unwrap_or_default();
    Ok((meta.num_rows().max(0) as u64, name))
}
