//! Replies, status callbacks, retries, bad input and batches.

use super::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clickatell_replies_status_callbacks_retries_and_bad_input() {
    let (fake, url) = fake().await;
    let yaml = format!(
        "http:\n  listen: ${{SMSFLOW_LISTEN}}\nbackends:\n  - type: clickatell\n    name: ck\n    api_key: {KEY}\n    from: '15550001111'\n    api_url: {url}/\n    send: {{backoff: 10ms}}\n    receive: {{secret: {SECRET}}}\n  - type: clickatell\n    name: ckbad\n    api_key: wrong-key\n    api_url: {url}\n    send: {{backoff: 10ms}}\n    receive: {{secret: {SECRET}}}\nroutes:\n  - app: echo\napps:\n  - type: echo\n"
    );
    let running = common::start_embedded(&yaml).await;
    let base = format!("http://{}/backend/ck", running.http_addr().unwrap());
    let mut events = running
        .bus()
        .consumer("test.events", &["sms.events"])
        .unwrap();
    let mut inbound = running
        .bus()
        .consumer("test.inbound", &["sms.inbound"])
        .unwrap();
    let client = callback_client();

    // An MO as Clickatell's reply callback posts it: stored, answered 200 empty.
    let mo = json!({
        "integrationId": "int-1", "integrationName": "smsflow test", "messageId": "mt-0",
        "replyMessageId": "mo-1", "apiKey": KEY, "fromNumber": "255712345678",
        "toNumber": "15550001111", "timestamp": "2024-05-01 10:00:00",
        "text": "echo Habari, ñ € 😀", "charset": "UTF-8", "udh": "", "network": "1", "keyword": ""
    });
    let res = client
        .post(format!("{base}/"))
        .json(&mo)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(res.text().await.unwrap(), "");
    let r = tokio::time::timeout(Duration::from_secs(20), inbound.recv())
        .await
        .unwrap()
        .unwrap();
    let m = schema::inbound().decode(&r.payload).unwrap();
    assert_eq!(m.text, "echo Habari, ñ € 😀");
    assert_eq!(m.connection, Connection::new("ck", "+255712345678"));
    assert_eq!(m.external_id.as_deref(), Some("mo-1"));
    assert_eq!(m.fields["toNumber"], "15550001111");
    assert_eq!(m.fields["messageId"], "mt-0");
    assert_eq!(m.fields["fromNumber"], "255712345678");
    assert!(
        !m.fields.contains_key("apiKey") && !m.fields.contains_key("udh"),
        "{:?}",
        m.fields
    );

    // The echo reply: exactly Clickatell's send request, content intact.
    let sent = common::next_event(&mut events).await;
    assert_eq!(sent.status, DeliveryStatus::Sent, "{sent:?}");
    assert_eq!(sent.connection, Connection::new("ck", "+255712345678"));
    assert_eq!(sent.provider_id.as_deref(), Some("api-255712345678-1"));
    assert_eq!(sent.provider_status.as_deref(), Some("accepted"));
    let requests = fake.requests();
    assert_eq!(requests.len(), 1);
    let q = &requests[0];
    assert_eq!(q.method, Method::POST);
    assert_eq!(q.path, "/messages");
    assert_eq!(q.authorization.as_deref(), Some(KEY));
    assert_eq!(q.content_type.as_deref(), Some("application/json"));
    assert_eq!(q.accept.as_deref(), Some("application/json"));
    assert_eq!(
        q.body,
        json!({"content": "Habari, ñ € 😀", "to": ["255712345678"], "from": "15550001111",
               "charset": "UTF-8", "clientMessageId": sent.message_id})
    );

    // A status callback naming our clientMessageId.
    let callback = json!({
        "integrationName": "smsflow test", "messageId": "api-255712345678-1", "requestId": "req-1",
        "clientMessageId": sent.message_id, "to": "255712345678", "from": "15550001111",
        "statusCode": 4, "status": "RECEIVED_BY_RECIPIENT",
        "statusDescription": "Received by recipient", "timestamp": 1714557600000u64
    });
    let (status, body) = post_json(&client, &format!("{base}/status"), &callback.to_string()).await;
    assert_eq!((status, body), (200, Value::Null));
    let delivered = common::next_event(&mut events).await;
    assert_eq!(delivered.status, DeliveryStatus::Delivered);
    assert_eq!(delivered.message_id, sent.message_id);
    assert_eq!(delivered.connection, sent.connection);
    assert_eq!(
        delivered.provider_status.as_deref(),
        Some("RECEIVED_BY_RECIPIENT (4): Received by recipient")
    );
    assert_eq!(delivered.provider_id.as_deref(), Some("api-255712345678-1"));

    // 503 then 202: tried twice with the same request, one sent event.
    let flaky = json!({"messageId": "mo-2", "fromNumber": "255712345678", "text": "echo flaky"});
    let (status, _) = post_json(&client, &format!("{base}/"), &flaky.to_string()).await;
    assert_eq!(status, 200);
    let e = common::next_event(&mut events).await;
    assert_eq!(e.status, DeliveryStatus::Sent, "{e:?}");
    assert_eq!(e.provider_id.as_deref(), Some("api-255712345678-2"));
    let tries: Vec<Request> = fake
        .requests()
        .into_iter()
        .filter(|q| q.body["content"] == "flaky")
        .collect();
    assert_eq!(tries.len(), 2, "retried once");
    assert_eq!(tries[0].body, tries[1].body);
    assert_eq!(tries[0].body["clientMessageId"], json!(e.message_id));

    // The One API's nested form of the same callback.
    let one_api = json!({"integrationId": "int-1", "integrationName": "smsflow test", "event": {
        "moText": [{"channel": "sms", "messageId": "mo-3", "relatedMessageId": null,
                    "relatedClientMessageId": null, "from": "255712345678", "to": "15550001111",
                    "timestamp": 1714557600000u64, "content": "echo one api", "charset": "UTF-8",
                    "sms": {"network": "Network ID"}}]}});
    let (status, _) = post_json(&client, &format!("{base}/"), &one_api.to_string()).await;
    assert_eq!(status, 200);
    let e = common::next_event(&mut events).await;
    assert_eq!(
        (e.status, &e.connection),
        (
            DeliveryStatus::Sent,
            &Connection::new("ck", "+255712345678")
        )
    );
    let last = fake.requests().pop().unwrap();
    assert_eq!(last.body["content"], "one api");
    assert_eq!(last.body["clientMessageId"], json!(e.message_id));

    // A bad API key: the whole request refused, failed for good, not retried.
    let bad = OutboundMessage::new(Connection::new("ckbad", "+255712345678"), "never");
    running
        .bus()
        .producer()
        .unwrap()
        .send_and_wait(Produce::new(
            Arc::from("sms.send.ckbad"),
            Bytes::from(bad.connection.key()),
            schema::outbound().encode(&bad).unwrap(),
        ))
        .await
        .unwrap();
    let e = common::next_event(&mut events).await;
    assert_eq!(
        (e.message_id.as_str(), e.status),
        (bad.id.as_str(), DeliveryStatus::Failed)
    );
    let error = e.error.unwrap_or_default();
    assert!(
        error.contains("401") && error.contains("Authentication failed"),
        "{error}"
    );
    assert_eq!(
        fake.requests()
            .iter()
            .filter(|q| q.authorization.as_deref() == Some("wrong-key"))
            .count(),
        1
    );

    // Bad input: 400 naming the field.
    for (path, body, field) in [
        ("/", "{not json", "body"),
        ("/", "[1, 2]", "body"),
        ("/", r#"{"text": "hi"}"#, "fromNumber"),
        ("/", r#"{"fromNumber": "255712345678"}"#, "text"),
        ("/", r#"{"fromNumber": "255712345678", "text": ""}"#, "text"),
        (
            "/",
            r#"{"fromNumber": "not a number", "text": "hi"}"#,
            "fromNumber",
        ),
        (
            "/",
            r#"{"fromNumber": "255712345678", "text": {"a": 1}}"#,
            "text",
        ),
        ("/", r#"{"event": {}}"#, "event.moText"),
        ("/status", "", "body"),
        ("/status", r#"{"status": "QUEUED"}"#, "messageId"),
        ("/status", r#"{"messageId": "api-1"}"#, "status"),
        (
            "/status",
            r#"{"messageId": "api-1", "status": "BOGUS", "statusCode": 99}"#,
            "status",
        ),
        (
            "/status",
            r#"{"event": {"messageStatusUpdate": []}}"#,
            "event.messageStatusUpdate",
        ),
    ] {
        let (status, answer) = post_json(&client, &format!("{base}{path}"), body).await;
        assert_eq!(status, 400, "{path} {body}: {answer}");
        assert_eq!(answer["field"], field, "{path} {body}: {answer}");
    }
    let res = client.get(format!("{base}/")).send().await.unwrap();
    assert_eq!(res.status(), 405);

    running.shutdown().await.unwrap();
}

/// Messages with one text to several numbers go in one request; one number
/// refused by Clickatell fails alone, the others are sent; status callbacks
/// that name only Clickatell's id find their message.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clickatell_batch_with_partial_acceptance() {
    let (fake, url) = fake().await;
    let yaml = format!(
        "http:\n  listen: ${{SMSFLOW_LISTEN}}\nbackends:\n  - type: clickatell\n    name: ckb\n    api_key: {KEY}\n    api_url: {url}\n    batch: 10\n    send: {{concurrency: 1, backoff: 10ms}}\n    receive: {{secret: {SECRET}}}\nroutes:\n  - app: echo\napps:\n  - type: echo\n"
    );
    let running = common::start_embedded(&yaml).await;
    let base = format!("http://{}/backend/ckb", running.http_addr().unwrap());
    let mut events = running
        .bus()
        .consumer("test.events", &["sms.events"])
        .unwrap();
    let producer = running.bus().producer().unwrap();
    let to_sink = |m: &OutboundMessage| {
        Produce::new(
            Arc::from("sms.send.ckb"),
            Bytes::from(m.connection.key()),
            schema::outbound().encode(m).unwrap(),
        )
    };
    // Handled by the sink's stage (read, and queued for a delivery task).
    let handled = || {
        smsflow::metrics::metrics()
            .latency
            .with_label_values(&["backend:ckb"])
            .get_sample_count()
    };

    // The only delivery slot is held by a request the fake keeps waiting...
    let gate = OutboundMessage::new(Connection::new("ckb", "+15550000001"), "gate");
    producer.send_and_wait(to_sink(&gate)).await.unwrap();
    until("the gate request reached the fake", || {
        fake.requests().iter().any(|q| q.body["content"] == "gate")
    })
    .await;
    // ...while these queue up behind it.
    let numbers = [
        "+15550000010",
        "+15550000011",
        "+15550000666",
        "+15550000012",
    ];
    let batch: Vec<OutboundMessage> = numbers
        .iter()
        .map(|n| OutboundMessage::new(Connection::new("ckb", *n), "same text"))
        .collect();
    for m in &batch {
        producer.send_and_wait(to_sink(m)).await.unwrap();
    }
    until("the sink queued every message", || handled() >= 5).await;
    fake.gate.add_permits(1);

    let mut got = Vec::new();
    for _ in 0..5 {
        got.push(common::next_event(&mut events).await);
    }
    let event_of = |m: &OutboundMessage| {
        got.iter()
            .find(|e| e.message_id == m.id)
            .unwrap_or_else(|| panic!("no event for {}: {got:?}", m.connection.identity))
            .clone()
    };
    assert_eq!(event_of(&gate).status, DeliveryStatus::Sent);
    for m in &batch {
        let e = event_of(m);
        assert_eq!(e.connection, m.connection);
        if m.connection.identity == format!("+{INVALID}") {
            assert_eq!(e.status, DeliveryStatus::Failed, "{e:?}");
            assert_eq!(e.provider_status.as_deref(), Some("105"));
            assert_eq!(
                e.error.as_deref(),
                Some("Invalid destination address: The destination address you are attempting to send to is invalid. (errorCode 105)")
            );
        } else {
            assert_eq!(e.status, DeliveryStatus::Sent, "{e:?}");
            let pid = e.provider_id.unwrap_or_default();
            assert!(
                pid.starts_with(&format!("api-{}-", &m.connection.identity[1..])),
                "{pid}"
            );
        }
    }

    // Each number asked for once; one request carried several of them; a
    // single-recipient request names our message, a batch does not.
    let requests = fake.requests();
    for n in numbers {
        let asked = requests
            .iter()
            .filter(|q| q.body["to"].as_array().unwrap().contains(&json!(&n[1..])))
            .count();
        assert_eq!(asked, 1, "{n} in {requests:?}");
    }
    assert!(
        requests
            .iter()
            .any(|q| q.body["to"].as_array().unwrap().len() >= 2),
        "no request carried several recipients: {requests:?}"
    );
    for q in &requests {
        let to = q.body["to"].as_array().unwrap();
        assert!(
            q.body["content"] == "gate" || q.body["content"] == "same text",
            "{q:?}"
        );
        if to.len() == 1 {
            let id = [&gate]
                .into_iter()
                .chain(&batch)
                .find(|m| json!(&m.connection.identity[1..]) == to[0])
                .unwrap()
                .id
                .clone();
            assert_eq!(q.body["clientMessageId"], json!(id));
        } else {
            assert!(q.body.get("clientMessageId").is_none(), "{q:?}");
        }
    }

    // Status callbacks that name only Clickatell's id: the Platform's flat
    // form by status name, by code alone, and the One API's nested form.
    let pid = |i: usize| event_of(&batch[i]).provider_id.unwrap();
    let delivered = json!({
        "integrationName": "smsflow test", "messageId": pid(0), "requestId": "req-2",
        "clientMessageId": null, "to": "15550000010", "from": "",
        "statusCode": 4, "status": "RECEIVED_BY_RECIPIENT",
        "statusDescription": "Received by recipient", "timestamp": "2024-05-01T10:00:00Z"
    });
    let expired = json!({"messageId": pid(1), "statusCode": 10, "to": "15550000011"});
    let one_api = json!({"integrationId": "int-1", "integrationName": "smsflow test", "event": {
        "messageStatusUpdate": [{"channel": "sms", "messageId": pid(3), "clientMessageId": null,
                                 "status": "SENT_TO_SUPPLIER", "statusCode": 4, "timestamp": 1714557600000u64}]}});
    let client = callback_client();
    for (callback, m, status) in [
        (&delivered, &batch[0], DeliveryStatus::Delivered),
        (&expired, &batch[1], DeliveryStatus::Expired),
        (&one_api, &batch[3], DeliveryStatus::Sent),
    ] {
        let (code, answer) =
            post_json(&client, &format!("{base}/status"), &callback.to_string()).await;
        assert_eq!(code, 200, "{answer}");
        let e = common::next_event(&mut events).await;
        assert_eq!(
            (&e.message_id, &e.connection, e.status),
            (&m.id, &m.connection, status),
            "{e:?}"
        );
        if status == DeliveryStatus::Expired {
            assert_eq!(e.error.as_deref(), Some("Message expired"));
        }
    }

    running.shutdown().await.unwrap();
}
