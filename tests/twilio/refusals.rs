//! Bad and over-long requests refused with a 4xx naming the field.

use super::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_requests_get_a_4xx_naming_the_field() {
    let t = start().await;
    let sid = "SM6000000000000000000000000000000a";
    let without = |name: &str| -> Params {
        sms("+255700000020", "echo hi", sid)
            .into_iter()
            .filter(|(k, _)| match name {
                "MessageSid" => !matches!(k.as_str(), "MessageSid" | "SmsSid" | "SmsMessageSid"),
                _ => k != name,
            })
            .collect()
    };
    let with = |name: &str, value: &str| -> Params {
        sms("+255700000020", "echo hi", sid)
            .into_iter()
            .map(|(k, v)| {
                if k == name {
                    (k, value.to_owned())
                } else {
                    (k, v)
                }
            })
            .collect()
    };
    let status = "/backend/twilio/status?message_id=m1";
    let cases: Vec<(&str, Params, &str)> = vec![
        (INBOUND, without("From"), "From"),
        (INBOUND, without("Body"), "Body"),
        (INBOUND, without("MessageSid"), "MessageSid"),
        (INBOUND, with("From", ""), "From"),
        (INBOUND, with("From", "not a number"), "From"),
        (INBOUND, with("Body", ""), "Body"),
        (
            status,
            callback(sid, "+255700000020", "delivered", None)
                .into_iter()
                .filter(|(k, _)| !k.ends_with("Status"))
                .collect(),
            "MessageStatus",
        ),
        (
            status,
            callback(sid, "+255700000020", "bogus", None),
            "MessageStatus",
        ),
        (
            status,
            callback(sid, "+255700000020", "delivered", None)
                .into_iter()
                .filter(|(k, _)| !k.ends_with("Sid") || k == "AccountSid")
                .collect(),
            "MessageSid",
        ),
    ];
    for (path, params, field) in &cases {
        let res = t.post(path, params).await;
        let (code, named, error) = refusal(res).await;
        assert_eq!(
            (code, named.as_str()),
            (400, Some(*field)),
            "{params:?}: {error}"
        );
        assert!(error.contains(field), "{error}");
    }

    // Not a form; not UTF-8; garbage.
    let raw = |kind: &'static str, body: &'static [u8]| {
        t.client
            .post(format!("{}{INBOUND}", t.base))
            .header("content-type", kind)
            .header("X-Twilio-Signature", "RSOYDt4T1cUTdK1PDd93/VVr8B8=")
            .body(body)
            .send()
    };
    let (code, named, _) = refusal(
        raw(
            "application/json",
            br#"{"From": "+255700000020", "Body": "hi"}"#,
        )
        .await
        .unwrap(),
    )
    .await;
    assert_eq!((code, named.as_str()), (400, Some("Content-Type")));
    let (code, named, _) = refusal(
        t.client
            .post(format!("{}{INBOUND}", t.base))
            .body("From=%2B255700000020&Body=hi")
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!((code, named.as_str()), (400, Some("Content-Type")));
    let (code, named, _) = refusal(
        raw(
            "application/x-www-form-urlencoded",
            b"From=%2B255700000020&Body=%FF%FE",
        )
        .await
        .unwrap(),
    )
    .await;
    assert_eq!((code, named.as_str()), (400, Some("Body")));
    for garbage in [
        &b"\xff\xfe\x00\x01%%%&&=="[..],
        b"%",
        b"=",
        b"&&&",
        b"From=%2",
    ] {
        let res = t
            .client
            .post(format!("{}{INBOUND}", t.base))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(garbage.to_vec())
            .send()
            .await
            .unwrap();
        let status = res.status();
        assert!(status.is_client_error(), "{garbage:?}: {status}");
    }
    // Nothing bad was sent on.
    assert!(t.requests().is_empty());
    t.stop().await;
}

/// Signed but over the `receive:` limits (the shared source's, with Twilio's
/// parameter names): a `Body` over 4,000 characters is 413, a `MessageSid`
/// over 256 bytes 400; neither is stored.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn over_long_webhooks_are_refused_naming_twilios_parameter() {
    let mut t = start().await;
    let sid = "SM5000000000000000000000000000000e";
    let long_body = sms("+255700000005", &"x".repeat(4001), sid);
    let (status, field, error) = refusal(t.post(INBOUND, &long_body).await).await;
    assert_eq!((status, field.as_str()), (413, Some("Body")), "{error}");
    assert!(error.contains("4000 characters"), "{error}");
    let long_sid = sms(
        "+255700000005",
        "echo hi",
        &format!("SM{}", "0".repeat(300)),
    );
    let (status, field, error) = refusal(t.post(INBOUND, &long_sid).await).await;
    assert_eq!(
        (status, field.as_str()),
        (400, Some("MessageSid")),
        "{error}"
    );
    // 4,000 characters are within the limit, and the next message stored.
    let ok = sms("+255700000005", &"y".repeat(4000), sid);
    assert_eq!(t.post(INBOUND, &ok).await.status(), 200);
    assert_eq!(t.next_inbound().await.text, "y".repeat(4000));
    t.stop().await;
}
