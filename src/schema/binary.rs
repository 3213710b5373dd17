//! The router's two records in Avro's binary encoding, read and written
//! field by field: the inbound datum it routes, and the routing fields it
//! appends ([`super::splice`]).
//!
//! Every other record goes through `serde_avro_fast`. These two are on the
//! path of every message, where its generic walk of the schema (a dispatch
//! per value, field names matched per record) costs as much as the routing
//! itself (docs/benchmarks.md; `cargo bench --bench micro -- 'codec/view|router/'`).
//! Both records are plain: strings, a long, two unions of null and string,
//! maps of strings. Reading them in the order the schema declares them is
//! the whole of Avro's rule for records.
//!
//! That order is today's `.avsc` files', checked by
//! `tests::the_layout_read_here_is_the_schemas`; a record with any other
//! fingerprint never reaches this module. The bytes are the library's:
//! `tests::reads_what_the_library_reads_and_refuses_what_it_refuses` feeds
//! both readers the same valid, cut and corrupted records.

use crate::message::{ConnectionView, FieldsView, InboundView};
use crate::sms::pattern::Captures;

/// A datum being read: what is left of it.
struct Reader<'a> {
    rest: &'a [u8],
}

impl<'a> Reader<'a> {
    /// A `long` (or `int`): a zig-zag varint of at most ten bytes.
    fn long(&mut self) -> Result<i64, String> {
        let mut value: u64 = 0;
        for (i, &b) in self.rest.iter().enumerate().take(10) {
            if i == 9 && b > 1 {
                return Err("a long overflows 64 bits".into());
            }
            value |= u64::from(b & 0x7F) << (7 * i);
            if b & 0x80 == 0 {
                self.rest = &self.rest[i + 1..];
                return Ok((value >> 1) as i64 ^ -((value & 1) as i64));
            }
        }
        // Ten bytes with their high bit set fail the overflow check above.
        Err("the record ends inside a long".into())
    }

    /// A `string`: a length, then that many bytes of UTF-8.
    fn str(&mut self) -> Result<&'a str, String> {
        let len = self.long()?;
        let len = usize::try_from(len).map_err(|_| format!("negative length {len}"))?;
        if len > self.rest.len() {
            return Err(format!(
                "a string of {len} bytes, but the record ends {} bytes on",
                self.rest.len()
            ));
        }
        let (bytes, rest) = self.rest.split_at(len);
        self.rest = rest;
        std::str::from_utf8(bytes).map_err(|e| format!("not UTF-8: {e}"))
    }

    /// A `["null", "string"]` union.
    fn optional_str(&mut self) -> Result<Option<&'a str>, String> {
        match self.long()? {
            0 => Ok(None),
            1 => self.str().map(Some),
            n => Err(format!("union branch {n} of [null, string]")),
        }
    }

    /// A `{"type": "map", "values": "string"}`: blocks of pairs, each
    /// counted (a negative count is followed by the block's size in bytes),
    /// up to an empty block.
    fn string_map(&mut self) -> Result<Vec<(&'a str, &'a str)>, String> {
        let mut pairs = Vec::new();
        loop {
            let count = match self.long()? {
                0 => return Ok(pairs),
                n if n < 0 => {
                    self.long()?;
                    n.unsigned_abs()
                }
                n => n.unsigned_abs(),
            };
            // Every pair takes two bytes at least: a longer count is a
            // broken record, refused before anything is set aside for it.
            if count > (self.rest.len() / 2) as u64 {
                return Err(format!(
                    "a map block of {count} pairs in {} bytes",
                    self.rest.len()
                ));
            }
            pairs.reserve(count as usize);
            for _ in 0..count {
                pairs.push((self.str()?, self.str()?));
            }
        }
    }
}

/// Name the field a reading error happened in.
fn at<T>(field: &str, read: Result<T, String>) -> Result<T, String> {
    read.map_err(|e| format!("field `{field}`: {e}"))
}

/// An `InboundMessage` datum (`schemas/inbound_message.avsc`), its strings
/// borrowed; the reason it is not one otherwise.
pub(super) fn read_inbound(datum: &[u8]) -> Result<InboundView<'_>, String> {
    let r = &mut Reader { rest: datum };
    let view = InboundView {
        id: at("id", r.str())?,
        connection: ConnectionView {
            backend: at("connection.backend", r.str())?,
            identity: at("connection.identity", r.str())?,
        },
        text: at("text", r.str())?,
        received_at: at("received_at", r.long())?,
        external_id: at("external_id", r.optional_str())?,
        fields: FieldsView::from_pairs(at("fields", r.string_map())?),
    };
    match r.rest.len() {
        0 => Ok(view),
        left => Err(format!("{left} bytes left over after the record")),
    }
}

/// Append `value` as a `long`.
fn write_long(out: &mut Vec<u8>, value: i64) {
    let mut zigzag = ((value << 1) ^ (value >> 63)) as u64;
    while zigzag >= 0x80 {
        out.push(zigzag as u8 | 0x80);
        zigzag >>= 7;
    }
    out.push(zigzag as u8);
}

fn write_str(out: &mut Vec<u8>, s: &str) {
    write_long(out, s.len() as i64);
    out.extend_from_slice(s.as_bytes());
}

/// Bytes [`write_long`] takes for a length.
fn long_len(value: usize) -> usize {
    let bits = usize::BITS - (value << 1 | 1).leading_zeros();
    bits.div_ceil(7) as usize
}

fn str_len(s: &str) -> usize {
    long_len(s.len()) + s.len()
}

/// The routing fields before `contact` (`schemas/routed_message.avsc`):
/// `app`, `route`, `rest` and `captures`.
pub(super) struct RoutingHead<'a, 'c> {
    pub app: &'a str,
    pub route: &'a str,
    pub rest: Option<&'a str>,
    pub captures: &'a Captures<'c>,
}

impl RoutingHead<'_, '_> {
    /// The bytes [`RoutingHead::write`] appends.
    pub fn encoded_len(&self) -> usize {
        let rest = self.rest.map_or(0, str_len);
        let captures = match self.captures.len() {
            0 => 0,
            n => {
                long_len(n)
                    + self
                        .captures
                        .iter()
                        .map(|(k, v)| str_len(k) + str_len(v))
                        .sum::<usize>()
            }
        };
        // A byte for `rest`'s branch, one for the map's empty last block.
        str_len(self.app) + str_len(self.route) + 1 + rest + captures + 1
    }

    /// Append the four fields, as a writer of the whole record would.
    pub fn write(&self, out: &mut Vec<u8>) {
        write_str(out, self.app);
        write_str(out, self.route);
        match self.rest {
            None => write_long(out, 0),
            Some(rest) => {
                write_long(out, 1);
                write_str(out, rest);
            }
        }
        // One block of every pair, then the empty block that ends a map.
        if !self.captures.is_empty() {
            write_long(out, self.captures.len() as i64);
            for (k, v) in self.captures.iter() {
                write_str(out, k);
                write_str(out, v);
            }
        }
        write_long(out, 0);
    }
}

#[cfg(test)]
mod tests;
