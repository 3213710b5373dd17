//! `/api/stats` and `/api/stats/top` over fixture records: partitions
//! summed, a replaced record counted once, percentiles from the merged
//! histograms, the top keywords in order, and a 400 naming each bad
//! parameter.

use std::time::{Duration, Instant};

use serde_json::Value;
use smsflow::message::StatsDimension::{Backend, Keyword, Total};

use super::{common, minute, record, write};

async fn get(base: &str, path: &str) -> (u16, Value) {
    common::json_answer(reqwest::get(format!("{base}{path}")).await.unwrap()).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_json_api_sums_partitions_and_names_bad_parameters() {
    let running = common::start_embedded(common::WEB_PIPELINE).await;
    let base = format!("http://{}", running.admin_addr().unwrap());
    let (m2, m1) = (minute(2), minute(1));
    write(
        &running,
        &[
            record(m2, Total, "", 0, 10, 4, 100, 2_000),
            record(m2, Total, "", 1, 6, 6, 500, 2_000),
            // Partition 0 again, further on: it replaces the first record.
            record(m2, Total, "", 0, 12, 8, 100, 2_000),
            record(m1, Total, "", 0, 1, 0, 0, 0),
            record(m2, Backend, "kannel", 0, 0, 8, 100, 2_000),
            record(m2, Backend, "kannel", 1, 0, 6, 500, 3_000),
            record(m2, Keyword, "join", 0, 5, 0, 0, 0),
            record(m2, Keyword, "join", 1, 4, 0, 0, 0),
            record(m2, Keyword, "stop", 0, 7, 0, 0, 0),
            record(m1, Keyword, "help", 1, 1, 0, 0, 0),
        ],
    )
    .await;
    // The table follows the topic on a task of its own.
    let deadline = Instant::now() + Duration::from_secs(20);
    let body = loop {
        let (status, body) = get(&base, "/api/stats").await;
        assert_eq!(status, 200, "{body}");
        if body["total"]["inbound"] == 19 && body["points"].as_array().unwrap().len() == 2 {
            break body;
        }
        assert!(Instant::now() < deadline, "still {body}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(body["window"], "minute");
    assert_eq!(body["dimension"], "total");
    let p = &body["points"][0];
    assert_eq!(p["start"], m2);
    assert_eq!(p["end"], m2 + 60_000);
    assert_eq!(
        (
            &p["inbound"],
            &p["sent"],
            &p["delivered"],
            &p["failed"],
            &p["outbound"]
        ),
        (
            &Value::from(18),
            &Value::from(14),
            &Value::from(7),
            &Value::from(2),
            &Value::from(16)
        ),
        "{p}"
    );
    assert_eq!(p["delivery_rate"], 0.5);
    // 8 sends at 100 ms and 6 at 500 ms, from two partitions.
    let lat = &p["accepted_to_sent"];
    assert_eq!(
        (&lat["count"], &lat["p50_ms"], &lat["p95_ms"]),
        (&Value::from(14), &Value::from(100), &Value::from(500))
    );
    assert_eq!(lat["mean_ms"], (8 * 100 + 6 * 500) / 14);
    // Nothing sent in the last minute: no rate, not 0.
    assert_eq!(body["points"][1]["delivery_rate"], Value::Null);
    assert_eq!(body["total"]["sent"], 14);

    let (status, kannel) = get(&base, "/api/stats?dimension=backend&value=kannel").await;
    assert_eq!(status, 200, "{kannel}");
    let s2d = &kannel["total"]["sent_to_delivered"];
    assert_eq!(
        (&s2d["count"], &s2d["p50_ms"], &s2d["p99_ms"]),
        (&Value::from(7), &Value::from(2_000), &Value::from(3_000))
    );
    let (_, nobody) = get(&base, "/api/stats?dimension=backend&value=nobody").await;
    assert_eq!(nobody["points"], Value::Array(vec![]));
    assert_eq!(nobody["total"]["delivery_rate"], Value::Null);

    let (status, top) = get(&base, "/api/stats/top?dimension=keyword&n=2").await;
    assert_eq!(status, 200, "{top}");
    assert_eq!(top["by"], "inbound");
    let ranked: Vec<(&str, i64)> = top["top"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| (t["value"].as_str().unwrap(), t["inbound"].as_i64().unwrap()))
        .collect();
    assert_eq!(ranked, [("join", 9), ("stop", 7)]);
    let (_, hours) = get(&base, "/api/stats?window=hour").await;
    assert_eq!(
        hours["points"],
        Value::Array(vec![]),
        "no hour records written"
    );

    for (query, field) in [
        ("/api/stats?window=week", "window"),
        ("/api/stats?dimension=country&value=x", "dimension"),
        ("/api/stats?dimension=backend", "value"),
        ("/api/stats?from=yesterday", "from"),
        ("/api/stats?to=2025-13-01T00:00:00Z", "to"),
        ("/api/stats?from=0", "from"),
        ("/api/stats?colour=red", "query"),
        ("/api/stats/top", "dimension"),
        ("/api/stats/top?dimension=keyword&by=joy", "by"),
        ("/api/stats/top?dimension=keyword&n=0", "n"),
    ] {
        let (status, body) = get(&base, query).await;
        assert_eq!(status, 400, "{query}: {body}");
        assert_eq!(body["field"], field, "{query}: {body}");
        assert!(
            body["error"].as_str().is_some_and(|e| !e.is_empty()),
            "{body}"
        );
    }
    // The page: /dashboard leads to it; an unknown range is a 400 saying so.
    let res = reqwest::get(format!("{base}/dashboard")).await.unwrap();
    assert_eq!(res.url().path(), "/dashboard/");
    assert_eq!(res.status(), 200);
    assert_eq!(res.headers()["refresh"], "5");
    let html = res.text().await.unwrap();
    assert!(
        html.contains("<td class=\"number\" id=\"total-inbound\">19</td>"),
        "{html}"
    );
    let res = reqwest::get(format!("{base}/dashboard/?range=week"))
        .await
        .unwrap();
    assert_eq!(res.status(), 400);
    assert!(res
        .text()
        .await
        .unwrap()
        .contains("No range &quot;week&quot;"));
    running.shutdown().await.unwrap();
}

/// On Kafka (librdkafka's mock cluster) the statistics are read at the
/// first question: what was written before it is there at once, and what
/// comes after is followed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_kafka_the_statistics_are_read_at_the_first_question_and_followed() {
    let p = common::pipeline_from(common::WEB_PIPELINE, smsflow::config::KafkaMode::Mock);
    let running = smsflow::topology::Topology::new(p)
        .unwrap()
        .start(None, true)
        .await
        .unwrap();
    let base = format!("http://{}", running.admin_addr().unwrap());
    let m2 = minute(2);
    write(
        &running,
        &[
            record(m2, Total, "", 0, 10, 4, 100, 2_000),
            record(m2, Total, "", 1, 6, 6, 500, 2_000),
        ],
    )
    .await;
    // The first question restores the table to the topic's end first.
    let (status, body) = get(&base, "/api/stats").await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["total"]["inbound"], 16, "{body}");
    write(&running, &[record(m2, Total, "", 0, 12, 8, 100, 2_000)]).await;
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let (_, body) = get(&base, "/api/stats").await;
        if body["total"]["inbound"] == 18 {
            break;
        }
        assert!(Instant::now() < deadline, "still {body}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    running.shutdown().await.unwrap();
}
