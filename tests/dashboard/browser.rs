//! The dashboard in headless Chromium (Debian's, through chromedriver):
//! reached from the nav, its charts and tables show the fixture records'
//! numbers (a point's value in its title, the top keyword first, a
//! backend's p95), and after more records are written the page, which
//! reloads itself, shows the new ones. No CSP violation.
//!
//! Needs `chromium` and `chromium-driver` (the test script installs them).

use smsflow::message::StatsDimension::{Backend, Keyword, Total};

use super::driver::{Driver, Session};
use super::{common, minute, record, write};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_dashboard_draws_the_statistics_and_follows_new_ones_in_a_real_browser() {
    crate::require_tools!(common::Tool::Chromium, common::Tool::Chromedriver);
    let running = common::start_embedded(common::WEB_PIPELINE).await;
    let base = format!("http://{}", running.admin_addr().unwrap());
    let m3 = minute(3);
    write(
        &running,
        &[
            record(m3, Total, "", 0, 12, 8, 100, 2_000),
            record(m3, Total, "", 1, 6, 6, 500, 2_000),
            record(m3, Backend, "kannel", 0, 0, 8, 100, 2_000),
            record(m3, Backend, "kannel", 1, 0, 6, 500, 3_000),
            record(m3, Backend, "tester", 0, 0, 2, 20, 700),
            record(m3, Keyword, "join", 0, 5, 0, 0, 0),
            record(m3, Keyword, "join", 1, 4, 0, 0, 0),
            record(m3, Keyword, "stop", 0, 7, 0, 0, 0),
        ],
    )
    .await;
    let driver = Driver::start().await;
    let s = Session::start(&driver).await;

    // The nav leads to the dashboard.
    s.open(&format!("{base}/log/")).await;
    s.click("nav a[href='/dashboard/']").await;
    s.wait_for("#total-inbound", |t| t == ["18"]).await;
    assert_eq!(s.text("#total-sent").await, "14");
    assert_eq!(s.text("#total-delivered").await, "7");
    assert_eq!(s.text("#total-rate").await, "50.0 %");
    let point = format!("#chart-direction circle.point[data-series=inbound][data-start='{m3}']");
    assert_eq!(s.attributes(&point, "data-value").await, ["18"]);
    let title = s.text(&format!("{point} title")).await;
    assert!(title.ends_with("UTC: 18 inbound"), "{title}");
    let delivered = format!("#chart-status circle.point[data-series=delivered][data-start='{m3}']");
    assert_eq!(s.attributes(&delivered, "data-value").await, ["7"]);
    let rate = format!("#chart-rate circle.point[data-start='{m3}']");
    assert_eq!(s.attributes(&rate, "data-value").await, ["50.0 %"]);
    // One rate point: the other minutes sent nothing.
    assert_eq!(
        s.attributes("#chart-rate circle.point", "data-value")
            .await
            .len(),
        1
    );
    // Latency per backend: p95 of 8 × 100 ms and 6 × 500 ms is 500 ms.
    let p95 = "#chart-latency-sent rect.bar[data-row=kannel][data-series=p95]";
    assert_eq!(s.attributes(p95, "data-value").await, ["500 ms"]);
    let p50 = "#chart-latency-delivered rect.bar[data-row=kannel][data-series=p50]";
    assert_eq!(s.attributes(p50, "data-value").await, ["2.0 s"]);
    assert_eq!(
        s.attributes("#chart-latency-sent rect.bar[data-series=p99]", "data-row")
            .await,
        ["kannel", "tester"]
    );
    // The top keywords, in the chart and its table.
    assert_eq!(
        s.attributes("#chart-keywords rect.bar", "data-row").await,
        ["join", "stop"]
    );
    assert_eq!(
        s.texts("#table-keywords td.keyword").await.unwrap(),
        ["join", "stop"]
    );
    assert_eq!(
        s.texts("#table-keywords td.inbound").await.unwrap(),
        ["9", "7"]
    );
    // The tables hold the charts' numbers.
    let rows = s.texts("#table-direction td.inbound").await.unwrap();
    assert_eq!(rows.len(), 60, "a row per minute of the hour");
    assert_eq!(rows.iter().filter(|r| *r == "18").count(), 1, "{rows:?}");
    s.screenshot("dashboard.b64").await;

    // More records: partition 0 further on, "stop" passing "join". The
    // page reloads itself and shows them.
    write(
        &running,
        &[
            record(m3, Total, "", 0, 30, 20, 100, 2_000),
            record(m3, Keyword, "stop", 1, 20, 0, 0, 0),
        ],
    )
    .await;
    s.wait_for("#total-inbound", |t| t == ["36"]).await;
    s.wait_for("#table-keywords td.keyword", |t| t == ["stop", "join"])
        .await;
    assert_eq!(s.text("#total-sent").await, "26");
    assert_eq!(s.attributes(&point, "data-value").await, ["36"]);
    assert_eq!(
        s.attributes("#chart-keywords rect.bar", "data-row").await,
        ["stop", "join"]
    );

    // The range selector: by hour there is nothing yet.
    s.click("a[href='/dashboard/?range=day']").await;
    s.wait_for("#empty", |t| t.len() == 1).await;
    assert_eq!(s.text("#total-inbound").await, "0");
    assert_eq!(
        s.texts("#table-direction td.inbound").await.unwrap().len(),
        24
    );

    let blocked = s.csp_violations().await;
    assert!(blocked.is_empty(), "{blocked:?}");
    s.close().await;
    running.shutdown().await.unwrap();
}
