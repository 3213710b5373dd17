use std::borrow::Cow;

use super::*;

const MIN: i64 = 60_000;
/// 2020-01-01T00:00:00Z
const T0: i64 = 1_577_836_800_000;

fn agg(grace_ms: i64) -> Aggregator {
    Aggregator::new(Settings {
        windows: vec![StatsWindow::Minute, StatsWindow::Hour, StatsWindow::Day],
        grace_ms,
    })
}

fn source(p: i32) -> Source {
    (Arc::from("sms.inbound"), p)
}

fn inbound(at: i64, keyword: &'static str) -> Observation<'static> {
    Observation {
        at,
        dims: vec![
            (StatsDimension::Total, Cow::Borrowed("")),
            (StatsDimension::Keyword, Cow::Borrowed(keyword)),
        ],
        delta: Delta {
            inbound: 1,
            ..Delta::default()
        },
        direction: "in",
        status: "received",
        backend: None,
    }
}

/// The latest record per key of everything flushed.
fn latest(flushes: &[Vec<Stats>]) -> HashMap<String, Stats> {
    let mut m = HashMap::new();
    for s in flushes.iter().flatten() {
        m.insert(s.key(), s.clone());
    }
    m
}

fn get<'a>(
    m: &'a HashMap<String, Stats>,
    w: StatsWindow,
    start: i64,
    dim: StatsDimension,
    value: &str,
) -> &'a Stats {
    m.values()
        .find(|s| s.window == w && s.start == start && s.dimension == dim && s.value == value)
        .unwrap_or_else(|| panic!("no {w:?} {start} {dim:?} {value:?} in {:?}", m.keys()))
}

#[test]
fn events_fall_into_their_utc_windows_per_dimension_value() {
    let mut a = agg(5 * MIN);
    let s = source(0);
    a.record(&s, 0, &inbound(T0 + 10, "JOIN"));
    a.record(&s, 1, &inbound(T0 + MIN - 1, "JOIN"));
    a.record(&s, 2, &inbound(T0 + MIN, "STOP"));
    let m = latest(&[a.flush(1)]);
    assert_eq!(
        get(&m, StatsWindow::Minute, T0, StatsDimension::Total, "").inbound,
        2
    );
    assert_eq!(
        get(&m, StatsWindow::Minute, T0 + MIN, StatsDimension::Total, "").inbound,
        1
    );
    assert_eq!(
        get(&m, StatsWindow::Hour, T0, StatsDimension::Total, "").inbound,
        3
    );
    assert_eq!(
        get(&m, StatsWindow::Day, T0, StatsDimension::Keyword, "JOIN").inbound,
        2
    );
    let join = get(&m, StatsWindow::Minute, T0, StatsDimension::Keyword, "JOIN");
    assert_eq!(join.through_offset, 1);
    assert!(!join.closed);
    assert_eq!(
        m.len(),
        2 * 2 + 3 + 3,
        "2 minutes × (total, one keyword) + hour and day × 3"
    );
    assert!(a.flush(2).is_empty(), "nothing changed since");
}

#[test]
fn a_window_closes_at_its_end_plus_grace_and_later_events_are_late() {
    let mut a = agg(5 * MIN);
    let s = source(0);
    a.record(&s, 0, &inbound(T0, "A"));
    // Stream time just before the first minute's end + grace: still open.
    assert!(a
        .record(&s, 1, &inbound(T0 + 6 * MIN - 1, "A"))
        .late
        .is_empty());
    assert!(a.record(&s, 2, &inbound(T0 + 30_000, "A")).counted);
    a.flush(1);
    // Stream time reaches end + grace: closed.
    a.record(&s, 3, &inbound(T0 + 6 * MIN, "A"));
    let flushed = a.flush(2);
    let first: Vec<&Stats> = flushed
        .iter()
        .filter(|x| x.window == StatsWindow::Minute && x.start == T0)
        .collect();
    assert_eq!(first.len(), 2, "total and keyword, written once more");
    assert!(first.iter().all(|x| x.closed && x.inbound == 2));
    let late = a.record(&s, 4, &inbound(T0 + 1, "A"));
    assert_eq!(late.late, vec![StatsWindow::Minute]);
    assert!(late.counted, "the hour and the day still take it");
    let m = latest(&[a.flush(3)]);
    assert_eq!(
        get(&m, StatsWindow::Hour, T0, StatsDimension::Total, "").inbound,
        5
    );
    assert!(
        !m.values()
            .any(|x| x.window == StatsWindow::Minute && x.start == T0),
        "the closed minute is not written again"
    );
}

#[test]
fn stream_time_is_per_source_partition() {
    let mut a = agg(0);
    a.record(&source(0), 0, &inbound(T0 + 60 * MIN, "A"));
    let r = a.record(&source(1), 0, &inbound(T0, "A"));
    assert!(r.late.is_empty(), "partition 1's stream time is its own");
}

#[test]
fn a_restored_partition_counts_only_records_past_each_cells_through_offset() {
    // The first owner counts offsets 0..6 and flushes after 0..4.
    let mut first = agg(5 * MIN);
    let s = source(3);
    let keywords = ["A", "B", "A", "B", "A", "B"];
    let mut written = Vec::new();
    for (offset, k) in keywords.iter().enumerate() {
        first.record(&s, offset as i64, &inbound(T0 + offset as i64, k));
        if offset == 3 {
            written.push(first.flush(1));
        }
    }
    // It dies; the next owner restores what was written and reads on from
    // the committed offset (0 here: nothing committed).
    let open: Vec<Stats> = latest(&written).into_values().collect();
    let mut next = agg(5 * MIN);
    next.restore(&s, Some(T0), open);
    for (offset, k) in keywords.iter().enumerate() {
        next.record(&s, offset as i64, &inbound(T0 + offset as i64, k));
    }
    written.push(next.flush(2));
    let m = latest(&written);
    let total = get(&m, StatsWindow::Minute, T0, StatsDimension::Total, "");
    assert_eq!(total.inbound, 6, "each record counted once");
    assert_eq!(total.through_offset, 5);
    assert_eq!(
        get(&m, StatsWindow::Day, T0, StatsDimension::Keyword, "A").inbound,
        3
    );
    assert_eq!(
        get(&m, StatsWindow::Day, T0, StatsDimension::Keyword, "B").inbound,
        3
    );

    // Without the through_offset check the restored counts double: the
    // check is what this test shows.
    let mut naive = agg(5 * MIN);
    let mut reset: Vec<Stats> = latest(&written).into_values().collect();
    for r in &mut reset {
        r.through_offset = -1;
    }
    naive.restore(&s, Some(T0), reset);
    naive.record(&s, 0, &inbound(T0, "A"));
    let m = latest(&[naive.flush(3)]);
    assert_eq!(
        get(&m, StatsWindow::Minute, T0, StatsDimension::Total, "").inbound,
        7
    );
}

#[test]
fn restoring_closed_windows_moves_stream_time_so_their_events_are_late() {
    let mut a = agg(5 * MIN);
    let s = source(0);
    // What a closed record implies: stream time ≥ its end + grace.
    a.restore(&s, Some(T0 + 6 * MIN), Vec::new());
    assert_eq!(
        a.record(&s, 10, &inbound(T0, "A")).late,
        vec![StatsWindow::Minute]
    );
}

#[test]
fn latencies_are_merged_into_the_cells_histograms() {
    let mut a = agg(0);
    let s = source(0);
    let mut o = inbound(T0, "A");
    o.delta = Delta {
        sent: 1,
        accepted_to_sent: Some(250),
        ..Delta::default()
    };
    a.record(&s, 0, &o);
    o.delta.accepted_to_sent = Some(4_000);
    a.record(&s, 1, &o);
    let m = latest(&[a.flush(1)]);
    let t = get(&m, StatsWindow::Minute, T0, StatsDimension::Total, "");
    assert_eq!(t.sent, 2);
    assert_eq!(t.accepted_to_sent.count, 2);
    assert_eq!(t.accepted_to_sent.sum_ms, 4_250);
    assert_eq!(t.accepted_to_sent.quantile(0.5), Some(300));
    assert_eq!(t.accepted_to_sent.quantile(1.0), Some(4_000));
    assert_eq!(t.sent_to_delivered.count, 0);
}

#[test]
fn forgetting_a_partition_drops_its_cells() {
    let mut a = agg(0);
    a.record(&source(0), 0, &inbound(T0, "A"));
    a.record(&source(1), 0, &inbound(T0, "A"));
    a.forget(&source(0));
    assert!(!a.has(&source(0)));
    assert!(a.flush(1).iter().all(|s| s.partition == 1));
}
