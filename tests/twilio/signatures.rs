//! Webhook signatures: over the public URL, and the same as Twilio's own library computes.

use super::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn webhooks_need_twilios_signature_over_the_public_url() {
    let mut t = start().await;
    let params = sms(
        "+255700000003",
        "echo signed",
        "SM4000000000000000000000000000000d",
    );
    let public = format!("{PUBLIC}{INBOUND}");

    let forbidden = [
        ("unsigned", None),
        (
            "wrong signature",
            Some("RSOYDt4T1cUTdK1PDd93/VVr8B8=".to_owned()),
        ),
        ("not base64", Some("%%%".to_owned())),
        (
            "another token",
            Some(signature("not the token", &public, &params)),
        ),
        (
            "the internal URL",
            Some(sign(&format!("{}{INBOUND}", t.base), &params)),
        ),
        (
            "another body",
            Some(sign(
                &public,
                &sms(
                    "+255700000003",
                    "echo forged",
                    "SM4000000000000000000000000000000d",
                ),
            )),
        ),
    ];
    for (why, sig) in &forbidden {
        let res = t.post_with(INBOUND, &params, sig.as_deref()).await;
        let (status, _, error) = refusal(res).await;
        assert_eq!(status, 403, "{why}");
        assert!(error.contains("X-Twilio-Signature"), "{why}: {error}");
    }
    // A status callback too.
    let res = t
        .post_with(
            "/backend/twilio/status?message_id=x",
            &callback("SM1", "+255700000003", "delivered", None),
            None,
        )
        .await;
    assert_eq!(res.status(), 403);
    // A webhook signed with a Webhooks shared key, which we cannot check.
    let res = t
        .client
        .post(format!("{}{INBOUND}", t.base))
        .header("X-Twilio-Signature", sign(&public, &params))
        .header(
            "X-Twilio-Webhooks-Signature-Settings",
            "key=webhooks_sharedkey_1,algorithm=HMAC_SHA256",
        )
        .form(&params)
        .send()
        .await
        .unwrap();
    let (status, _, error) = refusal(res).await;
    assert_eq!(status, 403);
    assert!(error.contains("shared key"), "{error}");

    // Signed over the public URL: accepted, also with its default port.
    let ported = format!("https://sms.example.org:443/hooks{INBOUND}");
    let res = t
        .post_with(INBOUND, &params, Some(&sign(&ported, &params)))
        .await;
    assert_eq!(res.status(), 200);
    let m = t.next_inbound().await;
    assert_eq!(m.text, "echo signed");
    t.stop().await;
}

/// The python with Twilio's helper library (`$SMSFLOW_PYTHON`, or the venv
/// scripts/tools.sh makes).
fn python() -> PathBuf {
    common::Tool::PythonTwilio.path()
}

/// Each case's signature as Twilio's `RequestValidator.compute_signature`
/// computes it (tests/helpers/twilio_sign.py).
fn twilio_signatures(cases: &Value) -> Vec<String> {
    use std::io::Write;
    use std::process::{Command, Stdio};
    let python = python();
    let mut child = Command::new(&python)
        .arg(common::root().join("tests/helpers/twilio_sign.py"))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", python.display()));
    child
        .stdin
        .take()
        .unwrap()
        .write_all(cases.to_string().as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "twilio_sign.py failed (is the twilio package installed for {}?): {}",
        python.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(str::to_owned)
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn signatures_are_the_ones_twilios_own_library_computes() {
    require_tools!(common::Tool::PythonTwilio);
    let mut t = start().await;
    let status_path = "/backend/twilio/status?message_id=abc-123&note=a%20b%2Bc";
    // (path on our server, or None for a URL elsewhere; URL; params)
    let mut cases: Vec<(Option<String>, String, Params)> = vec![
        (
            None,
            "https://mycompany.com/myapp.php?foo=1&bar=2".into(),
            p(&[
                ("CallSid", "CA1234567890ABCDE"),
                ("Caller", "+14158675309"),
                ("Digits", "1234"),
                ("From", "+14158675309"),
                ("To", "+18005551212"),
            ]),
        ),
        (
            Some(INBOUND.into()),
            format!("{PUBLIC}{INBOUND}"),
            sms(
                "+255700000010",
                "echo Habari, ñ € 😀",
                "SM5000000000000000000000000000000a",
            ),
        ),
        (
            Some(INBOUND.into()),
            format!("{PUBLIC}{INBOUND}"),
            sms(
                "+255700000011",
                "echo  a+b & c=d 100% ?#  ",
                "SM5000000000000000000000000000000b",
            ),
        ),
        (
            Some(status_path.into()),
            format!("{PUBLIC}{status_path}"),
            callback(
                "SM5000000000000000000000000000000c",
                "+255700000012",
                "undelivered",
                Some("30003"),
            ),
        ),
    ];
    // Repeated names (as MediaUrl parameters can be), values out of order,
    // one repeated identically, and names that sort by case.
    let mut repeated = sms(
        "+255700000013",
        "echo repeats",
        "SM5000000000000000000000000000000d",
    );
    repeated.extend(p(&[
        ("Tag", "b"),
        ("Tag", "a=1&x"),
        ("Tag", "b"),
        ("tag", ""),
        ("Émoji", "😀"),
    ]));
    cases.push((Some(INBOUND.into()), format!("{PUBLIC}{INBOUND}"), repeated));

    let input = Value::Array(
        cases
            .iter()
            .map(|(_, url, params)| json!({"url": url, "params": params, "token": token_for(url)}))
            .collect(),
    );
    let theirs = twilio_signatures(&input);
    assert_eq!(theirs.len(), cases.len(), "{theirs:?}");
    assert_eq!(theirs[0], "RSOYDt4T1cUTdK1PDd93/VVr8B8=");
    for ((path, url, params), their) in cases.iter().zip(&theirs) {
        assert_eq!(
            &signature(token_for(url), url, params),
            their,
            "{url} {params:?}"
        );
        // The running backend takes what Twilio's library signed.
        if let Some(path) = path {
            let res = t.post_with(path, params, Some(their)).await;
            let status = res.status();
            assert_eq!(status, 200, "{url}: {}", res.text().await.unwrap());
        }
    }
    // Inbound texts arrive intact.
    let mut texts = Vec::new();
    for _ in 0..3 {
        texts.push(t.next_inbound().await.text);
    }
    texts.sort();
    assert_eq!(
        texts,
        [
            "echo  a+b & c=d 100% ?#  ",
            "echo Habari, ñ € 😀",
            "echo repeats"
        ]
    );
    t.stop().await;
}

/// The documented vector's token; ours for everything else.
fn token_for(url: &str) -> &'static str {
    if url.starts_with("https://mycompany.com/") {
        "12345"
    } else {
        TOKEN
    }
}
