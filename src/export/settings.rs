//! How the exporter writes, from the pipeline's `export:` section.

use std::path::PathBuf;
use std::time::Duration;

use super::avro::AvroCodec;
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
