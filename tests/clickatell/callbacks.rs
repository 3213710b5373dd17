//! Forged callbacks refused.

use super::*;

/// Forged callbacks (before: a wrong `apiKey` was accepted, 200): a reply
/// callback with a wrong `apiKey` is 403 even beside the right secret; one
/// with neither key nor secret 401; a status callback (which carries no
/// `apiKey`) needs the secret. Nothing forged reaches `sms.inbound` or
/// `sms.events`, and a forged failure leaves the real message's status.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forged_callbacks_are_refused_and_store_nothing() {
    let (_fake, url) = fake().await;
    let yaml = format!(
        "http:\n  listen: ${{SMSFLOW_LISTEN}}\nbackends:\n  - type: clickatell\n    name: ck\n    api_key: {KEY}\n    api_url: {url}\n    receive: {{secret: {SECRET}, max_text: 300}}\nroutes:\n  - app: echo\napps:\n  - type: echo\n"
    );
    let running = common::start_embedded(&yaml).await;
    let base = format!("http://{}/backend/ck", running.http_addr().unwrap());
    let bus = running.bus();
    let mut inbound = bus.consumer("test.in", &["sms.inbound"]).unwrap();
    let mut events = bus.consumer("test.events", &["sms.events"]).unwrap();
    let anyone = reqwest::Client::new();
    let mo = |id: &str, key: Option<&str>, text: &str| {
        let mut m = json!({"messageId": id, "fromNumber": "255712345678", "toNumber": "15550001111", "text": text});
        if let Some(k) = key {
            m["apiKey"] = json!(k);
        }
        m.to_string()
    };

    let wrong_key = mo("f-1", Some("guessed-key"), "echo forged");
    assert_eq!(
        post_json(&anyone, &format!("{base}/"), &wrong_key).await.0,
        403
    );
    assert_eq!(
        post_json(&callback_client(), &format!("{base}/"), &wrong_key)
            .await
            .0,
        403
    );
    let no_key = mo("f-2", None, "echo forged");
    assert_eq!(
        post_json(&anyone, &format!("{base}/"), &no_key).await.0,
        401
    );
    let wrong_secret = format!("{base}/?secret=clickatell-secret-0123456780");
    assert_eq!(post_json(&anyone, &wrong_secret, &no_key).await.0, 403);
    // A reply callback with the right apiKey proves itself, no secret needed.
    let real = mo("r-1", Some(KEY), "echo real");
    assert_eq!(post_json(&anyone, &format!("{base}/"), &real).await.0, 200);
    assert_eq!(
        common::next(&mut inbound, schema::inbound()).await.text,
        "echo real"
    );
    let sent = common::next_event(&mut events).await;
    assert_eq!(sent.status, DeliveryStatus::Sent);

    // A forged failure for the real message: no secret, a wrong one, a wrong apiKey.
    let failed = json!({"messageId": sent.provider_id, "clientMessageId": sent.message_id,
                        "to": "255712345678", "status": "ERROR_DELIVERING", "statusCode": 7});
    let mut with_wrong_key = failed.clone();
    with_wrong_key["apiKey"] = json!("guessed-key");
    for (client, url, body, code) in [
        (&anyone, format!("{base}/status"), failed.to_string(), 401),
        (
            &anyone,
            format!("{base}/status?secret=nope-nope-nope-nope"),
            failed.to_string(),
            403,
        ),
        (
            &anyone,
            format!("{base}/status"),
            with_wrong_key.to_string(),
            403,
        ),
        // The One API posts status updates to the messages URL too.
        (
            &anyone,
            format!("{base}/"),
            json!({"event": {"messageStatusUpdate": [failed]}}).to_string(),
            401,
        ),
    ] {
        assert_eq!(post_json(client, &url, &body).await.0, code, "{url} {body}");
    }
    // The real callback (the secret in its URL) is the message's next event.
    let delivered = json!({"messageId": sent.provider_id, "clientMessageId": sent.message_id,
                           "to": "255712345678", "status": "RECEIVED_BY_RECIPIENT", "statusCode": 4});
    let url = format!("{base}/status?secret={SECRET}");
    assert_eq!(
        post_json(&anyone, &url, &delivered.to_string()).await.0,
        200
    );
    let e = common::next_event(&mut events).await;
    assert_eq!(
        (e.message_id.as_str(), e.status),
        (sent.message_id.as_str(), DeliveryStatus::Delivered)
    );

    // Limits, named as Clickatell names the fields.
    let client = callback_client();
    for (path, body, code, field) in [
        ("/", mo("l-1", Some(KEY), &"x".repeat(301)), 413, "text"),
        ("/", mo(&"i".repeat(257), Some(KEY), "hi"), 400, "messageId"),
        (
            "/status",
            json!({"clientMessageId": "c".repeat(257), "status": "QUEUED"}).to_string(),
            400,
            "clientMessageId",
        ),
    ] {
        let (status, answer) = post_json(&client, &format!("{base}{path}"), &body).await;
        assert_eq!(
            (status, answer["field"].as_str()),
            (code, Some(field)),
            "{answer}"
        );
    }
    assert_eq!(
        post_json(&client, &format!("{base}/"), &mo("a-1", None, "after"))
            .await
            .0,
        200
    );
    assert_eq!(
        common::next(&mut inbound, schema::inbound()).await.text,
        "after"
    );
    running.shutdown().await.unwrap();
}
