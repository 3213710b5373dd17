//! Pause, resume and cancel; opt-outs at release time; auto-pause.

use std::collections::HashSet;
use std::time::Duration;

use serde_json::json;

use super::{Admin, PIPELINE};

/// `n` recipients: +254700100000, +254700100001, ...
fn audience(n: usize) -> String {
    let mut csv = String::from("phone,name\n");
    for i in 0..n {
        csv.push_str(&format!("+2547001{i:05},P{i}\n"));
    }
    csv
}

fn paced(id: &str, rate: f64) -> serde_json::Value {
    json!({
        "id": id,
        "backend": "bulk",
        "texts": {"en": "Hi {name}"},
        "messages_per_second": rate,
    })
}

#[tokio::test]
async fn pause_holds_resume_goes_on_and_cancel_ends_without_a_repeat() {
    let admin = Admin::start(PIPELINE).await;
    let (status, body) = admin
        .post(
            "/api/campaigns",
            json!({"campaign": paced("slow", 40.0), "csv": audience(120)}),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    admin
        .progress_until("slow", |p| p["reached"].as_u64() >= Some(10))
        .await;

    let (status, paused) = admin.post("/api/campaigns/slow/pause", json!({})).await;
    assert_eq!(status, 200, "{paused}");
    assert_eq!(paused["campaign"]["state"], "paused");
    // Within a second nothing more is released.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let held = admin.sent().len();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(admin.sent().len(), held, "sent while paused");
    assert!(held < 120, "paused before the end: {held}");

    let (status, _) = admin.post("/api/campaigns/slow/resume", json!({})).await;
    assert_eq!(status, 200);
    let done = admin
        .progress_until("slow", |p| p["sent"].as_u64() == Some(120))
        .await;
    assert_eq!(done["campaign"]["state"], "completed", "{done:#}");
    let sent = admin.sent();
    let numbers: HashSet<String> = sent.iter().map(|m| m.connection.identity.clone()).collect();
    assert_eq!(
        (sent.len(), numbers.len()),
        (120, 120),
        "one message each, none twice"
    );

    // A finished campaign cannot be paused; an unknown one is 404.
    let (status, body) = admin.post("/api/campaigns/slow/pause", json!({})).await;
    assert_eq!(status, 409, "{body}");
    let (status, _) = admin.post("/api/campaigns/nope/cancel", json!({})).await;
    assert_eq!(status, 404);

    // Cancel: what was not released is never sent, and is counted.
    let (status, body) = admin
        .post(
            "/api/campaigns",
            json!({"campaign": paced("stopped", 40.0), "csv": audience(200)}),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    admin
        .progress_until("stopped", |p| p["reached"].as_u64() >= Some(10))
        .await;
    let (status, cancelled) = admin.post("/api/campaigns/stopped/cancel", json!({})).await;
    assert_eq!(status, 200, "{cancelled}");
    tokio::time::sleep(Duration::from_secs(1)).await;
    let after = admin.sent().len();
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(admin.sent().len(), after, "sent after the cancel");
    let v = admin
        .progress_until("stopped", |p| p["not_sent"].as_u64() > Some(0))
        .await;
    let p = &v["progress"];
    assert_eq!(
        p["reached"].as_u64().unwrap() + p["not_sent"].as_u64().unwrap(),
        200,
        "{v:#}"
    );
    assert_eq!(v["campaign"]["state"], "cancelled");
}

#[tokio::test]
async fn a_number_that_says_stop_during_the_campaign_gets_nothing_more() {
    let admin = Admin::start(PIPELINE).await;
    // Opted out before: suppressed in the preview and at release.
    admin.phone_sends("+254700100003", "STOP").await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let (status, preview) = admin
        .post(
            "/api/campaigns/preview",
            json!({"campaign": paced("stop", 20.0), "csv": audience(60)}),
        )
        .await;
    assert_eq!(status, 200, "{preview}");
    assert_eq!(preview["suppressed"], 1, "{preview:#}");
    assert_eq!(preview["to_send"], 59, "{preview:#}");
    let (status, body) = admin
        .post(
            "/api/campaigns",
            json!({"campaign": paced("stop", 20.0), "csv": audience(60)}),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    // Recipient #50 says STOP while the campaign is near the start.
    admin
        .progress_until("stop", |p| p["reached"].as_u64() >= Some(5))
        .await;
    admin.phone_sends("+254700100050", "STOP").await;
    let done = admin
        .progress_until("stop", |p| p["reached"].as_u64() == Some(60))
        .await;
    assert_eq!(done["progress"]["suppressed"], 2, "{done:#}");
    assert_eq!(done["progress"]["sent"], 58, "{done:#}");
    let to: Vec<String> = admin
        .sent()
        .iter()
        .map(|m| m.connection.identity.clone())
        .collect();
    assert!(!to.contains(&"+254700100003".to_string()));
    assert!(!to.contains(&"+254700100050".to_string()));
}

#[tokio::test]
async fn a_scheduled_campaign_starts_on_time_and_holds_up_no_other() {
    let clock = smsflow::campaign::quiet::FakeClock::new(chrono::Utc::now());
    let admin = Admin::start_on(PIPELINE, std::sync::Arc::new(clock.clone())).await;
    let start = chrono::Utc::now() + chrono::Duration::hours(1);
    let mut later = paced("tomorrow", 1000.0);
    later["start_at"] = json!(start.to_rfc3339());
    let (status, body) = admin
        .post(
            "/api/campaigns",
            json!({"campaign": later, "csv": audience(30)}),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(body["campaign"]["state"], "scheduled", "{body}");
    // Another campaign, started after it, goes out meanwhile.
    let csv = "phone,name\n+254700400001,Q\n+254700400002,R\n";
    let (status, body) = admin
        .post(
            "/api/campaigns",
            json!({"campaign": paced("today", 1000.0), "csv": csv}),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    admin
        .progress_until("today", |p| p["sent"].as_u64() == Some(2))
        .await;
    let (_, waiting) = admin.get("/api/campaigns/tomorrow").await;
    assert_eq!(waiting["progress"]["reached"], 0, "{waiting:#}");
    assert_eq!(waiting["campaign"]["state"], "scheduled");
    // Its time comes.
    clock.set(start);
    let done = admin
        .progress_until("tomorrow", |p| p["sent"].as_u64() == Some(30))
        .await;
    assert_eq!(done["campaign"]["state"], "completed", "{done:#}");
}
