//! Where exported files go: `DIR/topic=<topic>/dt=YYYY-MM-DD/<name>`, and
//! what their names say.
//!
//! A closed file is `<topic>+<partition>+<first>+<last>.<ext>`, offsets
//! zero-padded to 20 digits (so names sort by offset); while it is written
//! it is `.<topic>+<partition>+<first>.<unique>.tmp` in the same directory,
//! which no reader's `*.parquet`/`*.avro` glob matches and Spark skips (a
//! leading dot). The manifest and the partition locks live in
//! `DIR/_manifest/` (Spark and Hive skip names starting with `_`).

use std::path::{Path, PathBuf};

use chrono::{DateTime, NaiveDate};

/// The file formats written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ext {
    Avro,
    Parquet,
}

impl Ext {
    pub fn as_str(self) -> &'static str {
        match self {
            Ext::Avro => "avro",
            Ext::Parquet => "parquet",
        }
    }

    fn parse(s: &str) -> Option<Ext> {
        match s {
            "avro" => Some(Ext::Avro),
            "parquet" => Some(Ext::Parquet),
            _ => None,
        }
    }
}

/// A closed file's name, parsed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileName {
    pub topic: String,
    pub partition: i32,
    pub first: i64,
    pub last: i64,
    pub ext: Ext,
}

impl FileName {
    pub fn render(&self) -> String {
        format!(
            "{}+{}+{:020}+{:020}.{}",
            self.topic,
            self.partition,
            self.first,
            self.last,
            self.ext.as_str()
        )
    }

    /// Parse a closed file's name (`None`: not one of ours).
    pub fn parse(name: &str) -> Option<FileName> {
        let (stem, ext) = name.rsplit_once('.')?;
        let ext = Ext::parse(ext)?;
        // The topic may itself hold `+`: the numbers are the last three parts.
        let mut parts = stem.rsplitn(4, '+');
        let last = parts.next()?.parse().ok()?;
        let first = parts.next()?.parse().ok()?;
        let partition = parts.next()?.parse().ok()?;
        let topic = parts.next()?.to_owned();
        (!topic.is_empty() && first <= last).then_some(FileName {
            topic,
            partition,
            first,
            last,
            ext,
        })
    }
}

/// The directory of one topic's files of one day.
pub fn day_dir(root: &Path, topic: &str, dt: NaiveDate) -> PathBuf {
    root.join(format!("topic={topic}"))
        .join(format!("dt={}", dt.format("%Y-%m-%d")))
}

/// The directory of one topic's files.
pub fn topic_dir(root: &Path, topic: &str) -> PathBuf {
    root.join(format!("topic={topic}"))
}

/// Where manifests and locks live.
pub fn manifest_dir(root: &Path) -> PathBuf {
    root.join("_manifest")
}

/// The prefix of a partition's temporary files.
pub fn temp_prefix(topic: &str, partition: i32) -> String {
    format!(".{topic}+{partition}+")
}

/// A temporary name for a file starting at `first`, unique to this writer.
pub fn temp_name(topic: &str, partition: i32, first: i64) -> String {
    format!(
        "{}{first:020}.{}.tmp",
        temp_prefix(topic, partition),
        uuid::Uuid::new_v4().simple()
    )
}

/// The day (UTC) of a time in milliseconds since the epoch; out-of-range
/// times fall on 1970-01-01.
pub fn day_of(millis: i64) -> NaiveDate {
    DateTime::from_timestamp_millis(millis)
        .unwrap_or_default()
        .date_naive()
}

/// The path of a closed file relative to the export root, with `/`.
pub fn relative(topic: &str, dt: NaiveDate, name: &str) -> String {
    format!("topic={topic}/dt={}/{name}", dt.format("%Y-%m-%d"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_strangers_are_not_ours() {
        let n = FileName {
            topic: "sms.events".into(),
            partition: 3,
            first: 42,
            last: 1041,
            ext: Ext::Parquet,
        };
        let s = n.render();
        assert_eq!(
            s,
            "sms.events+3+00000000000000000042+00000000000000001041.parquet"
        );
        assert_eq!(FileName::parse(&s), Some(n));
        let plus = FileName {
            topic: "a+b".into(),
            partition: 0,
            first: 0,
            last: 0,
            ext: Ext::Avro,
        };
        assert_eq!(FileName::parse(&plus.render()), Some(plus));
        for bad in [
            "sms.events+3+42.parquet",
            "sms.events+3+9+8.parquet",
            "sms.events+x+1+2.parquet",
            "sms.events+3+1+2.csv",
            ".sms.events+3+00000000000000000001.abc.tmp",
            "+3+1+2.avro",
        ] {
            assert_eq!(FileName::parse(bad), None, "{bad}");
        }
    }

    #[test]
    fn days_are_utc() {
        assert_eq!(day_of(0).to_string(), "1970-01-01");
        // 2026-03-01T23:59:59.999Z and one millisecond later.
        assert_eq!(day_of(1_772_409_599_999).to_string(), "2026-03-01");
        assert_eq!(day_of(1_772_409_600_000).to_string(), "2026-03-02");
        assert_eq!(day_of(i64::MAX).to_string(), "1970-01-01");
    }
}
