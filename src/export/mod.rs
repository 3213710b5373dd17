//! Topics to files that analytics tools read without smsflow's help:
//! Parquet (DuckDB, pyarrow, pandas, Spark, ClickHouse) or Avro object
//! container files (fastavro, ClickHouse), in a Hive-style layout
//! (`topic=…/dt=YYYY-MM-DD/…`), exactly once.
//!
//! - [`decode`]: which schema wrote a record, and its event time.
//! - [`avro`], [`parquet`]: the two file formats.
//! - [`layout`]: directories and file names; [`manifest`]: the manifest
//!   and the partition locks; [`recover`]: a partition's position read
//!   back from the directory, repairing what a crash left.
//! - [`writer`]: the [`Exporter`], records in, closed files out.
//! - [`stage`]: the continuous `export` stage on the bus; [`metrics`].
//!
//! Exactly once: a file's name carries its topic, partition, first and last
//! offset; it is written under a temporary name, synced, renamed into
//! place under the partition's lock after checking that no other writer
//! closed those offsets, the directory synced, its manifest line written,
//! and only then are its offsets committed. A restart (or a new owner of
//! the partition) resumes after the last offset found in the files,
//! whatever the group committed.

pub mod avro;
pub mod decode;
pub mod layout;
pub mod manifest;
pub mod metrics;
pub mod parquet;
pub mod recover;
pub mod stage;
pub mod writer;

#[cfg(test)]
mod tests;

use std::path::PathBuf;
use std::time::Duration;

pub use avro::AvroCodec;
pub use writer::{ExportError, Exporter, Pushed};

use crate::config::{self, ExportAvroCodec, ExportFormat, Pipeline};

/// The file format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Parquet,
    Avro,
}

impl Format {
    pub fn as_str(self) -> &'static str {
        match self {
            Format::Parquet => "parquet",
            Format::Avro => "avro",
        }
    }
}

/// How the exporter writes.
#[derive(Debug, Clone)]
pub struct Settings {
    pub dir: PathBuf,
    pub format: Format,
    pub avro_codec: AvroCodec,
    /// Records per file, at most.
    pub flush_size: usize,
    /// A file closes this long after it was opened.
    pub rotate_interval: Duration,
}

impl Settings {
    /// The settings of the pipeline's `export:` section.
    pub fn of(e: &config::Export) -> Settings {
        Settings {
            dir: PathBuf::from(&e.dir),
            format: match e.format {
                ExportFormat::Parquet => Format::Parquet,
                ExportFormat::Avro => Format::Avro,
            },
            avro_codec: match e.avro_codec {
                ExportAvroCodec::Null => AvroCodec::Null,
                ExportAvroCodec::Deflate => AvroCodec::Deflate,
            },
            flush_size: e.flush_size.max(1),
            rotate_interval: e.rotate_interval,
        }
    }
}

/// The topics `export:` names; by default the events, inbound and
/// message-log topics.
pub fn topics(p: &Pipeline) -> Vec<String> {
    match &p.export {
        Some(e) if !e.topics.is_empty() => e.topics.clone(),
        _ => vec![
            p.topics.events.clone(),
            p.topics.inbound.clone(),
            p.topics.log.clone(),
        ],
    }
}
