//! Recipients in three zones under one fake clock: who may be sent to when,
//! checked against the wall clocks worked out by hand (fixed offsets and
//! the known switch instants), not against chrono-tz itself.

use std::sync::{Arc, Mutex};

use chrono::{DateTime, Duration, NaiveTime, Timelike, Utc};
use chrono_tz::Tz;

use super::*;

fn at(s: &str) -> DateTime<Utc> {
    s.parse().unwrap()
}

struct Recipient {
    name: &'static str,
    phone: &'static str,
    contact_zone: Option<&'static str>,
    /// The recipient's UTC offset in hours at an instant, by hand.
    offset: fn(DateTime<Utc>) -> i64,
}

/// Europe/London around its spring-forward (29 March 2026, 01:00 UTC).
fn london_spring(t: DateTime<Utc>) -> i64 {
    if t < at("2026-03-29T01:00:00Z") {
        0
    } else {
        1
    }
}

fn recipients() -> Vec<Recipient> {
    vec![
        // +254: Kenya has one zone.
        Recipient {
            name: "nairobi",
            phone: "+254712345678",
            contact_zone: None,
            offset: |_| 3,
        },
        // +1 212: the United States has many zones: the default.
        Recipient {
            name: "new york (default)",
            phone: "+12125551234",
            contact_zone: None,
            offset: |_| -4,
        },
        // The contact's field beats the Kenyan number.
        Recipient {
            name: "new york (contact)",
            phone: "+254711000000",
            contact_zone: Some("America/New_York"),
            offset: |_| -4,
        },
        // An invalid contact zone is passed over: the number's country.
        Recipient {
            name: "london",
            phone: "+442079460123",
            contact_zone: Some("Londres"),
            offset: london_spring,
        },
    ]
}

/// Local sending hours: 08:00 to 21:00.
fn allowed(local: NaiveTime) -> bool {
    local.hour() >= 8 && local.hour() < 21
}

fn wall(t: DateTime<Utc>, offset: fn(DateTime<Utc>) -> i64) -> NaiveTime {
    (t + Duration::hours(offset(t))).time()
}

/// Every disagreement between `open_at` and the hand-worked wall clock at
/// 10-minute steps through 48 hours from `start` (a weekend on which London
/// springs forward; New York already has).
fn disagreements(recipients: &[Recipient], start: DateTime<Utc>) -> Vec<String> {
    let hours = QuietHours::parse("21:00", "08:00").unwrap();
    let clock = FakeClock::new(start);
    let mut found = Vec::new();
    while clock.now() < start + Duration::hours(48) {
        let now = clock.now();
        for r in recipients {
            let zone = zone_for(r.phone, r.contact_zone, Tz::America__New_York);
            // Expected: the first whole minute from now the wall clock allows.
            let mut open = now;
            while !allowed(wall(open, r.offset)) {
                open += Duration::minutes(1);
            }
            let expected = (open > now).then_some(open);
            let got = hours.open_at(now, zone);
            if got != expected {
                found.push(format!(
                    "{} at {now}: expected {expected:?}, got {got:?}",
                    r.name
                ));
            }
        }
        clock.advance(Duration::minutes(10));
    }
    found
}

#[test]
fn three_zones_through_48_hours_open_exactly_in_their_windows() {
    let found = disagreements(&recipients(), at("2026-03-28T00:00:00Z"));
    assert!(
        found.is_empty(),
        "{} disagreements: {found:#?}",
        found.len()
    );
}

#[test]
fn a_london_without_summer_time_would_be_caught() {
    let mut wrong = recipients();
    wrong[3].offset = |_| 0;
    let found = disagreements(&wrong, at("2026-03-28T00:00:00Z"));
    // After the switch, London's 07:00-08:00 BST and 20:00-21:00 BST hours.
    assert!(found.len() >= 6, "{found:#?}");
    assert!(found.iter().all(|d| d.starts_with("london")), "{found:#?}");
}

/// A send loop as the campaign stage would run it, on the fake clock: each
/// recipient met at 03:00 UTC on Sunday 29 March is deferred to its zone's
/// opening and goes out then, in order of opening, none inside a window.
#[tokio::test(start_paused = true)]
async fn deferred_recipients_go_out_at_their_opening_in_order() {
    let hours = QuietHours::parse("21:00", "08:00").unwrap();
    let fake = FakeClock::new(at("2026-03-29T03:00:00Z"));
    let clock: Arc<dyn Clock> = Arc::new(fake.clone());
    let sent = Arc::new(Mutex::new(Vec::new()));
    let mut tasks = Vec::new();
    for r in recipients() {
        let (clock, sent) = (clock.clone(), sent.clone());
        let zone = zone_for(r.phone, r.contact_zone, Tz::America__New_York);
        tasks.push(tokio::spawn(async move {
            while let Some(open) = hours.open_at(clock.now(), zone) {
                sleep_until(&*clock, open).await;
            }
            sent.lock()
                .unwrap()
                .push((r.name, clock.now(), wall(clock.now(), r.offset)));
        }));
    }
    // A minute at a time, letting every woken task run before moving on.
    while fake.now() < at("2026-03-29T13:00:00Z") {
        for _ in 0..10 {
            tokio::task::yield_now().await;
        }
        fake.advance(Duration::minutes(1));
    }
    for task in tasks {
        tokio::time::timeout(std::time::Duration::from_secs(60), task)
            .await
            .expect("a recipient still waits after every window closed")
            .unwrap();
    }
    let sent = sent.lock().unwrap().clone();
    let order: Vec<_> = sent
        .iter()
        .map(|(name, t, _)| (*name, t.to_rfc3339()))
        .collect();
    assert_eq!(
        &order[0],
        &("nairobi", "2026-03-29T05:00:00+00:00".to_owned())
    );
    assert_eq!(
        &order[1],
        &("london", "2026-03-29T07:00:00+00:00".to_owned())
    );
    let mut new_york: Vec<_> = order[2..].to_vec();
    new_york.sort();
    assert_eq!(
        new_york,
        [
            ("new york (contact)", "2026-03-29T12:00:00+00:00".to_owned()),
            ("new york (default)", "2026-03-29T12:00:00+00:00".to_owned()),
        ]
    );
    for (name, _, local) in &sent {
        assert!(allowed(*local), "{name} sent at {local} local");
    }
}
