//! A campaign's audience from a CSV file, read as a stream: a header row
//! with a `phone` column (and optionally `language`), every other column a
//! template variable. RFC 4180 (quoted fields may hold commas, quotes and
//! newlines), UTF-8 with or without a byte-order mark, LF or CRLF.
//!
//! Each data line becomes a [`Recipient`] (its number normalised to E.164)
//! or a [`BadLine`] saying what is wrong with it; a bad line never stops the
//! reading. Duplicates are found with [`Seen`], in file order.

use std::collections::HashSet;
use std::io::{self, Read};

use csv::ByteRecord;
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use crate::sms::numbers::{normalize, Country};

/// One data line of the audience.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Recipient {
    /// The line the record starts on, 1-based; the header is line 1.
    pub line: u64,
    /// The number in E.164 (`+254712345678`); without a region, as cleaned.
    pub phone: String,
    /// The `language` column's value, if the file has one and it is not empty.
    pub language: Option<String>,
    /// Every other column: header name → value, in column order.
    pub vars: Vec<(String, String)>,
}

/// A data line that cannot be used, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BadLine {
    /// The line the record starts on, 1-based; the header is line 1.
    pub line: u64,
    pub reason: String,
}

/// Why an audience cannot be read at all.
#[derive(Debug, thiserror::Error)]
pub enum AudienceError {
    #[error("the audience has no `phone` column: its header has {columns:?} (the column names are compared without case and surrounding spaces)")]
    NoPhoneColumn { columns: Vec<String> },
    #[error("the audience's header names the column {name:?} twice (columns {first} and {second}): rename one")]
    DuplicateColumn {
        name: String,
        first: usize,
        second: usize,
    },
    #[error("the audience's header (line 1) is not UTF-8: invalid byte at offset {offset} of column {column}")]
    HeaderNotUtf8 { column: usize, offset: usize },
    #[error("reading the audience failed: {0}")]
    Io(#[from] io::Error),
}

impl From<csv::Error> for AudienceError {
    fn from(e: csv::Error) -> Self {
        // Records are read as bytes with `flexible`, so an I/O error is the
        // only one the reader can return; keep any other as one too.
        match e.into_kind() {
            csv::ErrorKind::Io(e) => AudienceError::Io(e),
            other => AudienceError::Io(io::Error::other(format!("{other:?}"))),
        }
    }
}

/// How many records [`CsvAudience::next_batch`] hands to rayon at once:
/// below this the batch is parsed on the calling thread.
const PARALLEL_FROM: usize = 2048;

/// A CSV audience being read, batch by batch (never the whole file at once).
pub struct CsvAudience<R: Read> {
    reader: csv::Reader<SkipBom<R>>,
    layout: Layout,
    done: bool,
}

/// What the header says about the columns: all a record needs to be parsed
/// (apart from the reader, so that parsing can run on other threads).
struct Layout {
    region: Option<Country>,
    /// Every header cell, trimmed, in column order.
    header: Vec<String>,
    phone: usize,
    language: Option<usize>,
    /// The variables: (column index, name), in column order.
    vars: Vec<(usize, String)>,
    /// Their names (for [`CsvAudience::columns`]).
    names: Vec<String>,
    /// 3 when the file starts with a byte-order mark: the csv reader's byte
    /// offsets count from after it.
    bom: u64,
}

impl<R: Read> CsvAudience<R> {
    /// Read the header of `input`. Numbers without a `+` are read as
    /// national numbers of `region` (when given) and written in E.164.
    /// An empty file or a header alone is an audience of 0 recipients.
    pub fn new(input: R, region: Option<Country>) -> Result<Self, AudienceError> {
        // Records end at `\n` only, and a `\r` before it is dropped by
        // `read_line`: with the csv crate's CRLF terminator a record ends at
        // the `\r` and its `\n` is counted in the next record's position,
        // so every line number after a CRLF would be one too small.
        let mut reader = csv::ReaderBuilder::new()
            .has_headers(false)
            .flexible(true)
            .terminator(csv::Terminator::Any(b'\n'))
            .from_reader(SkipBom::new(input));
        let mut raw = ByteRecord::new();
        let got_header = read_line(&mut reader, &mut raw)?;
        let mut header = Vec::with_capacity(raw.len());
        for (column, cell) in raw.iter().enumerate() {
            let text = std::str::from_utf8(cell).map_err(|e| AudienceError::HeaderNotUtf8 {
                column: column + 1,
                offset: e.valid_up_to(),
            })?;
            header.push(text.trim().to_owned());
        }
        let phone = find(&header, "phone")?;
        let language = find(&header, "language")?;
        let phone = match (phone, got_header) {
            (Some(p), _) => p,
            // An empty file: no columns, no recipients.
            (None, false) => 0,
            (None, true) => return Err(AudienceError::NoPhoneColumn { columns: header }),
        };
        let mut vars: Vec<(usize, String)> = Vec::new();
        for (i, h) in header.iter().enumerate() {
            // A header cell left empty (a trailing comma) names no variable.
            if i == phone || Some(i) == language || h.is_empty() {
                continue;
            }
            if let Some((first, _)) = vars.iter().find(|(_, v)| v == h) {
                return Err(AudienceError::DuplicateColumn {
                    name: h.clone(),
                    first: first + 1,
                    second: i + 1,
                });
            }
            vars.push((i, h.clone()));
        }
        let names = vars.iter().map(|(_, n)| n.clone()).collect();
        let bom = if reader.get_ref().bom { 3 } else { 0 };
        Ok(Self {
            reader,
            layout: Layout {
                region,
                header,
                phone,
                language,
                vars,
                names,
                bom,
            },
            done: !got_header,
        })
    }

    /// The variables the file gives: the header's names but `phone` and
    /// `language`, in column order.
    pub fn columns(&self) -> &[String] {
        &self.layout.names
    }

    /// Whether the file has a `language` column.
    pub fn has_language(&self) -> bool {
        self.layout.language.is_some()
    }

    /// The next at most `max` data lines (at least one), parsed and
    /// normalised (in parallel on rayon's current pool when there are many),
    /// in file order; an empty batch at the end of the file. An error means
    /// the input itself failed (I/O); bad lines are [`BadLine`]s.
    pub fn next_batch(
        &mut self,
        max: usize,
    ) -> Result<Vec<Result<Recipient, BadLine>>, AudienceError> {
        let raw = self.next_raw(max)?;
        Ok(self.parse_batch(raw))
    }

    /// The next at most `max` records (at least one), unparsed; empty at the
    /// end of the file. With [`CsvAudience::parse_batch`], for a caller that
    /// reads the next batch while the last one is parsed.
    pub fn next_raw(&mut self, max: usize) -> Result<Vec<ByteRecord>, AudienceError> {
        let mut out = Vec::new();
        while !self.done && out.len() < max.max(1) {
            let mut record = ByteRecord::new();
            if read_line(&mut self.reader, &mut record)? {
                out.push(record);
            } else {
                self.done = true;
            }
        }
        Ok(out)
    }

    /// Parse and normalise records read by [`CsvAudience::next_raw`], in
    /// order, in parallel on rayon's current pool when there are many.
    /// Each record is dropped once parsed.
    pub fn parse_batch(&self, raw: Vec<ByteRecord>) -> Vec<Result<Recipient, BadLine>> {
        let layout = &self.layout;
        if raw.len() < PARALLEL_FROM {
            raw.into_iter().map(|r| layout.parse(&r)).collect()
        } else {
            raw.into_par_iter().map(|r| layout.parse(&r)).collect()
        }
    }
}

/// Read the next record that is not a blank line into `record`, without
/// the `\r` of a CRLF line end; false at the end of the input.
fn read_line<R: Read>(
    reader: &mut csv::Reader<R>,
    record: &mut ByteRecord,
) -> Result<bool, csv::Error> {
    loop {
        if !reader.read_byte_record(record)? {
            return Ok(false);
        }
        let last = record.len().saturating_sub(1);
        if let Some(field) = record.get(last).and_then(|f| f.strip_suffix(b"\r")) {
            let field = field.to_vec();
            record.truncate(last);
            record.push_field(&field);
        }
        // A line holding only `\r` (an empty line of a CRLF file); the csv
        // reader skips the empty lines of an LF file itself.
        if !(record.len() == 1 && record[0].is_empty()) {
            return Ok(true);
        }
    }
}

/// The index of the column called `name` (without case and surrounding
/// spaces), if there is exactly one.
fn find(header: &[String], name: &str) -> Result<Option<usize>, AudienceError> {
    let mut found: Option<usize> = None;
    for (i, h) in header.iter().enumerate() {
        if h.eq_ignore_ascii_case(name) {
            if let Some(first) = found {
                return Err(AudienceError::DuplicateColumn {
                    name: name.to_owned(),
                    first: first + 1,
                    second: i + 1,
                });
            }
            found = Some(i);
        }
    }
    Ok(found)
}

impl Layout {
    fn parse(&self, record: &ByteRecord) -> Result<Recipient, BadLine> {
        let line = record.position().map_or(0, |p| p.line());
        let bad = |reason: String| BadLine { line, reason };
        if record.len() != self.header.len() {
            return Err(bad(format!(
                "wrong column count: expected {}, got {}",
                self.header.len(),
                record.len()
            )));
        }
        let text = |i: usize| -> Result<&str, BadLine> {
            std::str::from_utf8(&record[i]).map_err(|e| {
                let start = record.position().map_or(0, |p| p.byte()) + self.bom;
                bad(format!(
                    "invalid UTF-8 in column {:?}: byte {} of its value is not UTF-8 (the line starts at byte {start} of the file)",
                    self.header[i],
                    e.valid_up_to(),
                ))
            })
        };
        let raw_phone = text(self.phone)?.trim();
        if raw_phone.is_empty() {
            return Err(bad("empty phone".to_owned()));
        }
        let phone = normalize(raw_phone, self.region).map_err(|_| {
            bad(format!(
                "invalid number {raw_phone:?}: expected digits with an optional leading + (spaces, dashes, dots and parentheses are ignored), at most 20 digits"
            ))
        })?;
        if self.region.is_some() && !phone.starts_with('+') {
            return Err(bad(format!(
                "invalid number {raw_phone:?}: not a valid number of the campaign's region, nor international (write it with + and the country code)"
            )));
        }
        let language = match self.language {
            Some(i) => Some(text(i)?.trim())
                .filter(|l| !l.is_empty())
                .map(str::to_owned),
            None => None,
        };
        let mut vars = Vec::with_capacity(self.vars.len());
        for (i, name) in &self.vars {
            vars.push((name.clone(), text(*i)?.to_owned()));
        }
        Ok(Recipient {
            line,
            phone,
            language,
            vars,
        })
    }
}

/// A reader that drops a UTF-8 byte-order mark at the start of its input.
struct SkipBom<R> {
    inner: R,
    /// Bytes read ahead while looking for the mark, still to hand out.
    ahead: [u8; 3],
    start: usize,
    end: usize,
    checked: bool,
    /// Whether there was a mark.
    bom: bool,
}

impl<R> SkipBom<R> {
    fn new(inner: R) -> Self {
        Self {
            inner,
            ahead: [0; 3],
            start: 0,
            end: 0,
            checked: false,
            bom: false,
        }
    }
}

impl<R: Read> Read for SkipBom<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if !self.checked {
            while self.end < 3 {
                let n = self.inner.read(&mut self.ahead[self.end..])?;
                if n == 0 {
                    break;
                }
                self.end += n;
            }
            self.checked = true;
            if self.ahead[..self.end] == [0xEF, 0xBB, 0xBF] {
                self.start = 3;
                self.bom = true;
            }
        }
        if self.start < self.end {
            let n = buf.len().min(self.end - self.start);
            buf[..n].copy_from_slice(&self.ahead[self.start..self.start + n]);
            self.start += n;
            return Ok(n);
        }
        self.inner.read(buf)
    }
}

/// The numbers already met, to find duplicates: first come, first kept.
///
/// A number of at most 17 digits (every E.164 number) is kept as one `u64`:
/// its digits as an integer, plus its digit count (so `0712…` and `712…`
/// differ); the `+` is dropped, so `+2547…` and `2547…` are the same.
/// Longer ones (not E.164, rare) are kept as text.
#[derive(Debug, Default)]
pub struct Seen {
    numbers: HashSet<u64>,
    long: HashSet<Box<str>>,
}

impl Seen {
    pub fn new() -> Self {
        Self::default()
    }

    /// True the first time `phone` (normalised) is met, false after.
    pub fn first(&mut self, phone: &str) -> bool {
        let digits = phone.strip_prefix('+').unwrap_or(phone);
        match key(digits) {
            Some(k) => self.numbers.insert(k),
            None => self.long.insert(digits.into()),
        }
    }

    /// How many distinct numbers were met.
    pub fn len(&self) -> usize {
        self.numbers.len() + self.long.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// `digits` as an integer below 2^57 with its length in the top bits, for
/// 1 to 17 ASCII digits; `None` for anything else.
fn key(digits: &str) -> Option<u64> {
    if digits.is_empty() || digits.len() > 17 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let value = digits
        .bytes()
        .fold(0u64, |n, b| n * 10 + u64::from(b - b'0'));
    // 10^17 < 2^57: the value never reaches the length bits.
    Some(((digits.len() as u64) << 57) | value)
}
