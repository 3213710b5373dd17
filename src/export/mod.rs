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
pub mod settings;
pub mod stage;
pub mod writer;

#[cfg(test)]
mod tests;

pub use avro::AvroCodec;
pub use settings::{topics, Format, Settings};
pub use writer::{ExportError, Exporter, Pushed};
