//! The exporter on a directory: rotation, recovery after a crash, and two
//! writers on one partition.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use ::parquet::basic::{LogicalType, TimeUnit};
use ::parquet::file::reader::{FileReader, SerializedFileReader};
use sha2::Digest;

use super::avro::AvroCodec;
use super::layout;
use super::layout::FileName;
use super::manifest::{self, Entry};
use super::recover;
use super::settings::{Format, Settings};
use super::writer::{Exporter, Pushed};
use crate::message::{Connection, DeliveryEvent, DeliveryStatus};
use crate::schema;

const DAY: i64 = 86_400_000;
/// 2026-03-02T00:00:00Z.
const T0: i64 = 1_772_409_600_000;

fn event(i: i64, at: i64) -> Vec<u8> {
    schema::event()
        .encode(&DeliveryEvent {
            message_id: format!("m{i}"),
            connection: Connection::new("discard", "+254700000001"),
            status: DeliveryStatus::Delivered,
            at,
            provider_id: Some(format!("p{i}")),
            error: None,
            provider_status: None,
            campaign_id: None,
            segments: 1,
            app: None,
            accepted_at: 0,
            sent_at: 0,
            report: false,
        })
        .unwrap()
}

fn settings(dir: &Path, format: Format, flush_size: usize) -> Settings {
    Settings {
        dir: dir.to_owned(),
        format,
        avro_codec: AvroCodec::Deflate,
        flush_size,
        rotate_interval: Duration::from_secs(3600),
    }
}

fn topic() -> Arc<str> {
    Arc::from("sms.events")
}

/// Push offsets `range` of partition 0 (epoch 0); the files closed.
fn push(x: &mut Exporter, range: std::ops::Range<i64>, at: i64) -> Vec<Entry> {
    let mut closed = Vec::new();
    for o in range {
        x.push(&topic(), 0, o, Some(0), &event(o, at), &mut closed)
            .unwrap();
    }
    closed
}

fn ranges(entries: &[Entry]) -> Vec<(i64, i64, u64)> {
    entries
        .iter()
        .map(|e| (e.first_offset, e.last_offset, e.records))
        .collect()
}

fn manifest_ranges(dir: &Path) -> Vec<(i64, i64, u64)> {
    ranges(&manifest::read(dir, "sms.events", 0).unwrap().0)
}

#[test]
fn files_rotate_by_records_by_day_and_by_time() {
    let d = tempfile::tempdir().unwrap();
    let mut x = Exporter::new(settings(d.path(), Format::Parquet, 10));
    let closed = push(&mut x, 0..25, T0);
    assert_eq!(ranges(&closed), [(0, 9, 10), (10, 19, 10)]);
    // The next day closes the open file of the day before.
    let closed = push(&mut x, 25..27, T0 + DAY);
    assert_eq!(ranges(&closed), [(20, 24, 5)]);
    assert!(closed[0]
        .file
        .starts_with("topic=sms.events/dt=2026-03-02/"));
    // Time: nothing is due before rotate_interval, then the open file closes.
    let mut closed = Vec::new();
    x.tick(Instant::now(), |_, _| Some(0), &mut closed).unwrap();
    assert!(closed.is_empty());
    let later = Instant::now() + Duration::from_secs(3600);
    x.tick(later, |_, _| Some(0), &mut closed).unwrap();
    assert_eq!(ranges(&closed), [(25, 26, 2)]);
    assert_eq!(closed[0].file.split('/').nth(1), Some("dt=2026-03-03"));
    assert_eq!(manifest_ranges(d.path()).len(), 4);
    // Each manifest line says what the file holds.
    for e in manifest::read(d.path(), "sms.events", 0).unwrap().0 {
        let bytes = std::fs::read(d.path().join(&e.file)).unwrap();
        assert_eq!(bytes.len() as u64, e.bytes);
        assert_eq!(recover::hex(&sha2::Sha256::digest(&bytes)), e.sha256);
        let (n, schema) = super::parquet::count(&d.path().join(&e.file)).unwrap();
        assert_eq!((n, schema.as_str()), (e.records, "smsflow.DeliveryEvent"));
    }
}

#[test]
fn parquet_columns_have_utc_millisecond_timestamps_and_string_enums() {
    let d = tempfile::tempdir().unwrap();
    let mut x = Exporter::new(settings(d.path(), Format::Parquet, 3));
    let closed = push(&mut x, 0..3, T0);
    let file = std::fs::File::open(d.path().join(&closed[0].file)).unwrap();
    let reader = SerializedFileReader::new(file).unwrap();
    let schema = reader.metadata().file_metadata().schema_descr_ptr();
    let column = |name: &str| {
        (0..schema.num_columns())
            .map(|i| schema.column(i))
            .find(|c| c.path().string() == name)
            .unwrap_or_else(|| panic!("no column {name}"))
    };
    assert_eq!(
        column("at").logical_type_ref(),
        Some(&LogicalType::timestamp(true, TimeUnit::MILLIS))
    );
    assert_eq!(
        column("status").logical_type_ref(),
        Some(&LogicalType::String)
    );
    assert!(column("provider_id").self_type().is_optional());
    assert!(!column("message_id").self_type().is_optional());
    assert_eq!(reader.metadata().file_metadata().num_rows(), 3);
}

#[test]
fn a_restart_resumes_after_the_last_closed_file_and_removes_temporary_files() {
    let d = tempfile::tempdir().unwrap();
    let mut x = Exporter::new(settings(d.path(), Format::Avro, 10));
    push(&mut x, 0..25, T0);
    drop(x); // a crash: 20..24 were only in memory
             // A temporary file left by a writer that died mid-write.
    let day = layout::day_dir(d.path(), "sms.events", layout::day_of(T0));
    let leftover = day.join(layout::temp_name("sms.events", 0, 20));
    std::fs::write(&leftover, b"half a file").unwrap();
    let mut x = Exporter::new(settings(d.path(), Format::Avro, 10));
    // The group's committed offset is behind: it reads from 0 again.
    let closed = push(&mut x, 0..30, T0);
    assert_eq!(ranges(&closed), [(20, 29, 10)]);
    assert!(!leftover.exists(), "the temporary file is removed");
    assert_eq!(
        manifest_ranges(d.path()),
        [(0, 9, 10), (10, 19, 10), (20, 29, 10)]
    );
}

#[test]
fn a_file_renamed_without_its_manifest_line_is_added_to_the_manifest() {
    let d = tempfile::tempdir().unwrap();
    let mut x = Exporter::new(settings(d.path(), Format::Parquet, 10));
    push(&mut x, 0..20, T0);
    // The crash came between the second rename and its manifest line.
    let (mut entries, _) = manifest::read(d.path(), "sms.events", 0).unwrap();
    let second = entries.pop().unwrap();
    manifest::rewrite(d.path(), "sms.events", 0, &entries).unwrap();
    let r = recover::partition(d.path(), "sms.events", 0, None).unwrap();
    assert_eq!((r.position, r.repaired), (Some(19), 1));
    let (entries, _) = manifest::read(d.path(), "sms.events", 0).unwrap();
    let repaired = &entries[1];
    assert!(repaired.repaired);
    assert_eq!(
        (
            &repaired.file,
            repaired.records,
            repaired.bytes,
            &repaired.sha256
        ),
        (&second.file, second.records, second.bytes, &second.sha256)
    );
    // Recovering again changes nothing.
    let again = recover::partition(d.path(), "sms.events", 0, None).unwrap();
    assert_eq!((again.position, again.repaired), (Some(19), 0));
}

#[test]
fn a_manifest_ahead_of_the_files_is_cut_back_and_those_offsets_exported_again() {
    let d = tempfile::tempdir().unwrap();
    let mut x = Exporter::new(settings(d.path(), Format::Parquet, 10));
    push(&mut x, 0..30, T0);
    let (entries, _) = manifest::read(d.path(), "sms.events", 0).unwrap();
    std::fs::remove_file(d.path().join(&entries[2].file)).unwrap();
    // A torn last line, as a crash mid-append could leave.
    std::fs::OpenOptions::new()
        .append(true)
        .open(manifest::path(d.path(), "sms.events", 0))
        .and_then(|mut f| std::io::Write::write_all(&mut f, b"{\"file\":\"topic="))
        .unwrap();
    let r = recover::partition(d.path(), "sms.events", 0, None).unwrap();
    assert_eq!((r.position, r.forgotten), (Some(19), 1));
    assert_eq!(manifest_ranges(d.path()), [(0, 9, 10), (10, 19, 10)]);
    let mut x = Exporter::new(settings(d.path(), Format::Parquet, 10));
    let closed = push(&mut x, 0..30, T0);
    assert_eq!(ranges(&closed), [(20, 29, 10)]);
}

#[test]
fn an_unreadable_file_is_set_aside_and_its_offsets_exported_again() {
    let d = tempfile::tempdir().unwrap();
    let mut x = Exporter::new(settings(d.path(), Format::Parquet, 10));
    push(&mut x, 0..10, T0);
    let (entries, _) = manifest::read(d.path(), "sms.events", 0).unwrap();
    let path = d.path().join(&entries[0].file);
    manifest::rewrite(d.path(), "sms.events", 0, &[]).unwrap();
    std::fs::write(&path, b"PAR1 not really").unwrap();
    let r = recover::partition(d.path(), "sms.events", 0, None).unwrap();
    assert_eq!((r.position, r.corrupt), (None, 1));
    assert!(!path.exists());
}

#[test]
fn two_writers_on_one_partition_never_export_an_offset_twice() {
    let d = tempfile::tempdir().unwrap();
    // A held 0..19 when the partition moved; B (its new owner) closed 0..9.
    let mut a = Exporter::new(settings(d.path(), Format::Parquet, 20));
    let mut b = Exporter::new(settings(d.path(), Format::Parquet, 10));
    assert!(push(&mut a, 0..19, T0).is_empty());
    assert_eq!(ranges(&push(&mut b, 0..10, T0)), [(0, 9, 10)]);
    // A's file closes: only what B has not exported goes in.
    assert_eq!(ranges(&push(&mut a, 19..20, T0)), [(10, 19, 10)]);
    // B goes on, unaware: at its close it finds 10..19 taken and leaves
    // them out; from then on it skips what is exported.
    assert!(push(&mut b, 10..20, T0).is_empty());
    let mut closed = Vec::new();
    let skipped = b
        .push(&topic(), 0, 15, Some(0), &event(15, T0), &mut closed)
        .unwrap();
    assert!(matches!(skipped, Pushed::Skipped), "{skipped:?}");
    push(&mut b, 20..25, T0);
    b.close_all(&mut closed).unwrap();
    assert_eq!(ranges(&closed), [(20, 24, 5)]);
    let names: Vec<FileName> = manifest::read(d.path(), "sms.events", 0)
        .unwrap()
        .0
        .iter()
        .map(|e| FileName::parse(e.file.rsplit('/').next().unwrap()).unwrap())
        .collect();
    assert_eq!(
        names.iter().map(|n| (n.first, n.last)).collect::<Vec<_>>(),
        [(0, 9), (10, 19), (20, 24)]
    );
}

#[test]
fn poison_is_reported_and_a_new_schema_starts_a_new_file() {
    let d = tempfile::tempdir().unwrap();
    let mut x = Exporter::new(settings(d.path(), Format::Avro, 100));
    let mut closed = Vec::new();
    x.push(&topic(), 0, 0, Some(0), &event(0, T0), &mut closed)
        .unwrap();
    let p = x
        .push(&topic(), 0, 1, Some(0), b"{\"json\": true}", &mut closed)
        .unwrap();
    assert!(
        matches!(p, Pushed::Poison(ref why) if !why.is_empty()),
        "{p:?}"
    );
    let log = crate::message::LogEntry {
        message_id: "m2".into(),
        direction: crate::message::Direction::In,
        connection: Connection::new("discard", "+254700000001"),
        contact_id: None,
        contact_name: String::new(),
        text: "hello".into(),
        at: T0,
        app: None,
        in_response_to: None,
    };
    let bytes = schema::log().encode(&log).unwrap();
    x.push(&topic(), 0, 2, Some(0), &bytes, &mut closed)
        .unwrap();
    assert_eq!(ranges(&closed), [(0, 0, 1)], "the schema changed");
    x.close_all(&mut closed).unwrap();
    assert_eq!(ranges(&closed), [(0, 0, 1), (2, 2, 1)]);
    assert_eq!(closed[1].schema, "smsflow.LogEntry");
}
