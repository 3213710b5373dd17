//! Both formats (and both Avro codecs) read by every tool: row counts equal
//! the topic's, types as documented, values as produced.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use rdkafka::mocking::MockCluster;
use smsflow::bus::{Bus, Produce};
use smsflow::cli::export::{run, Options};
use smsflow::config::{KafkaMode, Pipeline};
use smsflow::export::Format;
use smsflow::message::{Connection, InboundMessage};
use smsflow::schema;
use smsflow::topology::Topology;

use super::{common, event, read, T0};
use crate::require_tools;

type Mock = MockCluster<'static, rdkafka::producer::DefaultProducerContext>;

/// Events on `sms.events`.
const EVENTS: i64 = 3000;

/// A pipeline on `cluster` (its topics made) with `events` delivery events
/// and 3 inbound messages produced.
async fn produced(cluster: &Mock, group: &str) -> Pipeline {
    let yaml = "backends:\n  - type: tester\nroutes:\n  - app: echo\napps:\n  - type: echo\nexport: {dir: /nonexistent, flush_size: 1000}\n";
    let mut p = common::on_broker(
        common::pipeline_from(yaml, KafkaMode::Embedded),
        &cluster.bootstrap_servers(),
        group,
    );
    p.export = smsflow::topology::load_str(yaml, &|_| None).unwrap().export;
    let topics = Topology::new(p.clone()).unwrap().topics();
    for t in &topics {
        cluster.create_topic(&t.name, t.partitions, 1).unwrap();
    }
    let bus = Bus::connect(&p.kafka, &topics).await.unwrap();
    let producer = bus.producer().unwrap();
    let events: Arc<str> = Arc::from("sms.events");
    for i in 0..EVENTS {
        let e = event(i);
        let payload = schema::event().encode(&e).unwrap();
        producer
            .send(Produce::new(events.clone(), e.connection.key(), payload))
            .await
            .unwrap();
    }
    for i in 0..3 {
        let mut m = InboundMessage::new(Connection::new("tester", "+254700000001"), "join");
        m.id = format!("in{i}");
        m.received_at = T0;
        m.fields = BTreeMap::from([("keyword".to_owned(), format!("k{i}"))]);
        let payload = schema::inbound().encode(&m).unwrap();
        producer
            .send(Produce::new(
                Arc::from("sms.inbound"),
                m.connection.key(),
                payload,
            ))
            .await
            .unwrap();
    }
    producer
        .flush(std::time::Duration::from_secs(10))
        .await
        .unwrap();
    p
}

async fn export(p: &Pipeline, dir: &Path, format: Format) -> u64 {
    let s = run(
        p,
        &Options {
            topics: vec!["sms.events".into(), "sms.inbound".into()],
            format: Some(format),
            out: Some(dir.to_owned()),
        },
    )
    .await
    .unwrap();
    assert_eq!(s.poison, 0);
    s.files.iter().map(|f| f.records).sum()
}

/// What the test events hold, by status: every fourth one.
fn by_status() -> BTreeMap<String, i64> {
    ["sent", "delivered", "failed", "queued"]
        .iter()
        .map(|s| (s.to_string(), EVENTS / 4))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn parquet_files_are_read_by_duckdb_pyarrow_pandas_and_chdb() {
    require_tools!(common::Tool::PythonAnalytics);
    let cluster = Mock::new(1).unwrap();
    let p = produced(&cluster, "readers-parquet").await;
    let dir = tempfile::tempdir().unwrap();
    assert_eq!(
        export(&p, dir.path(), Format::Parquet).await,
        EVENTS as u64 + 3
    );
    let r = read("parquet", dir.path());

    assert_eq!(r["duckdb_count"], serde_json::json!([EVENTS, EVENTS]));
    assert_eq!(r["pyarrow_rows"], EVENTS);
    assert_eq!(r["duckdb_all_topics"], EVENTS + 3, "both topics, by name");
    // Timestamps are UTC instants; enums are strings; optional is nullable.
    let types = &r["duckdb_types"];
    assert_eq!(types["at"], "TIMESTAMP WITH TIME ZONE", "{types}");
    assert_eq!(types["status"], "VARCHAR", "{types}");
    assert_eq!(types["provider_id"], "VARCHAR", "{types}");
    assert_eq!(types["dt"], "DATE", "{types}");
    assert!(
        types["connection"]
            .as_str()
            .unwrap()
            .starts_with("STRUCT(backend VARCHAR"),
        "{types}"
    );
    let types = &r["pyarrow_types"];
    assert_eq!(types["at"], "timestamp[ms, tz=UTC]", "{types}");
    assert_eq!(types["status"], "string", "{types}");
    // A record, field by field: m17 is a delivered event at T0 + 17 min.
    assert_eq!(
        r["duckdb_m17"],
        serde_json::json!([
            "m17",
            "delivered",
            (T0 + 17 * 60_000).to_string(),
            "2026-03-02T00:17:00",
            null,
            null,
            "kannel",
            "+254700000017",
            "1",
            "2026-03-02",
            "sms.events"
        ])
    );
    // 3000 minutes from T0: three days, each with its own dt= directory.
    let days: std::collections::BTreeSet<String> = r["duckdb_by_day_status"]
        .as_array()
        .unwrap()
        .iter()
        .map(|row| row[0].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(
        days.into_iter().collect::<Vec<_>>(),
        ["2026-03-02", "2026-03-03", "2026-03-04"]
    );
    let pandas: BTreeMap<String, i64> =
        serde_json::from_value(r["pandas_by_status"].clone()).unwrap();
    assert_eq!(pandas, by_status());
    let chdb = r["chdb_by_status"].as_str().unwrap();
    assert_eq!(
        chdb,
        "\"delivered\",750\n\"failed\",750\n\"queued\",750\n\"sent\",750\n"
    );
    assert_eq!(r["chdb_count"], EVENTS.to_string());
    // Sent and failed go to "tester" (even) / "kannel" (odd) alternately:
    // tester has sent (i%4=0) and failed (2), kannel delivered (1) and queued (3).
    let mut rates: Vec<(String, String)> = r["duckdb_delivery_rate"]
        .as_array()
        .unwrap()
        .iter()
        .map(|row| {
            (
                row[0].as_str().unwrap().to_owned(),
                row[1].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    rates.sort();
    assert_eq!(
        rates,
        [
            ("kannel".into(), "100.0".into()),
            ("tester".into(), "0.0".into())
        ]
    );
    // A map column is a map, a nested record a struct.
    let inbound = r["duckdb_inbound"].as_array().unwrap();
    assert_eq!(inbound.len(), 3);
    assert_eq!(
        inbound[1],
        serde_json::json!(["in1", "k1", "+254700000001", "MAP(VARCHAR, VARCHAR)"])
    );

    // Exporting again finds everything exported: no new file.
    assert_eq!(export(&p, dir.path(), Format::Parquet).await, 0);
    assert_eq!(
        read("count", &dir.path().join("topic=sms.events"))[0],
        EVENTS
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn avro_files_are_read_by_fastavro_and_chdb_with_either_codec() {
    require_tools!(common::Tool::PythonAnalytics);
    let cluster = Mock::new(1).unwrap();
    let mut p = produced(&cluster, "readers-avro").await;
    for (codec, name) in [
        (smsflow::config::ExportAvroCodec::Null, "null"),
        (smsflow::config::ExportAvroCodec::Deflate, "deflate"),
    ] {
        p.export.as_mut().unwrap().avro_codec = codec;
        // A group per codec: each export starts from the beginning.
        p.kafka.group = format!("readers-avro-{name}");
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(
            export(&p, dir.path(), Format::Avro).await,
            EVENTS as u64 + 3
        );
        let r = read("avro", dir.path());
        assert_eq!(r["fastavro_rows"], EVENTS, "{name}");
        assert_eq!(r["fastavro_distinct"], EVENTS, "{name}");
        assert_eq!(r["fastavro_codecs"], serde_json::json!([name]));
        assert_eq!(
            r["fastavro_m17"],
            serde_json::json!({
                "status": "delivered", "at": "2026-03-02T00:17:00+00:00",
                "provider_id": null, "campaign_id": null, "identity": "+254700000017"
            }),
            "{name}"
        );
        // ClickHouse orders an Avro enum by its symbols' order.
        let chdb = r["chdb_by_status"].as_str().unwrap();
        assert_eq!(
            chdb, "\"queued\",750\n\"sent\",750\n\"delivered\",750\n\"failed\",750\n",
            "{name}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn parquet_files_are_read_by_spark_as_the_docs_say() {
    require_tools!(common::Tool::Spark);
    let cluster = Mock::new(1).unwrap();
    let p = produced(&cluster, "readers-spark").await;
    let dir = tempfile::tempdir().unwrap();
    export(&p, dir.path(), Format::Parquet).await;
    let out = std::process::Command::new(common::Tool::Spark.path())
        .arg(common::root().join("tests/helpers/spark_read.py"))
        .arg(dir.path())
        .arg("2026-03-03")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "spark_read.py failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let r: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(r["count"], EVENTS);
    let mut by_status: BTreeMap<String, i64> = BTreeMap::new();
    for row in r["by_day_status"].as_array().unwrap() {
        *by_status
            .entry(row[1].as_str().unwrap().into())
            .or_default() += row[2].as_i64().unwrap();
    }
    assert_eq!(by_status, self::by_status());
    // UTC timestamps, strings, and the Hive partition as a date column.
    assert_eq!(
        r["types"],
        serde_json::json!({"at": "timestamp", "status": "string", "dt": "date"})
    );
    // Events a minute apart from T0 = 2026-03-02 00:00 UTC: 1440 on the 3rd.
    assert_eq!(r["one_day"], 1440);
    assert_eq!(r["one_day_dts"], serde_json::json!(["2026-03-03"]));
}
