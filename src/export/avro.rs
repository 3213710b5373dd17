//! Avro object container files from datums as they came off the topic.
//!
//! apache-avro's `Writer` writes the header (the record's own schema,
//! the codec, the sync marker); the blocks are the records' datums as
//! read (already checked to decode against that schema by
//! [`super::decode::inspect`]), compressed with the same codec, so no
//! record is decoded and encoded again.

use std::io::Write;
use std::path::Path;

use apache_avro::{Codec, DeflateSettings, Writer};

use crate::schema::Known;

/// Uncompressed bytes per block, about (Avro's own writers use 16-64 KiB).
const BLOCK_BYTES: usize = 64 * 1024;

/// The codec of the files' blocks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AvroCodec {
    Null,
    Deflate,
}

impl AvroCodec {
    fn codec(self) -> Codec {
        match self {
            AvroCodec::Null => Codec::Null,
            AvroCodec::Deflate => Codec::Deflate(DeflateSettings::default()),
        }
    }
}

fn long(n: i64, out: &mut Vec<u8>) {
    // Avro's zig-zag varint.
    let mut z = ((n << 1) ^ (n >> 63)) as u64;
    loop {
        if z < 0x80 {
            out.push(z as u8);
            break;
        }
        out.push((z as u8 & 0x7f) | 0x80);
        z >>= 7;
    }
}

/// Write `datums` of `known`'s schema as one container file to `out`.
pub fn write<'a>(
    out: &mut impl Write,
    known: &Known,
    codec: AvroCodec,
    datums: impl IntoIterator<Item = &'a [u8]>,
) -> Result<(), String> {
    let marker = *uuid::Uuid::new_v4().as_bytes();
    let header = Writer::builder()
        .schema(&known.schema)
        .writer(Vec::new())
        .codec(codec.codec())
        .marker(marker)
        .build()
        .and_then(|mut w| w.flush().map(|_| w))
        .and_then(|w| w.into_inner())
        .map_err(|e| format!("cannot write the Avro header: {e}"))?;
    out.write_all(&header).map_err(|e| e.to_string())?;
    let mut block = Vec::with_capacity(BLOCK_BYTES + 4096);
    let mut count = 0i64;
    let mut frame = Vec::with_capacity(32);
    let mut emit = |block: &mut Vec<u8>, count: &mut i64| -> Result<(), String> {
        if *count == 0 {
            return Ok(());
        }
        codec
            .codec()
            .compress(block)
            .map_err(|e| format!("cannot compress a block: {e}"))?;
        frame.clear();
        long(*count, &mut frame);
        long(block.len() as i64, &mut frame);
        out.write_all(&frame)
            .and_then(|_| out.write_all(block))
            .and_then(|_| out.write_all(&marker))
            .map_err(|e| e.to_string())?;
        block.clear();
        *count = 0;
        Ok(())
    };
    for d in datums {
        block.extend_from_slice(d);
        count += 1;
        if block.len() >= BLOCK_BYTES {
            emit(&mut block, &mut count)?;
        }
    }
    emit(&mut block, &mut count)
}

/// The records in a container file (recovery repairing its manifest), and
/// the record name of its schema.
pub fn count(path: &Path) -> Result<(u64, String), String> {
    let file = std::fs::File::open(path).map_err(|e| e.to_string())?;
    let reader =
        apache_avro::Reader::new(std::io::BufReader::new(file)).map_err(|e| e.to_string())?;
    let name = match reader.writer_schema() {
        apache_avro::Schema::Record(r) => r.name.fullname(None),
        other => format!("{other:?}"),
    };
    let mut n = 0;
    for v in reader {
        v.map_err(|e| e.to_string())?;
        n += 1;
    }
    Ok((n, name))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::message::{Connection, DeliveryEvent, DeliveryStatus};
    use crate::schema;

    #[test]
    fn apache_avro_reads_back_what_was_written_with_either_codec() {
        let events: Vec<Vec<u8>> = (0..5000)
            .map(|i| {
                let e = DeliveryEvent {
                    message_id: format!("m{i}"),
                    connection: Connection::new("discard", "+254700000001"),
                    status: DeliveryStatus::Sent,
                    at: 1_772_409_600_000 + i,
                    provider_id: (i % 2 == 0).then(|| format!("p{i}")),
                    error: None,
                    provider_status: None,
                    campaign_id: None,
                    segments: 1,
                    app: None,
                    accepted_at: 0,
                    sent_at: 0,
                    report: false,
                };
                schema::event().encode(&e).unwrap()
            })
            .collect();
        let known = schema::split(&events[0]).unwrap().0;
        for codec in [AvroCodec::Null, AvroCodec::Deflate] {
            let dir = tempfile::tempdir().unwrap();
            let path = dir.path().join("f.avro");
            let mut f = std::fs::File::create(&path).unwrap();
            write(&mut f, known, codec, events.iter().map(|e| &e[10..])).unwrap();
            drop(f);
            let (n, name) = count(&path).unwrap();
            assert_eq!((n, name.as_str()), (5000, "smsflow.DeliveryEvent"));
            // Truncated: the reader notices.
            let bytes = std::fs::read(&path).unwrap();
            std::fs::write(&path, &bytes[..bytes.len() - 40]).unwrap();
            assert!(count(&path).is_err(), "{codec:?}");
        }
    }
}
