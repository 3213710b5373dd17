//! The pipeline file's `export:` section: the `export` stage (and the
//! defaults of `smsflow export`), which writes topics to Parquet or Avro
//! files that DuckDB, ClickHouse, pandas and Spark read.

use std::time::Duration;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::value::{humantime_serde_compat, HumanDuration};

/// `export:` — topics to files, exactly once. Off unless the section is
/// given; it needs `dir`.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct Export {
    /// The directory the files go to, Hive-style:
    /// `<dir>/topic=<topic>/dt=YYYY-MM-DD/<topic>+<partition>+<first>+<last>.<ext>`,
    /// with a manifest per partition in `<dir>/_manifest/`. Every replica
    /// of the stage must see the same directory.
    pub dir: String,
    /// `parquet` or `avro` (Avro object container files).
    pub format: ExportFormat,
    /// The codec of Avro files: `null` (none) or `deflate`.
    #[serde(deserialize_with = "null_codec")]
    #[schemars(with = "Option<ExportAvroCodec>")]
    pub avro_codec: ExportAvroCodec,
    /// The topics to export, by name. Default: the events, inbound and
    /// message-log topics (`topics.events`, `topics.inbound`, `topics.log`).
    pub topics: Vec<String>,
    /// Records per file, at most: a file is closed when it has this many.
    pub flush_size: usize,
    /// A file is closed this long after it was opened, however few records
    /// it has (files of a quiet topic do not stay open).
    #[serde(with = "humantime_serde_compat")]
    #[schemars(with = "HumanDuration")]
    pub rotate_interval: Duration,
}

impl Default for Export {
    fn default() -> Self {
        Export {
            dir: String::new(),
            format: ExportFormat::Parquet,
            avro_codec: ExportAvroCodec::Null,
            topics: Vec::new(),
            flush_size: 100_000,
            rotate_interval: Duration::from_secs(600),
        }
    }
}

/// `avro_codec: null` (YAML's null, as Avro names the codec) is the null codec.
fn null_codec<'de, D: serde::Deserializer<'de>>(d: D) -> Result<ExportAvroCodec, D::Error> {
    Ok(Option::<ExportAvroCodec>::deserialize(d)?.unwrap_or(ExportAvroCodec::Null))
}

/// The format of exported files.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum ExportFormat {
    Parquet,
    Avro,
}

/// The codec of exported Avro files.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum ExportAvroCodec {
    /// No compression (written `null`, as Avro names it; `none` also works).
    #[serde(alias = "none")]
    Null,
    Deflate,
}
