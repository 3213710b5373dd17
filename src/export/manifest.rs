//! The manifest: one JSON line per closed file, per partition, in
//! `DIR/_manifest/<topic>+<partition>.jsonl`; and the partition's lock
//! (`<topic>+<partition>.lock`, an advisory `flock`) that every writer
//! holds while it checks the partition's position, renames a file into
//! place and appends its line, so that replicas sharing a directory (or a
//! partition moving between them) never both close the same offsets.

use std::fs::{self, File, OpenOptions};
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::layout::manifest_dir;

/// One closed file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Entry {
    /// Its path under the export directory, `topic=…/dt=…/name`.
    pub file: String,
    pub topic: String,
    pub partition: i32,
    /// Offsets of its first and last record.
    pub first_offset: i64,
    pub last_offset: i64,
    /// Records in it (fewer than the offsets span when poison records
    /// were left out).
    pub records: u64,
    /// Its size, in bytes.
    pub bytes: u64,
    /// SHA-256 of its bytes, lower-case hex.
    pub sha256: String,
    /// `parquet` or `avro`.
    pub format: String,
    /// The Avro record name of its rows, such as `smsflow.DeliveryEvent`.
    pub schema: String,
    /// When it was closed (RFC 3339, UTC).
    pub closed_at: String,
    /// Written by recovery for a file found without its line (the
    /// exporter stopped between the rename and the manifest write).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub repaired: bool,
}

fn stem(topic: &str, partition: i32) -> String {
    format!("{topic}+{partition}")
}

/// The manifest file of a partition.
pub fn path(root: &Path, topic: &str, partition: i32) -> PathBuf {
    manifest_dir(root).join(format!("{}.jsonl", stem(topic, partition)))
}

/// The partition's lock, held until dropped.
pub struct Lock {
    _file: File,
}

impl Lock {
    /// Wait for the partition's lock (other processes and other writers
    /// of this one).
    pub fn acquire(root: &Path, topic: &str, partition: i32) -> std::io::Result<Lock> {
        let dir = manifest_dir(root);
        fs::create_dir_all(&dir)?;
        let file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(dir.join(format!("{}.lock", stem(topic, partition))))?;
        file.lock()?;
        Ok(Lock { _file: file })
    }
}

/// The partition's entries, in the order written. A line that does not
/// parse (a torn last line after a crash) is left out and reported.
pub fn read(root: &Path, topic: &str, partition: i32) -> std::io::Result<(Vec<Entry>, usize)> {
    let file = match File::open(path(root, topic, partition)) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok((Vec::new(), 0)),
        Err(e) => return Err(e),
    };
    let mut entries = Vec::new();
    let mut bad = 0;
    for line in BufReader::new(file).lines() {
        let line = line?;
        if line.trim().is_empty() {
            continue;
        }
        match serde_json::from_str::<Entry>(&line) {
            Ok(e) => entries.push(e),
            Err(_) => bad += 1,
        }
    }
    Ok((entries, bad))
}

/// Append `entry` and make it durable.
pub fn append(root: &Path, entry: &Entry) -> std::io::Result<()> {
    let dir = manifest_dir(root);
    fs::create_dir_all(&dir)?;
    let mut line = serde_json::to_string(entry).map_err(std::io::Error::other)?;
    line.push('\n');
    let mut f = OpenOptions::new().create(true).append(true).open(path(
        root,
        &entry.topic,
        entry.partition,
    ))?;
    f.write_all(line.as_bytes())?;
    f.sync_data()?;
    Ok(())
}

/// Replace the partition's manifest with `entries` (recovery dropping
/// lines of files that are gone): a new file, synced, renamed over.
pub fn rewrite(root: &Path, topic: &str, partition: i32, entries: &[Entry]) -> std::io::Result<()> {
    let dir = manifest_dir(root);
    fs::create_dir_all(&dir)?;
    let target = path(root, topic, partition);
    let tmp = dir.join(format!(".{}.jsonl.tmp", stem(topic, partition)));
    let mut text = String::new();
    for e in entries {
        text.push_str(&serde_json::to_string(e).map_err(std::io::Error::other)?);
        text.push('\n');
    }
    let mut f = File::create(&tmp)?;
    f.write_all(text.as_bytes())?;
    f.sync_all()?;
    fs::rename(&tmp, &target)?;
    sync_dir(&dir)
}

/// Make a directory's entries (a rename into it) durable.
pub fn sync_dir(dir: &Path) -> std::io::Result<()> {
    File::open(dir)?.sync_all()
}
