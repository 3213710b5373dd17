//! The new-campaign form: preview, start, refusals; a campaign's page and
//! its buttons.

use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::*;

/// Six lines: one invalid (line 5), one duplicate (0712345678 is
/// +254712345678 in KE), one in Swahili, markup in a name and a city;
/// CRLF line ends, as browsers send a textarea's.
const AUDIENCE: &str = "phone,name,language,city\r\n\
+254712345678,Wanjiru,sw,Nyeri\r\n\
0712345678,Wanjiru again,,Nyeri\r\n\
254700000001,<script>alert('name')</script>,,Kisumu\r\n\
not-a-number,Nobody,,Nowhere\r\n\
+254700000002,,,<b>Mombasa</b>\r\n\
+254700000003,Amina,en,\r\n";

fn form<'a>(name: &'a str, csv: &'a str, action: &'a str) -> Vec<(&'a str, &'a str)> {
    vec![
        ("name", name),
        ("id", ""),
        ("backend", "bulk"),
        ("text-en", "Hello {name}, the market in {city} opens at 8."),
        (
            "text-sw",
            "Habari {name}, soko la {city} linafunguliwa saa mbili.",
        ),
        ("defaults", "name=friend\r\ncity=town"),
        ("groups", ""),
        ("start_at", ""),
        ("end_at", ""),
        ("messages_per_second", ""),
        ("segments_per_second", ""),
        ("daily_cap", ""),
        ("quiet_from", ""),
        ("quiet_until", ""),
        ("timezone", ""),
        ("auto_pause_errors", ""),
        ("csv", csv),
        ("action", action),
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_campaign_is_previewed_started_and_followed_on_its_pages() {
    let web = Pages::start(PIPELINE).await;
    let (status, html) = web.get("/campaigns/new").await;
    assert_eq!(status, 200, "{html}");
    assert!(
        html.contains("<textarea id=\"text-en\" name=\"text-en\""),
        "{html}"
    );
    assert!(
        html.contains("<textarea id=\"text-sw\" name=\"text-sw\""),
        "{html}"
    );
    assert!(html.contains("<option value=\"bulk\""), "{html}");
    assert!(
        html.contains(
            "<option value=\"bulk\" selected>bulk</option><option value=\"message_tester\">"
        ),
        "every backend, a provider's (here discard) first and chosen: {html}"
    );
    assert!(html.contains("type=\"datetime-local\"") && html.contains("Start (UTC)"));
    assert!(html.contains("<script src=\"/static/import.js\"></script>"));

    let name = "Harvest <script>alert('x')</script>";
    let (status, _, html) = web
        .post("/campaigns/new", &form(name, AUDIENCE, "preview"))
        .await;
    assert_eq!(status, 200, "{html}");
    let count = |id: &str| text_of(&html, id).unwrap_or_else(|| panic!("no #{id} in {html}"));
    assert_eq!(count("preview-lines"), "6");
    assert_eq!(count("preview-invalid"), "1");
    assert_eq!(count("preview-duplicates"), "1");
    assert_eq!(count("preview-to-send"), "4");
    assert_eq!(count("preview-languages"), "en: 3, sw: 1");
    assert_eq!(count("preview-ok"), "Ready: 4 to send.");
    assert!(
        html.contains(
            "<ul id=\"invalid-lines\"><li>Line 5: invalid number &quot;not-a-number&quot;"
        ),
        "{html}"
    );
    // The form comes back filled in, everything escaped.
    assert_eq!(
        value_of(&html, "name").as_deref(),
        Some("Harvest &lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt;")
    );
    assert!(
        html.contains("254700000001,&lt;script&gt;alert(&#39;name&#39;)&lt;/script&gt;,,Kisumu"),
        "{html}"
    );
    assert!(!html.contains("<script>alert"), "{html}");
    assert!(
        web.sends.lock().unwrap().is_empty(),
        "a preview sends nothing"
    );

    let (status, location, html) = web
        .post("/campaigns/new", &form(name, AUDIENCE, "start"))
        .await;
    assert_eq!(status, 303, "{html}");
    assert!(
        location.starts_with("/campaigns/c-") && location.ends_with("?done=started"),
        "{location}"
    );
    let page = web
        .page_until(&location, |h| {
            text_of(h, "count-sent").as_deref() == Some("4")
                && text_of(h, "state").as_deref() == Some("completed")
        })
        .await;
    assert_eq!(text_of(&page, "flash").as_deref(), Some("Started."));
    assert_eq!(text_of(&page, "progress-percent").as_deref(), Some("100 %"));
    assert!(
        page.contains("<progress id=\"progress\" max=\"100\" value=\"100.00\">"),
        "{page}"
    );
    assert_eq!(text_of(&page, "count-recipients").as_deref(), Some("4"));
    assert_eq!(text_of(&page, "count-failed").as_deref(), Some("0"));
    assert_eq!(text_of(&page, "state").as_deref(), Some("completed"));
    // 4 single-segment messages at 0.005 each (+254).
    assert_eq!(text_of(&page, "segments").as_deref(), Some("4"));
    assert_eq!(text_of(&page, "cost").as_deref(), Some("0.02"));
    assert!(page.contains("data-count=\"4\""), "the chart's bar: {page}");
    assert_eq!(
        text_of(&page, "name").as_deref(),
        Some("Harvest &lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt;")
    );
    assert!(!page.contains("<script"), "{page}");
    assert!(
        !page.contains("id=\"pause\""),
        "a completed campaign has no buttons"
    );

    let (_, list) = web.get("/campaigns/").await;
    assert!(list.contains("Harvest &lt;script&gt;"), "{list}");
    assert!(!list.contains("<script"), "{list}");
    let id = location
        .trim_start_matches("/campaigns/")
        .trim_end_matches("?done=started");
    assert!(
        list.contains(&format!("<a href=\"/campaigns/{id}\">")),
        "{list}"
    );

    let mut sent: Vec<String> = web
        .sends
        .lock()
        .unwrap()
        .iter()
        .map(|m| format!("{} {}", m.connection.identity, m.text))
        .collect();
    sent.sort();
    assert_eq!(
        sent,
        [
            "+254700000001 Hello <script>alert('name')</script>, the market in Kisumu opens at 8.",
            "+254700000002 Hello friend, the market in <b>Mombasa</b> opens at 8.",
            "+254700000003 Hello Amina, the market in town opens at 8.",
            "+254712345678 Habari Wanjiru, soko la Nyeri linafunguliwa saa mbili.",
        ],
        "the texts go out as written: escaping is the page's, not the message's"
    );
    // A finished campaign cannot be paused.
    let (status, _, html) = web.post(&format!("/campaigns/{id}/pause"), &[]).await;
    assert_eq!(status, 409, "{html}");
    assert!(html.contains("is completed: nothing to pause"), "{html}");
    drop(web.running);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_form_keeps_the_input_and_names_the_field() {
    let web = Pages::start(PIPELINE).await;
    let csv = "phone,city\n+254700000001,<i>Nyeri</i>\n";
    // The fields changed, the field named, the words of the refusal.
    type Case<'a> = (Vec<(&'a str, &'a str)>, &'a str, &'a str);
    let cases: Vec<Case> = vec![
        (vec![("text-en", ""), ("text-sw", "")], "texts", "Texts: no text"),
        (vec![("start_at", "tomorrow")], "start_at", "Start (UTC): \"tomorrow\" is not a date and time"),
        (vec![("start_at", "2020-01-01T08:00")], "start_at", "Start (UTC): 2020-01-01 08:00:00 UTC is in the past"),
        (vec![("end_at", "2020-01-01T08:00")], "end_at", "End (UTC): 2020-01-01 08:00:00 UTC is not after the start"),
        (vec![("messages_per_second", "-1")], "messages_per_second", "Messages per second: expected a number above 0"),
        (vec![("quiet_from", "22:00")], "quiet_from", "Quiet hours from: quiet hours need both"),
        (vec![("timezone", "Mars/Olympus")], "timezone", "Time zone: "),
        (vec![("backend", "nope")], "backend", "Backend: no backend &quot;nope&quot; in this pipeline"),
        (vec![("id", "no spaces")], "id", "Id: \"no spaces\": expected 1 to 64 letters"),
        (vec![("csv", "name\nx\n")], "audience", "Audience: the audience has no `phone` column"),
        (vec![("text-en", "Hi {nickname}")], "texts", "Texts: the campaign&#39;s &quot;en&quot; text &quot;Hi {nickname}&quot; uses {nickname}"),
    ];
    for (changes, field, words) in cases {
        let mut f = form("Kept <name>", csv, "start");
        for (k, v) in &changes {
            f.iter_mut().find(|(key, _)| key == k).unwrap().1 = v;
        }
        let (status, _, html) = web.post("/campaigns/new", &f).await;
        assert_eq!(status, 400, "{changes:?}: {html}");
        let summary = text_of(&html, "error-form").unwrap_or_default();
        assert!(
            summary.contains(&words.replace('"', "&quot;")),
            "{changes:?}: {summary:?} should say {words:?}"
        );
        assert!(
            html.contains(&format!("id=\"error-{field}\"")),
            "{changes:?}: no error next to {field}: {html}"
        );
        assert_eq!(
            value_of(&html, "name").as_deref(),
            Some("Kept &lt;name&gt;"),
            "{changes:?}"
        );
        let kept = changes
            .iter()
            .find(|(k, _)| *k == "csv")
            .map_or(csv, |(_, v)| v);
        let kept = format!(
            "{}</textarea>",
            kept.replace('<', "&lt;").replace('>', "&gt;")
        );
        assert!(html.contains(&kept), "{changes:?}: the CSV kept: {html}");
        for (k, v) in changes {
            if k.starts_with("text-") || k == "csv" || k == "backend" {
                continue;
            }
            assert_eq!(
                value_of(&html, k).as_deref(),
                Some(v.replace('<', "&lt;").as_str()),
                "{k} kept"
            );
        }
    }
    // A recipient missing a variable comes back with the preview, naming the line.
    let gap = "phone,city\n+254700000001,Nyeri\n+254700000002,\n";
    let mut f = form("x", gap, "start");
    f[3].1 = "In {city}";
    f[4].1 = "";
    f[5].1 = "";
    let (status, _, html) = web.post("/campaigns/new", &f).await;
    assert_eq!(status, 400, "{html}");
    assert!(html.contains("id=\"error-audience\""), "{html}");
    assert_eq!(
        text_of(&html, "preview-missing").as_deref(),
        Some("1"),
        "{html}"
    );
    assert!(
        html.contains("<ul id=\"missing-lines\"><li>Line 3: "),
        "{html}"
    );
    assert!(web.sends.lock().unwrap().is_empty());
    let (_, list) = web.get("/campaigns/").await;
    assert!(list.contains("No campaigns yet."), "{list}");
    drop(web.running);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upload_over_the_body_limit_but_within_the_upload_limit_is_read() {
    let yaml = PIPELINE.replace("campaigns:\n", "campaigns:\n  max_upload_bytes: 4000000\n");
    let web = Pages::start(&yaml).await;
    // ~1.9 MB as sent: over http.limits.max_body_bytes (1 MiB).
    let mut csv = String::from("phone,name\n");
    for i in 0..60_000 {
        csv += &format!("+2547{i:08},N{i}\n");
    }
    let (status, _, html) = web
        .post("/campaigns/new", &form("big", &csv, "preview"))
        .await;
    assert_eq!(status, 200, "{}", &html[..html.len().min(2000)]);
    assert_eq!(text_of(&html, "preview-to-send").as_deref(), Some("60000"));
    // Over the upload limit: refused by the guard from its declared
    // length, naming the limit (the body is not sent: the server answers
    // before reading it, and a client still writing would see a reset).
    let head = format!(
        "POST /campaigns/new HTTP/1.1\r\nHost: 127.0.0.1\r\nCookie: {}\r\n\
         Content-Type: application/x-www-form-urlencoded\r\nContent-Length: 4000001\r\n\r\n",
        web.cookie
    );
    let addr = web.base.trim_start_matches("http://");
    let mut conn = tokio::net::TcpStream::connect(addr).await.unwrap();
    conn.write_all(head.as_bytes()).await.unwrap();
    let mut answer = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(10), conn.read_to_end(&mut answer)).await;
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.starts_with("HTTP/1.1 413"), "{answer}");
    assert!(
        answer.contains("larger than campaigns.max_upload_bytes (4000000 bytes)"),
        "{answer}"
    );
    drop(web.running);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pause_resume_and_cancel_buttons_follow_the_state() {
    let web = Pages::start(PIPELINE).await;
    let mut csv = String::from("phone\n");
    for i in 0..200 {
        csv += &format!("+2547{i:08}\n");
    }
    let mut f = form("slow", &csv, "start");
    f[1].1 = "slow-1";
    f.iter_mut()
        .find(|(k, _)| *k == "messages_per_second")
        .unwrap()
        .1 = "1";
    let (status, location, html) = web.post("/campaigns/new", &f).await;
    assert_eq!(status, 303, "{html}");
    assert_eq!(location, "/campaigns/slow-1?done=started");
    let (_, page) = web.get("/campaigns/slow-1").await;
    assert!(
        page.contains("id=\"pause\"")
            && page.contains("id=\"cancel\"")
            && !page.contains("id=\"resume\""),
        "{page}"
    );
    assert_eq!(text_of(&page, "state").as_deref(), Some("running"));
    assert_eq!(
        web.refresh("/campaigns/slow-1").await.as_deref(),
        Some("2"),
        "a running campaign's page reloads itself"
    );
    assert_eq!(
        web.refresh("/campaigns/").await.as_deref(),
        Some("2"),
        "and so does the list"
    );

    let (status, location, html) = web.post("/campaigns/slow-1/pause", &[]).await;
    assert_eq!(
        (status, location.as_str()),
        (303, "/campaigns/slow-1?done=pause"),
        "{html}"
    );
    let (_, page) = web.get(&location).await;
    assert_eq!(text_of(&page, "flash").as_deref(), Some("Paused."));
    assert_eq!(text_of(&page, "state").as_deref(), Some("paused"));
    assert!(
        page.contains("id=\"resume\"") && !page.contains("id=\"pause\""),
        "{page}"
    );

    let (status, location, _) = web.post("/campaigns/slow-1/resume", &[]).await;
    assert_eq!(
        (status, location.as_str()),
        (303, "/campaigns/slow-1?done=resume")
    );
    let (_, page) = web.get("/campaigns/slow-1").await;
    assert_eq!(text_of(&page, "state").as_deref(), Some("running"));

    let (status, _, _) = web.post("/campaigns/slow-1/cancel", &[]).await;
    assert_eq!(status, 303);
    let (_, page) = web.get("/campaigns/slow-1").await;
    assert_eq!(text_of(&page, "state").as_deref(), Some("cancelled"));
    assert_eq!(
        web.refresh("/campaigns/slow-1").await,
        None,
        "nothing moves any more"
    );
    assert!(!page.contains("id=\"commands\""), "{page}");
    let sent: u64 = text_of(&page, "count-reached").unwrap().parse().unwrap();
    assert!(
        sent < 200,
        "cancelled before the end: {sent} of 200 reached"
    );
    let (status, _, html) = web.post("/campaigns/slow-1/explode", &[]).await;
    assert_eq!(status, 404, "{html}");
    assert!(html.contains("expected pause, resume or cancel"), "{html}");
    drop(web.running);
}
