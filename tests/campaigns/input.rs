//! Bad campaigns and bad audiences: each refused naming the field and the
//! problem, or each bad line reported with its number.

use base64::prelude::{Engine as _, BASE64_STANDARD};
use serde_json::{json, Value};

use super::{Admin, PIPELINE};

fn with(extra: Value) -> Value {
    let mut c = json!({"backend": "bulk", "texts": {"en": "Hi {name}"}});
    for (k, v) in extra.as_object().unwrap() {
        c[k] = v.clone();
    }
    c
}

#[tokio::test]
async fn bad_campaigns_are_refused_naming_what_is_wrong() {
    let admin = Admin::start(PIPELINE).await;
    let csv = "phone,name\n+254700300001,A\n";
    let cases: Vec<(Value, &str, u16, &str)> = vec![
        (
            with(json!({"texts": {"en": "Hi {nickname}"}})),
            csv,
            400,
            "nickname",
        ),
        (
            with(json!({"start_at": "2020-01-01T00:00:00Z"})),
            csv,
            400,
            "in the past",
        ),
        (
            with(json!({"start_at": "2099-01-02T00:00:00Z", "end_at": "2099-01-01T00:00:00Z"})),
            csv,
            400,
            "not after the start",
        ),
        (with(json!({"backend": "nope"})), csv, 400, "no backend"),
        (
            with(json!({"quiet_from": "21:00"})),
            csv,
            400,
            "quiet_until",
        ),
        (
            with(json!({"timezone": "Mars/Olympus"})),
            csv,
            400,
            "Mars/Olympus",
        ),
        (with(json!({"messages_per_second": 0})), csv, 400, "above 0"),
        (
            with(json!({"id": "has space"})),
            csv,
            400,
            "letters, digits",
        ),
        (with(json!({})), "phone,name\n", 400, "no data lines"),
        (
            with(json!({})),
            "number,name\n+254700300001,A\n",
            400,
            "phone",
        ),
    ];
    for (campaign, csv, status, words) in cases {
        let (got, body) = admin
            .post(
                "/api/campaigns",
                json!({"campaign": campaign.clone(), "csv": csv}),
            )
            .await;
        let text = body.to_string();
        assert_eq!(got, status, "{campaign}: {text}");
        assert!(
            text.contains(words),
            "{campaign}: expected {words:?} in {text}"
        );
    }
    // Unknown fields are named.
    let (got, body) = admin
        .post(
            "/api/campaigns",
            json!({"campaign": with(json!({"colour": "red"})), "csv": csv}),
        )
        .await;
    assert_eq!(got, 400, "{body}");
    assert!(body.to_string().contains("colour"), "{body}");
    // A campaign starts once.
    let ok = json!({"campaign": with(json!({"id": "once"})), "csv": csv});
    assert_eq!(admin.post("/api/campaigns", ok.clone()).await.0, 201);
    let (got, body) = admin.post("/api/campaigns", ok).await;
    assert_eq!(got, 400, "{body}");
    assert!(body.to_string().contains("exists"), "{body}");
}

#[tokio::test]
async fn a_missing_variable_fails_the_preview_with_line_numbers() {
    let admin = Admin::start(PIPELINE).await;
    let csv = "phone,name,city\n+254700300001,A,Nyeri\n+254700300002,B,\n+254700300003,C,Kisumu\n";
    let campaign = with(json!({"texts": {"en": "Hi {name} of {city}"}}));
    let (status, preview) = admin
        .post(
            "/api/campaigns/preview",
            json!({"campaign": campaign, "csv": csv}),
        )
        .await;
    assert_eq!(status, 200, "{preview}");
    assert_eq!(preview["missing"], 1, "{preview:#}");
    assert_eq!(preview["missing_lines"][0]["line"], 3, "{preview:#}");
    assert!(
        !preview["problems"].as_array().unwrap().is_empty(),
        "{preview:#}"
    );
    // Never an empty string sent: the start is refused.
    let (status, body) = admin
        .post("/api/campaigns", json!({"campaign": campaign, "csv": csv}))
        .await;
    assert_eq!(status, 400, "{body}");
    // With a default it goes.
    let campaign =
        with(json!({"texts": {"en": "Hi {name} of {city}"}, "defaults": {"city": "your town"}}));
    let (status, preview) = admin
        .post(
            "/api/campaigns/preview",
            json!({"campaign": campaign, "csv": csv}),
        )
        .await;
    assert_eq!(
        (status, preview["to_send"].clone()),
        (200, json!(3)),
        "{preview:#}"
    );
}

#[tokio::test]
async fn an_audience_with_bad_lines_keeps_its_good_ones() {
    let admin = Admin::start(PIPELINE).await;
    let mut bytes = b"phone,name\r\n+254700300001,A\r\n+254700300002,B,extra\r\n".to_vec();
    bytes.extend_from_slice(b"+254700300003,\xff\xfe\r\n+254700300004,D\r\n");
    let campaign = with(json!({"defaults": {"name": "friend"}}));
    let (status, preview) = admin
        .post(
            "/api/campaigns/preview",
            json!({"campaign": campaign, "csv_base64": BASE64_STANDARD.encode(&bytes)}),
        )
        .await;
    assert_eq!(status, 200, "{preview}");
    assert_eq!(preview["invalid"], 2, "{preview:#}");
    assert_eq!(preview["invalid_lines"][0]["line"], 3, "{preview:#}");
    assert_eq!(preview["invalid_lines"][1]["line"], 4, "{preview:#}");
    assert_eq!(preview["to_send"], 2, "{preview:#}");
    let (status, body) = admin
        .post(
            "/api/campaigns/preview",
            json!({"campaign": campaign, "csv_base64": "%%%"}),
        )
        .await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["field"], "csv_base64");
}
