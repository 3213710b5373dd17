//! A campaign created on its page in a real browser (Debian's Chromium,
//! through chromedriver): the form filled in, the audience chosen with the
//! file picker, the preview read, the campaign started, its page watched
//! (it reloads itself) until its progress reads 100 % and its statistics
//! show every message sent; the provider stub got exactly one message per
//! recipient.
//!
//! Needs `chromium` and `chromium-driver` (the test script installs them).

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use smsflow::config::KafkaMode;
use smsflow::message::OutboundMessage;
use smsflow::topology::Topology;

#[path = "../common/mod.rs"]
mod common;
mod driver;

use driver::{Driver, Session};

const PIPELINE: &str = common::CAMPAIGN_PIPELINE;

/// Seven lines: 0712345678 is +254712345678 again (KE), line 5 is no
/// number; five recipients, two of them in Swahili.
const AUDIENCE: &str = "phone,name,language,city\n\
+254712345678,Wanjiru,sw,Nyeri\n\
0712345678,Wanjiru again,,Nyeri\n\
254700000001,Otieno,,Kisumu\n\
not-a-number,Nobody,,Nowhere\n\
+254700000002,,,Mombasa\n\
+254700000003,Amina,en,\n\
+254700000004,Baraka,sw,Lamu\n";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_campaign_is_created_from_a_csv_file_and_followed_to_the_end_in_a_real_browser() {
    require_tools!(common::Tool::Chromium, common::Tool::Chromedriver);
    let sends: Arc<Mutex<Vec<OutboundMessage>>> = Arc::default();
    let seen = sends.clone();
    let running = Topology::new(common::pipeline_from(PIPELINE, KafkaMode::Embedded))
        .unwrap()
        .with_send_hook(
            "bulk",
            Arc::new(move |m: &OutboundMessage| seen.lock().unwrap().push(m.clone())),
        )
        .start(None, true)
        .await
        .unwrap();
    let base = format!("http://{}", running.admin_addr().unwrap());
    let driver = Driver::start().await;
    let s = Session::start(&driver).await;

    // The nav leads to the campaigns; the list is empty.
    s.open(&format!("{base}/contacts/")).await;
    s.click("nav a[href='/campaigns/']").await;
    s.wait_for("#none", |t| t == ["No campaigns yet."]).await;
    s.click("#new").await;

    // The form, the audience from a file through the picker.
    let name = "Harvest <script>alert(1)</script>";
    s.wait_for("#campaign", |t| t.len() == 1).await;
    s.type_into("#name", name).await;
    s.type_into("#id", "harvest").await;
    s.click("#backend option[value=bulk]").await;
    s.type_into("#text-en", "Hello {name}, the market in {city} opens at 8.")
        .await;
    s.type_into(
        "#text-sw",
        "Habari {name}, soko la {city} linafunguliwa saa mbili.",
    )
    .await;
    s.type_into("#defaults", "name=friend\ncity=town").await;
    // Slow enough that the page is seen before the end, and reloads itself.
    s.type_into("#messages_per_second", "2").await;
    let csv = tempfile::Builder::new().suffix(".csv").tempfile().unwrap();
    std::fs::write(csv.path(), AUDIENCE).unwrap();
    s.type_into("#file", &csv.path().display().to_string())
        .await;
    let deadline = Instant::now() + Duration::from_secs(20);
    while !s.value("#csv").await.contains("Baraka") {
        assert!(
            Instant::now() < deadline,
            "the file was not read into the form"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // Preview: the counts on the page, the form still filled in.
    s.click("#preview").await;
    s.wait_for("#preview-to-send", |t| t == ["5"]).await;
    assert_eq!(s.text("#preview-lines").await, "7");
    assert_eq!(s.text("#preview-invalid").await, "1");
    assert_eq!(s.text("#preview-duplicates").await, "1");
    assert_eq!(s.text("#preview-suppressed").await, "0");
    assert_eq!(s.text("#preview-segments").await, "5");
    assert_eq!(s.text("#preview-gsm7").await, "5");
    assert_eq!(s.text("#preview-languages").await, "en: 3, sw: 2");
    assert_eq!(s.text("#preview-cost").await, "0.025");
    assert_eq!(s.text("#preview-ok").await, "Ready: 5 to send.");
    let bad = s.texts("#invalid-lines li").await.unwrap();
    assert_eq!(bad.len(), 1, "{bad:?}");
    assert!(
        bad[0].starts_with("Line 5: invalid number \"not-a-number\""),
        "{bad:?}"
    );
    assert_eq!(s.value("#name").await, name);
    assert_eq!(
        s.value("#text-sw").await,
        "Habari {name}, soko la {city} linafunguliwa saa mbili."
    );
    assert!(s
        .value("#csv")
        .await
        .contains("+254700000004,Baraka,sw,Lamu"));
    s.screenshot("campaign-preview.b64").await;
    assert!(sends.lock().unwrap().is_empty(), "a preview sends nothing");

    // Start: the campaign's page, which reloads itself until it is done.
    s.click("#start").await;
    let deadline = Instant::now() + Duration::from_secs(20);
    while !s
        .url()
        .await
        .is_some_and(|u| u.contains("/campaigns/harvest"))
    {
        assert!(
            Instant::now() < deadline,
            "not on the campaign's page: {:?}",
            s.url().await
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // Said, not asserted (it depends on timing): whether the page had to
    // reload itself to get to the end.
    let first = s.text("#progress-percent").await;
    eprintln!("the campaign page first read {first}");
    s.wait_for("#progress-percent", |t| t == ["100 %"]).await;
    s.wait_for("#count-sent", |t| t == ["5"]).await;
    s.wait_for("#state", |t| t == ["completed"]).await;
    assert_eq!(
        s.text("#name").await,
        name,
        "the name shows as typed: escaped, not run"
    );
    assert_eq!(s.text("#count-recipients").await, "5");
    assert_eq!(s.text("#count-failed").await, "0");
    assert_eq!(s.text("#count-suppressed").await, "0");
    assert_eq!(s.text("#segments").await, "5");
    assert_eq!(s.text("#cost").await, "0.025");
    assert_eq!(s.attributes("#progress", "value").await, ["100.00"]);
    let file = csv
        .path()
        .file_name()
        .unwrap()
        .to_string_lossy()
        .into_owned();
    assert_eq!(
        s.text("#def-file").await,
        file,
        "the picked file's name is kept"
    );
    assert_eq!(s.text("#def-mps").await, "2");
    let bars: u64 = s
        .attributes("#chart rect.bar", "data-count")
        .await
        .iter()
        .map(|n| n.parse::<u64>().unwrap())
        .sum();
    assert_eq!(bars, 5, "the chart counts every message sent");
    s.wait_for("#commands", |t| t.is_empty()).await;
    s.screenshot("campaign-page.b64").await;

    // The list shows it too.
    s.click("a[href='/campaigns/']").await;
    s.wait_for("#campaigns td.sent", |t| t == ["5"]).await;
    assert_eq!(s.text("#campaigns td.name a").await, name);
    assert_eq!(s.text("#campaigns .percent").await, "100 %");
    s.screenshot("campaign-list.b64").await;

    // The provider stub: exactly one message per recipient, in their language.
    let mut got: Vec<(String, String)> = sends
        .lock()
        .unwrap()
        .iter()
        .map(|m| (m.connection.identity.clone(), m.text.clone()))
        .collect();
    got.sort();
    let want = [
        (
            "+254700000001",
            "Hello Otieno, the market in Kisumu opens at 8.",
        ),
        (
            "+254700000002",
            "Hello friend, the market in Mombasa opens at 8.",
        ),
        (
            "+254700000003",
            "Hello Amina, the market in town opens at 8.",
        ),
        (
            "+254700000004",
            "Habari Baraka, soko la Lamu linafunguliwa saa mbili.",
        ),
        (
            "+254712345678",
            "Habari Wanjiru, soko la Nyeri linafunguliwa saa mbili.",
        ),
    ]
    .map(|(p, t)| (p.to_owned(), t.to_owned()));
    assert_eq!(got, want);

    let blocked = s.csp_violations().await;
    assert!(blocked.is_empty(), "{blocked:?}");
    s.close().await;
    running.shutdown().await.unwrap();
}
