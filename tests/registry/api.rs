//! The admin listener's schema registry, as Confluent's clients call it.

use serde_json::Value;
use smsflow::config::KafkaMode;
use smsflow::schema;
use smsflow::topology::Topology;

use crate::pipeline;

async fn get(client: &reqwest::Client, url: String) -> (u16, Value) {
    let res = client.get(url).send().await.unwrap();
    assert_eq!(
        res.headers()["content-type"],
        "application/vnd.schemaregistry.v1+json"
    );
    let status = res.status().as_u16();
    (
        status,
        serde_json::from_slice(&res.bytes().await.unwrap()).unwrap(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_registry_serves_every_avro_topic_of_the_pipeline_and_nothing_else() {
    let running = Topology::new(pipeline(KafkaMode::Embedded))
        .unwrap()
        .start(None, true)
        .await
        .unwrap();
    let base = format!("http://{}", running.admin_addr().unwrap());
    let client = reqwest::Client::new();

    let (status, subjects) = get(&client, format!("{base}/subjects")).await;
    assert_eq!(status, 200);
    let subjects: Vec<&str> = subjects
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s.as_str().unwrap())
        .collect();
    for want in [
        "sms.inbound-value",
        "sms.outbound-value",
        "sms.events-value",
        "sms.app.echo-value",
        "sms.send.message_tester-value",
        "sms.log-value",
        "sms.stats-value",
    ] {
        assert!(subjects.contains(&want), "{want} not in {subjects:?}");
    }
    // JSON topics have no Avro subject.
    assert!(!subjects.contains(&"sms.optouts-value"), "{subjects:?}");
    assert!(!subjects.contains(&"sms.dlq-value"), "{subjects:?}");

    let events = schema::by_file("delivery_event.avsc").unwrap();
    let (status, latest) = get(
        &client,
        format!("{base}/subjects/sms.events-value/versions/latest"),
    )
    .await;
    assert_eq!(status, 200);
    // DeliveryEvent is at version 3 (schemas/history/ has 1 and 2): records
    // of the earlier ones are still on the topic after an upgrade.
    assert_eq!(latest["subject"], "sms.events-value");
    assert_eq!(latest["version"], 3);
    assert_eq!(latest["id"], events.id);
    assert_eq!(latest["schema"], events.json);
    let (_, three) = get(
        &client,
        format!("{base}/subjects/sms.events-value/versions/3"),
    )
    .await;
    assert_eq!(three, latest);
    let (_, versions) = get(
        &client,
        format!("{base}/subjects/sms.events-value/versions"),
    )
    .await;
    assert_eq!(versions, serde_json::json!([1, 2, 3]));
    let (status, two) = get(
        &client,
        format!("{base}/subjects/sms.events-value/versions/2"),
    )
    .await;
    assert_eq!(status, 200);
    let v2 = schema::versions("delivery_event.avsc")[1];
    assert_eq!(two["id"], v2.id);
    assert_eq!(two["schema"], v2.json);
    let (_, old) = get(&client, format!("{base}/schemas/ids/{}/versions", v2.id)).await;
    assert_eq!(
        old,
        serde_json::json!([{"subject": "sms.events-value", "version": 2}])
    );
    let (_, inbound) = get(
        &client,
        format!("{base}/subjects/sms.inbound-value/versions"),
    )
    .await;
    assert_eq!(inbound, serde_json::json!([1]));

    let (status, by_id) = get(&client, format!("{base}/schemas/ids/{}", events.id)).await;
    assert_eq!(status, 200);
    // The schema string is the .avsc file, which Avro parses back.
    let parsed = apache_avro::Schema::parse_str(by_id["schema"].as_str().unwrap()).unwrap();
    assert_eq!(parsed, events.schema);
    let (_, uses) = get(
        &client,
        format!("{base}/schemas/ids/{}/versions", events.id),
    )
    .await;
    assert_eq!(
        uses,
        serde_json::json!([{"subject": "sms.events-value", "version": 3}])
    );
    let (status, types) = get(&client, format!("{base}/schemas/types")).await;
    assert_eq!((status, types), (200, serde_json::json!(["AVRO"])));

    // Refusals, in Confluent's error shape.
    for (url, status, code) in [
        (format!("{base}/schemas/ids/7"), 404, 40403),
        (format!("{base}/schemas/ids/-1"), 404, 40403),
        (
            format!("{base}/subjects/sms.optouts-value/versions/1"),
            404,
            40401,
        ),
        (
            format!("{base}/subjects/sms.events-value/versions/4"),
            404,
            40402,
        ),
        (
            format!("{base}/subjects/sms.events-value/versions/newest"),
            422,
            42202,
        ),
    ] {
        let (got, body) = get(&client, url.clone()).await;
        assert_eq!(
            (got, body["error_code"].as_u64()),
            (status, Some(code)),
            "{url}: {body}"
        );
        assert!(!body["message"].as_str().unwrap().is_empty());
    }
    // Read-only: registering is refused, and nothing changes.
    let res = client
        .post(format!("{base}/subjects/sms.events-value/versions"))
        .header("content-type", "application/vnd.schemaregistry.v1+json")
        .body(r#"{"schema": "\"string\""}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 405);
    let body: Value = serde_json::from_slice(&res.bytes().await.unwrap()).unwrap();
    assert_eq!(body["error_code"], 405);
    assert!(body["message"].as_str().unwrap().contains("read-only"));
    let res = client
        .delete(format!("{base}/subjects/sms.events-value"))
        .send()
        .await;
    assert!(res.map(|r| r.status() != 200).unwrap_or(true));
    let (_, again) = get(
        &client,
        format!("{base}/subjects/sms.events-value/versions"),
    )
    .await;
    assert_eq!(again, serde_json::json!([1, 2, 3]));
    running.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_registry_asks_for_the_operators_credentials_like_every_admin_route() {
    let mut p = pipeline(KafkaMode::Embedded);
    p.http.admin.tokens = vec![smsflow::config::Secret("s3cret-token-for-registry".into())];
    let running = Topology::new(p).unwrap().start(None, true).await.unwrap();
    let base = format!("http://{}", running.admin_addr().unwrap());
    let client = reqwest::Client::new();
    let id = schema::by_file("delivery_event.avsc").unwrap().id;
    let res = client
        .get(format!("{base}/schemas/ids/{id}"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 401);
    let res = client
        .get(format!("{base}/schemas/ids/{id}"))
        .bearer_auth("wrong")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 401);
    let res = client
        .get(format!("{base}/schemas/ids/{id}"))
        .bearer_auth("s3cret-token-for-registry")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    running.shutdown().await.unwrap();
}
