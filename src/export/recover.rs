//! A partition's position, read back from the export directory: the last
//! offset in a closed file. Files are the truth (as in Kafka Connect's S3
//! sink); the consumer group's committed offset only saves re-reading.
//!
//! Run with the partition's lock held ([`manifest::Lock`]), when a
//! partition is assigned and before every file is renamed into place, it
//! also repairs what a crash left:
//! - temporary files (a writer stopped before its rename) are removed;
//! - a closed file without its manifest line (stopped between the rename
//!   and the manifest write) gets its line, counted from the file;
//! - a manifest line whose file is gone (deleted by hand, or a rename
//!   that never reached the disk) is dropped, so that those offsets are
//!   exported again rather than silently missing;
//! - a closed file that cannot be read is renamed `.<name>.corrupt` and
//!   its offsets exported again.

use std::collections::HashSet;
use std::fs;
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};
use tracing::warn;

use super::layout::{self, Ext, FileName};
use super::manifest::{self, Entry};
use super::{avro, parquet};

/// What recovery found and did for one partition.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Recovered {
    /// The last offset in a closed file (none: nothing exported yet).
    pub position: Option<i64>,
    /// Temporary files removed.
    pub removed_temps: usize,
    /// Manifest lines written for files that had none.
    pub repaired: usize,
    /// Manifest lines dropped because their file is gone.
    pub forgotten: usize,
    /// Unreadable files set aside.
    pub corrupt: usize,
}

/// A closed file found on disk.
struct Found {
    path: PathBuf,
    relative: String,
    name: FileName,
}

/// Recover `topic`'s `partition` under `root`; `keep` is a temporary file
/// of the caller's own, not to be removed.
pub fn partition(
    root: &Path,
    topic: &str,
    partition: i32,
    keep: Option<&Path>,
) -> std::io::Result<Recovered> {
    let mut out = Recovered::default();
    let found = scan(root, topic, partition, keep, &mut out)?;
    let (entries, torn) = manifest::read(root, topic, partition)?;
    let on_disk: HashSet<&str> = found.iter().map(|f| f.relative.as_str()).collect();
    let (kept, gone): (Vec<Entry>, Vec<Entry>) = entries
        .into_iter()
        .partition(|e| on_disk.contains(e.file.as_str()));
    if !gone.is_empty() || torn > 0 {
        for e in &gone {
            warn!(file = %e.file, topic, partition, "a file in the manifest is gone; its offsets will be exported again");
        }
        out.forgotten = gone.len();
        manifest::rewrite(root, topic, partition, &kept)?;
    }
    let listed: HashSet<&str> = kept.iter().map(|e| e.file.as_str()).collect();
    let mut position = kept.iter().map(|e| e.last_offset).max();
    for f in &found {
        if listed.contains(f.relative.as_str()) {
            position = position.max(Some(f.name.last));
            continue;
        }
        match describe(&f.path, &f.relative, &f.name) {
            Ok(entry) => {
                warn!(file = %f.relative, "a closed file had no manifest line; adding it");
                manifest::append(root, &entry)?;
                out.repaired += 1;
                position = position.max(Some(f.name.last));
            }
            Err(e) => {
                warn!(file = %f.relative, error = %e, "an exported file cannot be read; setting it aside, its offsets will be exported again");
                let aside = f.path.with_file_name(format!(
                    ".{}.corrupt",
                    f.path.file_name().unwrap_or_default().to_string_lossy()
                ));
                fs::rename(&f.path, aside)?;
                out.corrupt += 1;
            }
        }
    }
    out.position = position;
    Ok(out)
}

/// The partition's closed files, removing its temporary ones on the way.
fn scan(
    root: &Path,
    topic: &str,
    partition: i32,
    keep: Option<&Path>,
    out: &mut Recovered,
) -> std::io::Result<Vec<Found>> {
    let topic_dir = layout::topic_dir(root, topic);
    let days = match fs::read_dir(&topic_dir) {
        Ok(d) => d,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e),
    };
    let temp = layout::temp_prefix(topic, partition);
    let mut found = Vec::new();
    for day in days {
        let day = day?;
        let day_name = day.file_name().to_string_lossy().into_owned();
        if !day_name.starts_with("dt=") || !day.file_type()?.is_dir() {
            continue;
        }
        for file in fs::read_dir(day.path())? {
            let file = file?;
            let name = file.file_name().to_string_lossy().into_owned();
            let path = file.path();
            if name.starts_with(&temp) && name.ends_with(".tmp") {
                if Some(path.as_path()) != keep {
                    match fs::remove_file(&path) {
                        Ok(()) => out.removed_temps += 1,
                        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                        Err(e) => return Err(e),
                    }
                }
                continue;
            }
            if let Some(parsed) = FileName::parse(&name) {
                if parsed.topic == topic && parsed.partition == partition {
                    found.push(Found {
                        path,
                        relative: format!("topic={topic}/{day_name}/{name}"),
                        name: parsed,
                    });
                }
            }
        }
    }
    found.sort_by_key(|f| f.name.first);
    Ok(found)
}

/// The manifest line of a file found without one.
fn describe(path: &Path, relative: &str, name: &FileName) -> Result<Entry, String> {
    let (records, schema) = match name.ext {
        Ext::Avro => avro::count(path)?,
        Ext::Parquet => parquet::count(path)?,
    };
    let bytes = fs::read(path).map_err(|e| e.to_string())?;
    Ok(Entry {
        file: relative.to_owned(),
        topic: name.topic.clone(),
        partition: name.partition,
        first_offset: name.first,
        last_offset: name.last,
        records,
        bytes: bytes.len() as u64,
        sha256: hex(&Sha256::digest(&bytes)),
        format: name.ext.as_str().to_owned(),
        schema,
        closed_at: chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
        repaired: true,
    })
}

/// Lower-case hex.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
