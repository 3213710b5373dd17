//! The exporter's core, free of any bus: records in, closed files out.
//!
//! Per partition it keeps the position recovered from the directory and
//! the open file (in memory: the datums and their offsets). A file closes
//! when it holds `flush_size` records, when it is `rotate_interval` old,
//! when the next record falls on another day or was written with another
//! schema, and at the end. Closing writes a temporary file, syncs it,
//! takes the partition's lock, recovers the partition's position again
//! (another replica may have closed some of these offsets meanwhile: those
//! records are left out), renames the file into place, syncs the
//! directory, appends the manifest line, and only then reports the file,
//! so that the caller commits its offsets.

use std::collections::HashMap;
use std::fs::{self, File};
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use chrono::NaiveDate;
use sha2::{Digest, Sha256};

use super::decode::{self, Row};
use super::layout::{self, Ext, FileName};
use super::manifest::{self, Entry, Lock};
use super::recover::{self, hex};
use super::settings::{Format, Settings};
use super::{avro, parquet};
use crate::schema::Known;

/// What became of one record.
#[derive(Debug)]
pub enum Pushed {
    /// Held in an open file.
    Buffered,
    /// At or before the partition's position: already in a closed file.
    Skipped,
    /// Not a record of a known schema, or a datum that does not decode:
    /// left out, with the reason (the caller dead-letters it).
    Poison(String),
}

/// Why the exporter cannot go on (the directory cannot be written).
#[derive(Debug, thiserror::Error)]
#[error("export to {dir}: {message}")]
pub struct ExportError {
    pub dir: String,
    pub message: String,
}

/// A partition's state.
struct Part {
    /// The assignment this state was recovered under.
    epoch: Option<u64>,
    /// The last offset in a closed file.
    position: Option<i64>,
    open: Option<Open>,
}

/// A file being filled.
struct Open {
    known: &'static Known,
    dt: NaiveDate,
    opened: Instant,
    /// The datums, back to back, and each one's offset and end.
    bytes: Vec<u8>,
    rows: Vec<(i64, usize)>,
}

impl Open {
    fn datums(&self) -> impl Iterator<Item = &[u8]> {
        let mut start = 0;
        self.rows.iter().map(move |(_, end)| {
            let d = &self.bytes[start..*end];
            start = *end;
            d
        })
    }

    /// Keep only the records after `position`.
    fn after(&mut self, position: i64) {
        let Some(cut) = self.rows.iter().position(|(o, _)| *o > position) else {
            self.rows.clear();
            self.bytes.clear();
            return;
        };
        let from = if cut == 0 { 0 } else { self.rows[cut - 1].1 };
        self.bytes.drain(..from);
        self.rows.drain(..cut);
        for r in &mut self.rows {
            r.1 -= from;
        }
    }
}

/// Turns records into closed files under one directory.
pub struct Exporter {
    settings: Settings,
    parts: HashMap<(Arc<str>, i32), Part>,
}

impl Exporter {
    pub fn new(settings: Settings) -> Exporter {
        Exporter {
            settings,
            parts: HashMap::new(),
        }
    }

    pub fn settings(&self) -> &Settings {
        &self.settings
    }

    fn error(&self, message: impl std::fmt::Display) -> ExportError {
        ExportError {
            dir: self.settings.dir.display().to_string(),
            message: message.to_string(),
        }
    }

    /// Take `record` (read under assignment `epoch`); closed files are
    /// pushed to `closed`, in order.
    #[allow(clippy::too_many_arguments)]
    pub fn push(
        &mut self,
        topic: &Arc<str>,
        partition: i32,
        offset: i64,
        epoch: Option<u64>,
        payload: &[u8],
        closed: &mut Vec<Entry>,
    ) -> Result<Pushed, ExportError> {
        let key = (topic.clone(), partition);
        let stale = self.parts.get(&key).is_none_or(|p| p.epoch != epoch);
        if stale {
            // New to this member (or given back to it): what another
            // member (or an earlier life of this one) exported counts.
            let _lock = Lock::acquire(&self.settings.dir, topic, partition)
                .map_err(|e| self.error(format!("cannot lock {topic}/{partition}: {e}")))?;
            let r = recover::partition(&self.settings.dir, topic, partition, None)
                .map_err(|e| self.error(format!("cannot recover {topic}/{partition}: {e}")))?;
            tracing::info!(topic = %topic, partition, position = ?r.position, removed_temps = r.removed_temps, repaired = r.repaired, forgotten = r.forgotten, "export position recovered");
            self.parts.insert(
                key.clone(),
                Part {
                    epoch,
                    position: r.position,
                    open: None,
                },
            );
        }
        let part = self.parts.get_mut(&key).expect("inserted above");
        if part.position.is_some_and(|p| offset <= p) {
            return Ok(Pushed::Skipped);
        }
        let row = match decode::inspect(payload) {
            Ok(row) => row,
            Err(reason) => return Ok(Pushed::Poison(reason)),
        };
        let dt = layout::day_of(
            row.millis
                .unwrap_or_else(|| chrono::Utc::now().timestamp_millis()),
        );
        let rotate = part
            .open
            .as_ref()
            .is_some_and(|o| !std::ptr::eq(o.known, row.known) || o.dt != dt);
        if rotate {
            self.close(&key, closed)?;
        }
        let part = self.parts.get_mut(&key).expect("inserted above");
        let open = part.open.get_or_insert_with(|| Open {
            known: row.known,
            dt,
            opened: Instant::now(),
            bytes: Vec::new(),
            rows: Vec::new(),
        });
        append(open, offset, &row);
        if open.rows.len() >= self.settings.flush_size {
            self.close(&key, closed)?;
        }
        Ok(Pushed::Buffered)
    }

    /// Close the files open for `rotate_interval` or longer, and forget
    /// the partitions `assigned` says this member no longer holds.
    pub fn tick(
        &mut self,
        now: Instant,
        assigned: impl Fn(&str, i32) -> Option<u64>,
        closed: &mut Vec<Entry>,
    ) -> Result<(), ExportError> {
        self.parts
            .retain(|(t, p), part| part.epoch.is_some() && assigned(t, *p) == part.epoch);
        let due: Vec<_> = self
            .parts
            .iter()
            .filter(|(_, p)| {
                p.open.as_ref().is_some_and(|o| {
                    now.saturating_duration_since(o.opened) >= self.settings.rotate_interval
                })
            })
            .map(|(k, _)| k.clone())
            .collect();
        for key in due {
            self.close(&key, closed)?;
        }
        Ok(())
    }

    /// Close every open file (the end of a one-off export, a drain).
    pub fn close_all(&mut self, closed: &mut Vec<Entry>) -> Result<(), ExportError> {
        let mut keys: Vec<_> = self.parts.keys().cloned().collect();
        keys.sort();
        for key in keys {
            self.close(&key, closed)?;
        }
        Ok(())
    }

    /// Records held in open files.
    pub fn buffered(&self) -> usize {
        self.parts
            .values()
            .filter_map(|p| p.open.as_ref())
            .map(|o| o.rows.len())
            .sum()
    }

    fn close(&mut self, key: &(Arc<str>, i32), closed: &mut Vec<Entry>) -> Result<(), ExportError> {
        let Some(part) = self.parts.get_mut(key) else {
            return Ok(());
        };
        let Some(mut open) = part.open.take() else {
            return Ok(());
        };
        let (topic, partition) = (&*key.0, key.1);
        let root = self.settings.dir.clone();
        let err = |m: String| ExportError {
            dir: root.display().to_string(),
            message: m,
        };
        loop {
            let (Some(&(first, _)), Some(&(last, _))) = (open.rows.first(), open.rows.last())
            else {
                return Ok(()); // every record was exported by another writer
            };
            let dir = layout::day_dir(&root, topic, open.dt);
            make_dirs(&root, &dir)
                .map_err(|e| err(format!("cannot create {}: {e}", dir.display())))?;
            let tmp = dir.join(layout::temp_name(topic, partition, first));
            let written = write_file(&tmp, &open, &self.settings)
                .map_err(|e| err(format!("cannot write {}: {e}", tmp.display())));
            let (bytes, sha256) = match written {
                Ok(w) => w,
                Err(e) => {
                    let _ = fs::remove_file(&tmp);
                    return Err(e);
                }
            };
            let lock = Lock::acquire(&root, topic, partition)
                .map_err(|e| err(format!("cannot lock {topic}/{partition}: {e}")))?;
            let r = recover::partition(&root, topic, partition, Some(&tmp))
                .map_err(|e| err(format!("cannot recover {topic}/{partition}: {e}")))?;
            if r.position.is_some_and(|p| p >= first) {
                // Another writer closed some of these offsets meanwhile.
                drop(lock);
                let _ = fs::remove_file(&tmp);
                let p = r.position.unwrap_or(-1);
                tracing::warn!(
                    topic,
                    partition,
                    position = p,
                    first,
                    last,
                    "offsets already exported by another writer; leaving them out"
                );
                open.after(p);
                part.position = r.position;
                continue;
            }
            let name = FileName {
                topic: topic.to_owned(),
                partition,
                first,
                last,
                ext: match self.settings.format {
                    Format::Parquet => Ext::Parquet,
                    Format::Avro => Ext::Avro,
                },
            }
            .render();
            fs::rename(&tmp, dir.join(&name))
                .and_then(|_| manifest::sync_dir(&dir))
                .map_err(|e| err(format!("cannot rename {} into place: {e}", tmp.display())))?;
            let entry = Entry {
                file: layout::relative(topic, open.dt, &name),
                topic: topic.to_owned(),
                partition,
                first_offset: first,
                last_offset: last,
                records: open.rows.len() as u64,
                bytes,
                sha256,
                format: self.settings.format.as_str().to_owned(),
                schema: open.known.name.clone(),
                closed_at: chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
                repaired: false,
            };
            manifest::append(&root, &entry)
                .map_err(|e| err(format!("cannot write the manifest: {e}")))?;
            drop(lock);
            part.position = Some(last);
            closed.push(entry);
            return Ok(());
        }
    }
}

fn append(open: &mut Open, offset: i64, row: &Row<'_>) {
    open.bytes.extend_from_slice(&row.datum);
    open.rows.push((offset, open.bytes.len()));
}

/// Create `dir` and sync the directories above it that it added, up to `root`.
fn make_dirs(root: &Path, dir: &Path) -> std::io::Result<()> {
    if dir.is_dir() {
        return Ok(());
    }
    fs::create_dir_all(dir)?;
    let mut at = dir.parent();
    while let Some(d) = at {
        manifest::sync_dir(d)?;
        if d == root {
            break;
        }
        at = d.parent();
    }
    Ok(())
}

/// A writer that hashes what goes through it.
struct Hashing<W> {
    inner: W,
    hash: Sha256,
    bytes: u64,
}

impl<W: Write> Write for Hashing<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hash.update(&buf[..n]);
        self.bytes += n as u64;
        Ok(n)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

/// Write the open file to `path` and sync it: its size and SHA-256.
fn write_file(path: &PathBuf, open: &Open, s: &Settings) -> Result<(u64, String), String> {
    let file = File::create(path).map_err(|e| e.to_string())?;
    let mut out = Hashing {
        inner: BufWriter::with_capacity(1 << 20, file),
        hash: Sha256::new(),
        bytes: 0,
    };
    match s.format {
        Format::Avro => avro::write(&mut out, open.known, s.avro_codec, open.datums())?,
        Format::Parquet => {
            out = parquet::write(out, open.known, open.datums())?;
        }
    }
    out.flush().map_err(|e| e.to_string())?;
    let Hashing { inner, hash, bytes } = out;
    let file = inner.into_inner().map_err(|e| e.to_string())?;
    file.sync_all().map_err(|e| e.to_string())?;
    Ok((bytes, hex(&hash.finalize())))
}
