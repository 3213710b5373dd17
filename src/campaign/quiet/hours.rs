//! The quiet window and the local day, on any day of the year: a local time
//! that a daylight-saving switch skips, or shows twice, still has one
//! instant where it starts.

use std::borrow::Cow;
use std::fmt;

use chrono::{
    DateTime, Duration, LocalResult, NaiveDate, NaiveDateTime, NaiveTime, Offset, TimeZone,
    Timelike, Utc,
};
use chrono_tz::Tz;
use schemars::{json_schema, JsonSchema, Schema, SchemaGenerator};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// The longest stretch of local time a zone has ever skipped: Samoa went
/// from 29 to 31 December 2011. Searching two days covers it.
const LONGEST_GAP_MINUTES: i64 = 2 * 24 * 60;

/// A time of day as written in a campaign: `21:00`, `8:00`, `07:30:15`.
const TIME_PATTERN: &str = r"^([01]?[0-9]|2[0-3]):[0-5][0-9](:[0-5][0-9])?$";

/// The first instant at which the clocks of `zone` read `local` or later:
/// the instant itself when `local` happens once; the earlier of the two
/// when clocks are set back through it; and when clocks jump forward over
/// it, so that it never happens, the first instant after the jump (for a
/// spring forward from 02:00 to 03:00, `02:30` gives 03:00).
pub fn first_instant_at_or_after(zone: Tz, local: NaiveDateTime) -> DateTime<Utc> {
    let earliest = |found: LocalResult<DateTime<Tz>>| match found {
        LocalResult::Single(t) => Some(t.with_timezone(&Utc)),
        LocalResult::Ambiguous(a, b) => Some(a.min(b).with_timezone(&Utc)),
        LocalResult::None => None,
    };
    if let Some(t) = earliest(zone.from_local_datetime(&local)) {
        return t;
    }
    // In a gap: the first local minute that exists again is the instant of
    // the jump (every zone switches on a whole minute).
    let mut minute = local
        .with_second(0)
        .and_then(|t| t.with_nanosecond(0))
        .unwrap_or(local);
    for _ in 0..LONGEST_GAP_MINUTES {
        let Some(next) = minute.checked_add_signed(Duration::minutes(1)) else {
            break;
        };
        minute = next;
        if let Some(t) = earliest(zone.from_local_datetime(&minute)) {
            return t;
        }
    }
    // Not reached with the tz database (no gap is longer): read `local` with
    // the offset the zone has about then rather than fail.
    let offset = zone
        .offset_from_utc_datetime(&local)
        .fix()
        .local_minus_utc();
    let utc = local
        .checked_sub_signed(Duration::seconds(i64::from(offset)))
        .unwrap_or(local);
    Utc.from_utc_datetime(&utc)
}

/// The local day `now` falls in for `zone`: the day a daily cap counts in.
/// It is the latest day whose start ([`next_day_start`] of the day before)
/// is not after `now`, so it never goes back when clocks are set back.
pub fn day_of(now: DateTime<Utc>, zone: Tz) -> NaiveDate {
    let date = now.with_timezone(&zone).date_naive();
    match date.succ_opt() {
        Some(next) if day_start(zone, next) <= now => next,
        _ => date,
    }
}

/// When the local day after [`day_of`]`(now)` starts in `zone`: its midnight,
/// or the first instant after midnight when a daylight-saving switch skips
/// it (America/Santiago, 6 September 2026: 01:00 local).
pub fn next_day_start(now: DateTime<Utc>, zone: Tz) -> DateTime<Utc> {
    match day_of(now, zone).succ_opt() {
        Some(next) => day_start(zone, next),
        None => DateTime::<Utc>::MAX_UTC,
    }
}

fn day_start(zone: Tz, day: NaiveDate) -> DateTime<Utc> {
    first_instant_at_or_after(zone, day.and_time(NaiveTime::MIN))
}

/// The hours of each local day when nothing is sent: from `from` (quiet
/// starts) until `until` (sending allowed again). `21:00`–`08:00` crosses
/// midnight; `12:00`–`14:00` does not; both work. Written as
/// `{from: "21:00", until: "08:00"}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QuietHours {
    /// When quiet starts, local time (included in the window).
    pub from: NaiveTime,
    /// When sending is allowed again, local time (not in the window).
    pub until: NaiveTime,
}

impl QuietHours {
    /// The window from `from` until `until`; they must differ.
    pub fn new(from: NaiveTime, until: NaiveTime) -> Result<QuietHours, String> {
        let hours = QuietHours { from, until };
        hours.validate()?;
        Ok(hours)
    }

    /// The window from two times written `HH:MM` (or `HH:MM:SS`).
    pub fn parse(from: &str, until: &str) -> Result<QuietHours, String> {
        QuietHours::new(parse_time("from", from)?, parse_time("until", until)?)
    }

    /// Refuses a window that starts when it ends: it would be empty or the
    /// whole day, and either is surely a mistake.
    pub fn validate(&self) -> Result<(), String> {
        if self.from == self.until {
            return Err(format!(
                "quiet hours from {} until {}: the same time, so the window would be empty or \
                 the whole day; give two different times, such as from 21:00 until 08:00",
                hhmm(self.from),
                hhmm(self.until)
            ));
        }
        Ok(())
    }

    /// Whether the window runs over midnight (`21:00`–`08:00`).
    pub fn crosses_midnight(&self) -> bool {
        self.from > self.until
    }

    /// `None` when a recipient in `zone` may be sent to at `now`; otherwise
    /// the instant the window ends for them (always after `now`).
    ///
    /// Each local day `d` has one quiet span: from the first instant at or
    /// after `d`'s `from` until the first instant at or after `until` (of
    /// `d`, or of the next day when the window crosses midnight), as
    /// [`first_instant_at_or_after`] reads local times that a
    /// daylight-saving switch skips or repeats. So a 21:00–08:00 night is
    /// 10 h long in UTC when clocks spring forward and 12 h when they fall
    /// back, and an `until` the switch skips opens at the jump.
    pub fn open_at(&self, now: DateTime<Utc>, zone: Tz) -> Option<DateTime<Utc>> {
        let today = now.with_timezone(&zone).date_naive();
        // Yesterday's span may still run (it crosses midnight); tomorrow's
        // may have begun already where clocks go back over midnight.
        [today.pred_opt(), Some(today), today.succ_opt()]
            .into_iter()
            .flatten()
            .filter_map(|day| self.span(day, zone))
            .find(|(start, end)| *start <= now && now < *end)
            .map(|(_, end)| end)
    }

    /// Whether `now` is inside the window for a recipient in `zone`.
    pub fn is_quiet(&self, now: DateTime<Utc>, zone: Tz) -> bool {
        self.open_at(now, zone).is_some()
    }

    /// The quiet span that starts on local day `day`, in UTC.
    fn span(&self, day: NaiveDate, zone: Tz) -> Option<(DateTime<Utc>, DateTime<Utc>)> {
        let end_day = if self.crosses_midnight() {
            day.succ_opt()?
        } else {
            day
        };
        let start = first_instant_at_or_after(zone, day.and_time(self.from));
        let end = first_instant_at_or_after(zone, end_day.and_time(self.until));
        Some((start, end))
    }
}

impl fmt::Display for QuietHours {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}–{}", hhmm(self.from), hhmm(self.until))
    }
}

/// `21:00`, or `21:00:30` when there are seconds.
fn hhmm(t: NaiveTime) -> String {
    if t.second() == 0 && t.nanosecond() == 0 {
        t.format("%H:%M").to_string()
    } else {
        t.format("%H:%M:%S").to_string()
    }
}

fn parse_time(field: &str, text: &str) -> Result<NaiveTime, String> {
    let wrong = || {
        format!(
            "quiet hours {field}: {text:?} is not a time of day: expected HH:MM on a \
             24-hour clock, such as 21:00 or 08:00"
        )
    };
    let parts: Vec<&str> = text.trim().split(':').collect();
    let number = |part: &str, widths: std::ops::RangeInclusive<usize>| {
        (widths.contains(&part.len()) && part.bytes().all(|b| b.is_ascii_digit()))
            .then(|| part.parse::<u32>().ok())
            .flatten()
    };
    let (hour, minute, second) = match parts[..] {
        [h, m] => (number(h, 1..=2), number(m, 2..=2), Some(0)),
        [h, m, s] => (number(h, 1..=2), number(m, 2..=2), number(s, 2..=2)),
        _ => return Err(wrong()),
    };
    match (hour, minute, second) {
        (Some(h), Some(m), Some(s)) => NaiveTime::from_hms_opt(h, m, s).ok_or_else(wrong),
        _ => Err(wrong()),
    }
}

/// How quiet hours are written in a campaign.
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Written {
    from: String,
    until: String,
}

impl Serialize for QuietHours {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        Written {
            from: hhmm(self.from),
            until: hhmm(self.until),
        }
        .serialize(s)
    }
}

impl<'de> Deserialize<'de> for QuietHours {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<QuietHours, D::Error> {
        let written = Written::deserialize(d)?;
        QuietHours::parse(&written.from, &written.until).map_err(serde::de::Error::custom)
    }
}

impl JsonSchema for QuietHours {
    fn schema_name() -> Cow<'static, str> {
        "QuietHours".into()
    }

    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        let time = |what: &str| {
            json_schema!({
                "type": "string",
                "pattern": TIME_PATTERN,
                "description": what,
                "patternErrorMessage": "expected HH:MM on a 24-hour clock, such as 21:00"
            })
        };
        json_schema!({
            "type": "object",
            "description": "Local hours of each recipient's day when nothing is sent (their time zone).",
            "properties": {
                "from": time("When quiet starts, local time, such as 21:00."),
                "until": time("When sending is allowed again, local time, such as 08:00."),
            },
            "required": ["from", "until"],
            "additionalProperties": false
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: &str) -> DateTime<Utc> {
        s.parse().unwrap()
    }

    fn night() -> QuietHours {
        QuietHours::parse("21:00", "08:00").unwrap()
    }

    const NEW_YORK: Tz = Tz::America__New_York;
    const LONDON: Tz = Tz::Europe__London;

    /// The quiet span around `inside`: when it began (found by stepping
    /// back a minute at a time) and when it ends.
    fn span_around(
        hours: QuietHours,
        zone: Tz,
        inside: DateTime<Utc>,
    ) -> (DateTime<Utc>, DateTime<Utc>) {
        let end = hours
            .open_at(inside, zone)
            .expect("quiet at the given instant");
        let mut start = inside;
        while hours.is_quiet(start - Duration::minutes(1), zone) {
            start -= Duration::minutes(1);
        }
        (start, end)
    }

    #[test]
    fn spring_forward_nights_are_an_hour_shorter_and_end_at_local_eight() {
        // New York, 8 March 2026: 02:00 EST becomes 03:00 EDT (07:00 UTC).
        let (start, end) = span_around(night(), NEW_YORK, at("2026-03-08T06:30:00Z"));
        assert_eq!(start, at("2026-03-08T02:00:00Z"), "21:00 EST");
        assert_eq!(end, at("2026-03-08T12:00:00Z"), "08:00 EDT");
        assert_eq!(end - start, Duration::hours(10));
        // London, 29 March 2026: 01:00 GMT becomes 02:00 BST (01:00 UTC).
        let (start, end) = span_around(night(), LONDON, at("2026-03-29T00:30:00Z"));
        assert_eq!(start, at("2026-03-28T21:00:00Z"), "21:00 GMT");
        assert_eq!(end, at("2026-03-29T07:00:00Z"), "08:00 BST");
        assert_eq!(end - start, Duration::hours(10));
    }

    #[test]
    fn fall_back_nights_are_an_hour_longer_and_end_at_local_eight() {
        // New York, 1 November 2026: 02:00 EDT becomes 01:00 EST (06:00 UTC).
        let (start, end) = span_around(night(), NEW_YORK, at("2026-11-01T05:30:00Z"));
        assert_eq!(start, at("2026-11-01T01:00:00Z"), "21:00 EDT");
        assert_eq!(end, at("2026-11-01T13:00:00Z"), "08:00 EST");
        assert_eq!(end - start, Duration::hours(12));
        // London, 25 October 2026: 02:00 BST becomes 01:00 GMT (01:00 UTC).
        let (start, end) = span_around(night(), LONDON, at("2026-10-25T01:30:00Z"));
        assert_eq!(start, at("2026-10-24T20:00:00Z"), "21:00 BST");
        assert_eq!(end, at("2026-10-25T08:00:00Z"), "08:00 GMT");
        assert_eq!(end - start, Duration::hours(12));
    }

    #[test]
    fn from_one_opening_to_the_next_is_23_or_25_hours_on_switch_days() {
        let hours = night();
        let reopen = |quiet_at: &str, zone| hours.open_at(at(quiet_at), zone).unwrap();
        for (zone, before, after, expected) in [
            (NEW_YORK, "2026-03-07T06:00:00Z", "2026-03-08T06:00:00Z", 23),
            (NEW_YORK, "2026-10-31T06:00:00Z", "2026-11-01T06:00:00Z", 25),
            (LONDON, "2026-03-28T06:00:00Z", "2026-03-29T06:00:00Z", 23),
            (LONDON, "2026-10-24T06:00:00Z", "2026-10-25T06:00:00Z", 25),
        ] {
            let (first, second) = (reopen(before, zone), reopen(after, zone));
            assert_eq!(second - first, Duration::hours(expected), "{zone} {after}");
            for t in [first, second] {
                assert_eq!(
                    t.with_timezone(&zone).time(),
                    NaiveTime::from_hms_opt(8, 0, 0).unwrap()
                );
            }
        }
    }

    #[test]
    fn an_end_that_clocks_skip_opens_at_the_jump() {
        // Until 02:30 on New York's spring-forward night: 02:30 never
        // happens; 03:00 EDT (07:00 UTC) is the first instant after it.
        let hours = QuietHours::parse("21:00", "02:30").unwrap();
        assert_eq!(
            hours.open_at(at("2026-03-08T06:59:00Z"), NEW_YORK),
            Some(at("2026-03-08T07:00:00Z"))
        );
        assert_eq!(hours.open_at(at("2026-03-08T07:00:00Z"), NEW_YORK), None);
        // A start the clocks skip begins at the jump as well.
        let early = QuietHours::parse("02:30", "06:00").unwrap();
        assert!(!early.is_quiet(at("2026-03-08T06:59:00Z"), NEW_YORK));
        assert_eq!(
            early.open_at(at("2026-03-08T07:00:00Z"), NEW_YORK),
            Some(at("2026-03-08T10:00:00Z")),
            "06:00 EDT"
        );
        // A window wholly inside the skipped hour is empty that night.
        let skipped = QuietHours::parse("02:10", "02:40").unwrap();
        let mut t = at("2026-03-08T05:00:00Z");
        while t < at("2026-03-08T09:00:00Z") {
            assert!(!skipped.is_quiet(t, NEW_YORK), "{t}");
            t += Duration::minutes(5);
        }
    }

    #[test]
    fn a_time_clocks_show_twice_counts_the_first_time() {
        // Until 01:30 on New York's fall-back night: the first 01:30 (EDT,
        // 05:30 UTC) ends the window; the repeated hour does not restart it.
        let hours = QuietHours::parse("21:00", "01:30").unwrap();
        assert_eq!(
            hours.open_at(at("2026-11-01T05:29:00Z"), NEW_YORK),
            Some(at("2026-11-01T05:30:00Z"))
        );
        assert_eq!(
            hours.open_at(at("2026-11-01T06:15:00Z"), NEW_YORK),
            None,
            "01:15 EST"
        );
        // Quiet from 01:30: from the first 01:30, through the repeated hour.
        let late = QuietHours::parse("01:30", "06:00").unwrap();
        assert!(
            !late.is_quiet(at("2026-11-01T05:15:00Z"), NEW_YORK),
            "01:15 EDT"
        );
        assert_eq!(
            late.open_at(at("2026-11-01T06:10:00Z"), NEW_YORK),
            Some(at("2026-11-01T11:00:00Z")),
            "01:10 EST is inside; 06:00 EST ends it"
        );
    }

    #[test]
    fn a_window_within_one_day_works() {
        let lunch = QuietHours::parse("12:00", "14:00").unwrap();
        assert!(!lunch.crosses_midnight());
        let nairobi = Tz::Africa__Nairobi;
        assert_eq!(lunch.open_at(at("2026-12-07T08:59:00Z"), nairobi), None);
        assert_eq!(
            lunch.open_at(at("2026-12-07T09:00:00Z"), nairobi),
            Some(at("2026-12-07T11:00:00Z"))
        );
        assert_eq!(lunch.open_at(at("2026-12-07T11:00:00Z"), nairobi), None);
        assert_eq!(lunch.open_at(at("2026-12-07T21:00:00Z"), nairobi), None);
    }

    #[test]
    fn days_are_23_or_25_hours_on_switch_days_and_midnight_may_be_skipped() {
        for (zone, day, start, hours) in [
            (NEW_YORK, "2026-03-08", "2026-03-08T05:00:00Z", 23),
            (NEW_YORK, "2026-11-01", "2026-11-01T04:00:00Z", 25),
            (LONDON, "2026-03-29", "2026-03-29T00:00:00Z", 23),
            (LONDON, "2026-10-25", "2026-10-24T23:00:00Z", 25),
            (LONDON, "2026-12-07", "2026-12-07T00:00:00Z", 24),
        ] {
            let start = at(start);
            assert_eq!(day_of(start, zone).to_string(), day);
            let before = day_of(start - Duration::seconds(1), zone);
            assert_eq!(before.succ_opt(), Some(day_of(start, zone)), "{zone} {day}");
            let next = next_day_start(start, zone);
            assert_eq!(next - start, Duration::hours(hours), "{zone} {day}");
            assert_eq!(next_day_start(next - Duration::seconds(1), zone), next);
        }
        // Santiago springs forward at midnight: 6 September 2026 starts at
        // 01:00 local (04:00 UTC), the first instant after the jump.
        let santiago = Tz::America__Santiago;
        let next = next_day_start(at("2026-09-05T16:00:00Z"), santiago);
        assert_eq!(next, at("2026-09-06T04:00:00Z"));
        assert_eq!(day_of(next, santiago).to_string(), "2026-09-06");
        assert_eq!(
            day_of(next - Duration::seconds(1), santiago).to_string(),
            "2026-09-05"
        );
    }

    /// Through all of 2026, in zones with odd switches (at midnight, by 30
    /// minutes, a whole day skipped in Apia's past), the day never goes back,
    /// each day's start is where the next day begins, and every reopening
    /// is after `now` and really open.
    #[test]
    fn days_and_windows_hold_together_all_year_in_many_zones() {
        let windows = [
            night(),
            QuietHours::parse("12:00", "14:00").unwrap(),
            QuietHours::parse("00:00", "01:30").unwrap(),
        ];
        for zone in [
            NEW_YORK,
            LONDON,
            Tz::America__Santiago,
            Tz::Australia__Lord_Howe,
            Tz::Asia__Beirut,
            Tz::Pacific__Apia,
            Tz::Asia__Kathmandu,
            Tz::America__Havana,
        ] {
            let mut t = at("2025-12-31T00:00:00Z");
            let mut previous = day_of(t, zone);
            while t < at("2027-01-01T00:00:00Z") {
                let day = day_of(t, zone);
                assert!(day >= previous, "{zone} {t}: day went back");
                previous = day;
                let next = next_day_start(t, zone);
                assert!(next > t, "{zone} {t}");
                assert_eq!(day_of(next, zone), day.succ_opt().unwrap(), "{zone} {t}");
                assert_eq!(day_of(next - Duration::seconds(1), zone), day, "{zone} {t}");
                for hours in windows {
                    if let Some(open) = hours.open_at(t, zone) {
                        assert!(open > t, "{zone} {t} {hours}");
                        assert!(!hours.is_quiet(open, zone), "{zone} {t} {hours}: {open}");
                        assert!(
                            hours.is_quiet(open - Duration::seconds(1), zone),
                            "{zone} {t} {hours}"
                        );
                    }
                }
                t += Duration::minutes(47);
            }
        }
    }

    #[test]
    fn quiet_hours_are_written_as_two_times() {
        let hours: QuietHours =
            serde_json::from_str(r#"{"from": "21:00", "until": "8:00"}"#).unwrap();
        assert_eq!(hours, night());
        assert_eq!(
            serde_json::to_string(&hours).unwrap(),
            r#"{"from":"21:00","until":"08:00"}"#
        );
        assert_eq!(hours.to_string(), "21:00–08:00");
        let seconds = QuietHours::parse("21:00:30", "08:00").unwrap();
        let again: QuietHours =
            serde_json::from_str(&serde_json::to_string(&seconds).unwrap()).unwrap();
        assert_eq!(again, seconds);
    }

    #[test]
    fn bad_quiet_hours_are_refused_with_the_reason() {
        let err = QuietHours::parse("21:00", "21:00").unwrap_err();
        assert!(err.contains("the same time"), "{err}");
        let err = serde_json::from_str::<QuietHours>(r#"{"from": "8:00", "until": "08:00"}"#)
            .unwrap_err();
        assert!(err.to_string().contains("the same time"), "{err}");
        let err = QuietHours::parse("25:00", "08:00").unwrap_err();
        assert!(
            err.contains("quiet hours from: \"25:00\" is not a time of day"),
            "{err}"
        );
        let err = QuietHours::parse("21:00", "8pm").unwrap_err();
        assert!(err.contains("quiet hours until: \"8pm\""), "{err}");
        assert!(serde_json::from_str::<QuietHours>(r#"{"from": "21:00"}"#).is_err());
        let err = serde_json::from_str::<QuietHours>(
            r#"{"from": "21:00", "until": "08:00", "zone": "UTC"}"#,
        )
        .unwrap_err();
        assert!(err.to_string().contains("unknown field `zone`"), "{err}");
        let pattern = regex::Regex::new(TIME_PATTERN).unwrap();
        for ok in ["21:00", "8:00", "07:30:15", "23:59"] {
            assert!(
                pattern.is_match(ok) && parse_time("from", ok).is_ok(),
                "{ok}"
            );
        }
        for bad in ["24:00", "21:0", "21:60", "", "noon"] {
            assert!(
                !pattern.is_match(bad) && parse_time("from", bad).is_err(),
                "{bad}"
            );
        }
    }
}
