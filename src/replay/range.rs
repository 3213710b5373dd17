//! The range a replay reads: its bounds as the operator gives them (a time,
//! RFC 3339 or a duration ago; an offset per partition), and resolved
//! against a topic's partitions into an offset range per partition.

use std::collections::BTreeMap;

use anyhow::{bail, Context};

/// A time bound, in milliseconds since the Unix epoch.
pub fn parse_time(arg: &str, value: &str, now_ms: i64) -> anyhow::Result<i64> {
    if let Ok(t) = chrono::DateTime::parse_from_rfc3339(value) {
        return Ok(t.timestamp_millis());
    }
    match humantime::parse_duration(value) {
        Ok(ago) => Ok(now_ms - ago.as_millis() as i64),
        Err(_) => bail!(
            "{arg} {value:?}: not a time: give an RFC 3339 time (2026-12-07T05:00:00Z) or a duration ago (2h, 30m)"
        ),
    }
}

/// `PARTITION:OFFSET`, each given once per argument.
pub fn parse_offsets(arg: &str, values: &[String]) -> anyhow::Result<BTreeMap<i32, i64>> {
    let mut out = BTreeMap::new();
    for v in values {
        let (p, o) = v
            .split_once(':')
            .with_context(|| format!("{arg} {v:?}: expected PARTITION:OFFSET, as 0:120"))?;
        let p: i32 = p
            .trim()
            .parse()
            .ok()
            .filter(|p| *p >= 0)
            .with_context(|| format!("{arg} {v:?}: {p:?} is not a partition number"))?;
        let o: i64 = o
            .trim()
            .parse()
            .ok()
            .filter(|o| *o >= 0)
            .with_context(|| format!("{arg} {v:?}: {o:?} is not an offset"))?;
        if out.insert(p, o).is_some() {
            bail!("{arg}: partition {p} is given twice");
        }
    }
    Ok(out)
}

/// Where the range starts.
#[derive(Debug, Clone, PartialEq)]
pub enum Start {
    /// The first record at or after this time, in every partition.
    Time(i64),
    /// These offsets, in these partitions only.
    Offsets(BTreeMap<i32, i64>),
}

/// Where the range ends.
#[derive(Debug, Clone, PartialEq)]
pub enum End {
    /// What the topic holds now.
    Now,
    /// Before the first record at or after this time.
    Time(i64),
    /// These offsets, included, in these partitions (others: to now).
    Offsets(BTreeMap<i32, i64>),
}

/// What the cluster says of one partition of the topic replayed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PartitionInfo {
    pub partition: i32,
    /// The oldest offset held.
    pub low: i64,
    /// The next offset to be written.
    pub end: i64,
    /// The first offset at or after the start time (`end` if none).
    pub from_time: Option<i64>,
    /// The first offset at or after the end time (`end` if none).
    pub to_time: Option<i64>,
}

/// One partition's part of the range: offsets `start..end`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct Span {
    pub partition: i32,
    pub start: i64,
    /// Excluded.
    pub end: i64,
}

impl Span {
    pub fn len(&self) -> i64 {
        self.end - self.start
    }

    pub fn is_empty(&self) -> bool {
        self.len() <= 0
    }
}

/// The range per partition of `topic`, or why it is not a range.
pub fn resolve(
    topic: &str,
    start: &Start,
    end: &End,
    partitions: &[PartitionInfo],
) -> anyhow::Result<Vec<Span>> {
    if let (Start::Time(from), End::Time(to)) = (start, end) {
        if from >= to {
            bail!("--from must be before --to: the range {from} ms .. {to} ms is empty");
        }
    }
    let known = |p: i32, arg: &str| -> anyhow::Result<&PartitionInfo> {
        partitions
            .iter()
            .find(|i| i.partition == p)
            .with_context(|| {
                format!(
                    "{arg}: {topic} has no partition {p} (it has {})",
                    partitions.len()
                )
            })
    };
    if let End::Offsets(ends) = end {
        for p in ends.keys() {
            known(*p, "--to-offset")?;
        }
    }
    let chosen: Vec<(&PartitionInfo, i64)> = match start {
        Start::Offsets(offsets) => offsets
            .iter()
            .map(|(p, o)| Ok((known(*p, "--from-offset")?, *o)))
            .collect::<anyhow::Result<_>>()?,
        Start::Time(_) => partitions
            .iter()
            .map(|i| (i, i.from_time.unwrap_or(i.end)))
            .collect(),
    };
    let mut spans = Vec::new();
    for (info, from) in chosen {
        let p = info.partition;
        if from < info.low {
            bail!("--from-offset {p}:{from}: {topic} partition {p} holds offsets {}..{} only (older ones were deleted)", info.low, info.end);
        }
        if from > info.end {
            bail!(
                "--from-offset {p}:{from}: past the end of {topic} partition {p} (next offset {})",
                info.end
            );
        }
        let to = match end {
            End::Now => info.end,
            End::Time(_) => info.to_time.unwrap_or(info.end),
            End::Offsets(ends) => match ends.get(&p) {
                Some(last) if *last >= info.end => bail!(
                    "--to-offset {p}:{last}: past the last record of {topic} partition {p} ({})",
                    info.end - 1
                ),
                Some(last) if *last < from => {
                    bail!("--to-offset {p}:{last}: before the range's start in partition {p} ({from})")
                }
                Some(last) => last + 1,
                None => info.end,
            },
        };
        spans.push(Span {
            partition: p,
            start: from,
            end: to.max(from),
        });
    }
    if spans.iter().all(Span::is_empty) {
        bail!("the range holds no message of {topic}: nothing to replay");
    }
    spans.retain(|s| !s.is_empty());
    Ok(spans)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn info(partition: i32, low: i64, end: i64) -> PartitionInfo {
        PartitionInfo {
            partition,
            low,
            end,
            from_time: None,
            to_time: None,
        }
    }

    #[test]
    fn times_are_rfc3339_or_a_duration_ago() {
        let now = 1_800_000_000_000;
        assert_eq!(
            parse_time("--from", "2h", now).unwrap(),
            now - 2 * 3600 * 1000
        );
        assert_eq!(
            parse_time("--from", "1970-01-01T00:00:01Z", now).unwrap(),
            1000
        );
        let e = parse_time("--to", "yesterday-ish", now).unwrap_err();
        assert!(e.to_string().starts_with("--to \"yesterday-ish\""), "{e}");
    }

    #[test]
    fn offsets_are_partition_colon_offset() {
        let o = parse_offsets("--from-offset", &["0:5".into(), "3:0".into()]).unwrap();
        assert_eq!(o, BTreeMap::from([(0, 5), (3, 0)]));
        for bad in ["5", "x:1", "0:-1", "-1:0", "0:y"] {
            let e = parse_offsets("--from-offset", &[bad.into()]).unwrap_err();
            assert!(e.to_string().starts_with("--from-offset"), "{bad}: {e}");
        }
        let e = parse_offsets("--to-offset", &["1:1".into(), "1:2".into()]).unwrap_err();
        assert!(e.to_string().contains("partition 1 is given twice"), "{e}");
    }

    #[test]
    fn offsets_name_partitions_and_the_end_is_included() {
        let parts = [info(0, 0, 10), info(1, 0, 4)];
        let spans = resolve(
            "t",
            &Start::Offsets(BTreeMap::from([(0, 2)])),
            &End::Offsets(BTreeMap::from([(0, 5)])),
            &parts,
        )
        .unwrap();
        assert_eq!(
            spans,
            [Span {
                partition: 0,
                start: 2,
                end: 6
            }]
        );
        // A start time before every record: all of them; after: none.
        let from_first = parts.map(|i| PartitionInfo {
            from_time: Some(i.low),
            ..i
        });
        let spans = resolve("t", &Start::Time(0), &End::Now, &from_first).unwrap();
        assert_eq!(spans.iter().map(Span::len).sum::<i64>(), 14);
        let e = resolve("t", &Start::Time(0), &End::Now, &parts).unwrap_err();
        assert!(e.to_string().contains("nothing to replay"), "{e}");
    }

    #[test]
    fn bad_ranges_are_refused_naming_the_argument() {
        let parts = [info(0, 3, 10)];
        let cases = [
            (
                Start::Offsets(BTreeMap::from([(7, 0)])),
                End::Now,
                "--from-offset: t has no partition 7",
            ),
            (
                Start::Offsets(BTreeMap::from([(0, 1)])),
                End::Now,
                "older ones were deleted",
            ),
            (
                Start::Offsets(BTreeMap::from([(0, 11)])),
                End::Now,
                "past the end",
            ),
            (
                Start::Offsets(BTreeMap::from([(0, 4)])),
                End::Offsets(BTreeMap::from([(0, 3)])),
                "--to-offset 0:3: before",
            ),
            (
                Start::Offsets(BTreeMap::from([(0, 4)])),
                End::Offsets(BTreeMap::from([(0, 10)])),
                "--to-offset 0:10: past",
            ),
            (
                Start::Offsets(BTreeMap::from([(0, 10)])),
                End::Now,
                "nothing to replay",
            ),
            (Start::Time(5), End::Time(5), "--from must be before --to"),
        ];
        for (start, end, want) in cases {
            let e = resolve("t", &start, &end, &parts).unwrap_err().to_string();
            assert!(e.contains(want), "{start:?} {end:?}: {e}");
        }
    }
}
