//! Quiet hours in each recipient's zone, on a fake clock, on the day New
//! York springs forward: nobody gets a message in their quiet hours, and
//! those who waited get theirs when their morning comes.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, TimeZone, Timelike, Utc};
use chrono_tz::Tz;
use serde_json::json;
use smsflow::campaign::quiet::FakeClock;

use super::{Admin, PIPELINE};

fn at(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
}

#[tokio::test]
async fn recipients_in_quiet_hours_wait_for_their_own_morning_across_a_dst_switch() {
    // 05:30 UTC on 2026-03-08: 08:30 in Nairobi (open), 05:30 in London
    // (quiet until 08:00 UTC), 00:30 EST in New York, which springs forward
    // at 07:00 UTC: its 08:00 is EDT, 12:00 UTC (13:00 in winter).
    let clock = FakeClock::new(at("2026-03-08T05:30:00Z"));
    let admin = Admin::start_on(PIPELINE, Arc::new(clock.clone())).await;
    let csv = "phone,name,timezone\n\
               +254700200001,Achieng,\n\
               +254700200002,Baraka,\n\
               +447700900001,Chloe,\n\
               +447700900002,Dev,\n\
               +12125550101,Ella,America/New_York\n\
               +12125550102,Finn,America/New_York\n";
    let campaign = json!({
        "id": "morning",
        "backend": "bulk",
        "texts": {"en": "Good morning {name}"},
        "quiet_from": "21:00",
        "quiet_until": "08:00",
    });
    let (status, body) = admin
        .post("/api/campaigns", json!({"campaign": campaign, "csv": csv}))
        .await;
    assert_eq!(status, 201, "{body}");
    admin
        .progress_until("morning", |p| p["sent"].as_u64() == Some(2))
        .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(admin.sent().len(), 2, "only Nairobi is awake");

    clock.set(at("2026-03-08T07:59:00Z"));
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(admin.sent().len(), 2, "London still quiet at 07:59");
    clock.set(at("2026-03-08T08:00:00Z"));
    admin
        .progress_until("morning", |p| p["sent"].as_u64() == Some(4))
        .await;

    // 11:59 UTC is 07:59 EDT: New York still quiet (on EST it would be 06:59).
    clock.set(at("2026-03-08T11:59:00Z"));
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(admin.sent().len(), 4, "New York still quiet at 07:59 EDT");
    clock.set(at("2026-03-08T12:00:00Z"));
    let done = admin
        .progress_until("morning", |p| p["sent"].as_u64() == Some(6))
        .await;
    assert_eq!(done["campaign"]["state"], "completed");

    // Every message went out in its recipient's sending hours, by the clock.
    for (m, when) in admin.sends.lock().unwrap().iter() {
        let zone: Tz = match &m.connection.identity[..4] {
            "+254" => chrono_tz::Africa::Nairobi,
            "+447" => chrono_tz::Europe::London,
            _ => chrono_tz::America::New_York,
        };
        let local = zone.from_utc_datetime(&when.naive_utc());
        assert!(
            (8..21).contains(&local.hour()),
            "{} got its message at {local} local time",
            m.connection.identity
        );
    }
}
