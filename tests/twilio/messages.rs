//! Messages in and out, retried errors and status callbacks.

use super::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_message_in_and_its_reply_out_exactly_as_twilio_has_them() {
    let mut t = start().await;
    let text = "Habari, ñ € 😀";
    let phone = "+255700000001";
    let first = "SM1000000000000000000000000000000a";

    let res = t
        .post(INBOUND, &sms(phone, &format!("echo {text}"), first))
        .await;
    assert_eq!(res.status(), 200);
    assert_eq!(res.headers()["content-type"], "text/xml");
    assert_eq!(res.text().await.unwrap(), EMPTY_TWIML);

    // Stored with Twilio's id and metadata; the text intact.
    let m = t.next_inbound().await;
    assert_eq!(m.text, format!("echo {text}"));
    assert_eq!(m.connection.identity, phone);
    assert_eq!(m.connection.backend, "twilio");
    assert_eq!(m.external_id.as_deref(), Some(first));
    for (k, v) in [
        ("to", NUMBER),
        ("account_sid", SID),
        ("num_segments", "1"),
        ("num_media", "0"),
        ("message_sid", first),
        ("sms_sid", first),
        (
            "messaging_service_sid",
            "MG0123456789abcdef0123456789abcdef",
        ),
        ("from_country", "TZ"),
        ("to_country", "US"),
        ("api_version", "2010-04-01"),
    ] {
        assert_eq!(m.fields.get(k).map(String::as_str), Some(v), "{k}");
    }
    for k in ["from", "body", "to_city", "from_zip"] {
        assert!(!m.fields.contains_key(k), "{k}: {:?}", m.fields);
    }

    // The reply: one request, exactly Twilio's Messages API call.
    let e = t.next_event().await;
    assert_eq!(e.status, DeliveryStatus::Sent, "{e:?}");
    assert_eq!(e.provider_id.as_deref(), Some(message_sid(1).as_str()));
    assert_eq!(e.provider_status.as_deref(), Some("queued"));
    assert_eq!(e.connection.identity, phone);
    let requests = t.requests();
    assert_eq!(requests.len(), 1, "{requests:?}");
    let r = &requests[0];
    assert_eq!(r.method, "POST");
    assert_eq!(r.path, format!("/2010-04-01/Accounts/{SID}/Messages.json"));
    assert_eq!(
        r.authorization.as_deref(),
        Some(format!("Basic {}", BASE64_STANDARD.encode(format!("{SID}:{TOKEN}"))).as_str())
    );
    assert_eq!(
        r.content_type.as_deref(),
        Some("application/x-www-form-urlencoded")
    );
    let mut form = r.form.clone();
    form.sort();
    let callback = format!("{PUBLIC}/backend/twilio/status?message_id={}", e.message_id);
    assert_eq!(
        form,
        p(&[
            ("Body", text),
            ("From", NUMBER),
            ("StatusCallback", &callback),
            ("To", phone),
        ])
    );

    // Twilio repeats a webhook it got no answer to: stored and answered once.
    let res = t
        .post(INBOUND, &sms(phone, &format!("echo {text}"), first))
        .await;
    assert_eq!(res.status(), 200);
    let second = "SM2000000000000000000000000000000b";
    let res = t.post(INBOUND, &sms(phone, "echo again", second)).await;
    assert_eq!(res.status(), 200);
    assert_eq!(
        t.next_inbound().await.external_id.as_deref(),
        Some(second),
        "the repeat was not stored"
    );
    let e = t.next_event().await;
    assert_eq!(e.provider_id.as_deref(), Some(message_sid(2).as_str()));
    let requests = t.requests();
    assert_eq!(requests.len(), 2, "{requests:?}");
    assert_eq!(requests[1].get("Body"), Some("again"));

    // Only POST.
    let res = t
        .client
        .get(format!("{}{INBOUND}", t.base))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 405);
    t.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn permanent_errors_fail_at_once_and_transient_ones_are_retried() {
    let mut t = start().await;
    for (i, phone) in [REJECTED, FLAKY, BUSY].iter().enumerate() {
        let res = t
            .post(INBOUND, &sms(phone, "echo hi", &format!("SM{i:032}")))
            .await;
        assert_eq!(res.status(), 200);
    }
    let mut events = Vec::new();
    for _ in 0..3 {
        events.push(t.next_event().await);
    }
    let event = |phone: &str| {
        events
            .iter()
            .find(|e| e.connection.identity == phone)
            .unwrap_or_else(|| panic!("no event for {phone}: {events:?}"))
            .clone()
    };

    // 400 with Twilio's error: failed with its code and message, not retried.
    let rejected = event(REJECTED);
    assert_eq!(rejected.status, DeliveryStatus::Failed);
    assert_eq!(
        rejected.error.as_deref(),
        Some(format!("21211: The 'To' number {REJECTED} is not a valid phone number.").as_str())
    );
    assert_eq!(rejected.provider_status.as_deref(), Some("400"));

    // 503, then 201: sent, on the second request.
    let flaky = event(FLAKY);
    assert_eq!(flaky.status, DeliveryStatus::Sent, "{flaky:?}");
    // 429 with Retry-After, then 201: sent, on the second request.
    let busy = event(BUSY);
    assert_eq!(busy.status, DeliveryStatus::Sent, "{busy:?}");

    let requests = t.requests();
    let counts = {
        let fake = t.fake.lock().unwrap();
        (fake.to(REJECTED), fake.to(FLAKY), fake.to(BUSY))
    };
    assert_eq!(counts, (1, 2, 2), "{requests:?}");
    // The retry is the same request again.
    for phone in [FLAKY, BUSY] {
        let same: Vec<&Request> = requests
            .iter()
            .filter(|r| r.get("To") == Some(phone))
            .collect();
        assert_eq!(same[0].form, same[1].form);
    }
    // And the provider id is the sid of the request that succeeded.
    for e in [&flaky, &busy] {
        let n = requests
            .iter()
            .rposition(|r| r.get("To") == Some(e.connection.identity.as_str()))
            .unwrap();
        assert_eq!(e.provider_id.as_deref(), Some(message_sid(n + 1).as_str()));
    }
    t.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_callbacks_become_delivery_events_once() {
    let mut t = start().await;
    let phone = "+255700000002";
    let res = t
        .post(
            INBOUND,
            &sms(phone, "echo track me", "SM3000000000000000000000000000000c"),
        )
        .await;
    assert_eq!(res.status(), 200);
    let sent = t.next_event().await;
    assert_eq!(sent.status, DeliveryStatus::Sent);
    let sid = sent.provider_id.clone().unwrap();
    // Twilio calls the StatusCallback it was given, signing that URL.
    let url = t.requests()[0].get("StatusCallback").unwrap().to_owned();
    let path = url.strip_prefix(PUBLIC).unwrap().to_owned();
    assert!(path.starts_with("/backend/twilio/status?message_id="));

    let delivered = callback(&sid, phone, "delivered", None);
    let res = t.post(&path, &delivered).await;
    assert_eq!(res.status(), 200);
    assert_eq!(res.text().await.unwrap(), "");
    let e = t.next_event().await;
    assert_eq!(e.status, DeliveryStatus::Delivered);
    assert_eq!(e.message_id, sent.message_id);
    assert_eq!(e.provider_id.as_deref(), Some(sid.as_str()));
    assert_eq!(e.provider_status.as_deref(), Some("delivered"));
    assert_eq!(e.connection.identity, phone);
    assert_eq!(e.error, None);

    // The same callback again: answered, not stored again (the next event
    // is the next callback's).
    let res = t.post(&path, &delivered).await;
    assert_eq!(res.status(), 200);

    let res = t
        .post(&path, &callback(&sid, phone, "undelivered", Some("30003")))
        .await;
    assert_eq!(res.status(), 200);
    let e = t.next_event().await;
    assert_eq!(e.status, DeliveryStatus::Failed, "{e:?}");
    assert_eq!(e.message_id, sent.message_id);
    assert_eq!(e.error.as_deref(), Some("30003"));
    assert_eq!(e.provider_status.as_deref(), Some("undelivered 30003"));

    // Without our id in the URL, the message is found by Twilio's.
    let mut read = callback(&sid, phone, "read", None);
    read.push(("ErrorMessage".into(), "ignored unless failed".into()));
    let res = t.post("/backend/twilio/status", &read).await;
    assert_eq!(res.status(), 200);
    let e = t.next_event().await;
    assert_eq!(
        (
            e.status,
            e.message_id.as_str(),
            e.provider_status.as_deref()
        ),
        (
            DeliveryStatus::Delivered,
            sent.message_id.as_str(),
            Some("read")
        )
    );
    assert_eq!(e.error, None);

    // An error message with its code.
    let mut failed = callback(&sid, phone, "failed", Some("30007"));
    failed.push(("ErrorMessage".into(), "Message filtered".into()));
    let res = t.post(&path, &failed).await;
    assert_eq!(res.status(), 200);
    let e = t.next_event().await;
    assert_eq!(e.status, DeliveryStatus::Failed);
    assert_eq!(e.error.as_deref(), Some("30007: Message filtered"));
    t.stop().await;
}
