//! The Twilio backend on the embedded bus, against a fake Messages API that
//! records every request: signed webhooks in (checked over the configured
//! public URL), replies out exactly as Twilio's API takes them, errors
//! retried or not, status callbacks as delivery events, and signatures
//! checked against Twilio's own helper library.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::{Json, Router};
use base64::prelude::{Engine as _, BASE64_STANDARD};
use serde_json::{json, Value};
use smsflow::backends::twilio::{signature, EMPTY_TWIML};
use smsflow::bus::Consumer;
use smsflow::config::KafkaMode;
use smsflow::message::{DeliveryEvent, DeliveryStatus, InboundMessage};
use smsflow::schema;
use smsflow::topology::{Running, Topology};

mod common;

const SID: &str = "AC0123456789abcdef0123456789abcdef";
const TOKEN: &str = "5f0c2a9e7b1d4e3f8a6b9c0d1e2f3a4b";
/// Our Twilio number.
const NUMBER: &str = "+15005550006";
/// What Twilio calls; the server listens on 127.0.0.1 behind it.
const PUBLIC: &str = "https://sms.example.org/hooks";
const INBOUND: &str = "/backend/twilio/";

/// Phones the fake API answers differently.
const REJECTED: &str = "+255700000400";
const FLAKY: &str = "+255700000503";
const BUSY: &str = "+255700000429";

/// Form parameters, in order.
type Params = Vec<(String, String)>;

/// One request the fake API got.
#[derive(Debug, Clone)]
struct Request {
    method: String,
    path: String,
    authorization: Option<String>,
    content_type: Option<String>,
    form: Params,
}

impl Request {
    fn get(&self, name: &str) -> Option<&str> {
        self.form
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

#[derive(Default)]
struct Fake {
    requests: Vec<Request>,
}

impl Fake {
    fn to(&self, phone: &str) -> usize {
        self.requests
            .iter()
            .filter(|r| r.get("To") == Some(phone))
            .count()
    }
}

/// Twilio's Messages API as far as the tests need it: every request is
/// recorded as it came (any method and path), and answered like Twilio.
async fn fake_api(
    State(f): State<Arc<Mutex<Fake>>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    // The url crate's form parser: independent of smsflow's.
    let form: Params =
        reqwest::Url::parse(&format!("http://form/?{}", String::from_utf8_lossy(&body)))
            .map(|u| u.query_pairs().into_owned().collect())
            .unwrap_or_default();
    let header = |name: &str| {
        headers
            .get(name)
            .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
    };
    let request = Request {
        method: method.to_string(),
        path: uri.to_string(),
        authorization: header("authorization"),
        content_type: header("content-type"),
        form,
    };
    let to = request.get("To").unwrap_or_default().to_owned();
    let from = request.get("From").map(str::to_owned);
    let text = request.get("Body").unwrap_or_default().to_owned();
    let (tries, n) = {
        let mut f = f.lock().unwrap();
        let tries = f.to(&to);
        f.requests.push(request);
        (tries, f.requests.len())
    };
    let error = |status: StatusCode, code: u32, message: &str| {
        Json(json!({
            "code": code,
            "message": message,
            "more_info": format!("https://www.twilio.com/docs/errors/{code}"),
            "status": status.as_u16(),
        }))
    };
    match (to.as_str(), tries) {
        (REJECTED, _) => (
            StatusCode::BAD_REQUEST,
            error(
                StatusCode::BAD_REQUEST,
                21211,
                &format!("The 'To' number {to} is not a valid phone number."),
            ),
        )
            .into_response(),
        (FLAKY, 0) => (
            StatusCode::SERVICE_UNAVAILABLE,
            error(
                StatusCode::SERVICE_UNAVAILABLE,
                20500,
                "Internal Server Error",
            ),
        )
            .into_response(),
        (BUSY, 0) => (
            StatusCode::TOO_MANY_REQUESTS,
            [("Retry-After", "1")],
            error(StatusCode::TOO_MANY_REQUESTS, 20429, "Too Many Requests"),
        )
            .into_response(),
        _ => {
            let sid = message_sid(n);
            (
                StatusCode::CREATED,
                Json(json!({
                    "account_sid": SID,
                    "api_version": "2010-04-01",
                    "body": text,
                    "date_created": "Thu, 01 Jan 2026 12:00:00 +0000",
                    "date_sent": null,
                    "date_updated": "Thu, 01 Jan 2026 12:00:00 +0000",
                    "direction": "outbound-api",
                    "error_code": null,
                    "error_message": null,
                    "from": from,
                    "messaging_service_sid": null,
                    "num_media": "0",
                    "num_segments": "1",
                    "price": null,
                    "price_unit": "USD",
                    "sid": sid,
                    "status": "queued",
                    "subresource_uris": {"media": format!("/2010-04-01/Accounts/{SID}/Messages/{sid}/Media.json")},
                    "to": to,
                    "uri": format!("/2010-04-01/Accounts/{SID}/Messages/{sid}.json"),
                })),
            )
                .into_response()
        }
    }
}

/// The fake API's sid for its `n`-th request.
fn message_sid(n: usize) -> String {
    format!("SM{n:032x}")
}

/// Pairs as owned strings.
fn p(pairs: &[(&str, &str)]) -> Params {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// An inbound message's webhook, every parameter Twilio sends.
fn sms(from: &str, body: &str, sid: &str) -> Params {
    p(&[
        ("ToCountry", "US"),
        ("ToState", "CA"),
        ("SmsMessageSid", sid),
        ("NumMedia", "0"),
        ("ToCity", ""),
        ("FromZip", ""),
        ("SmsSid", sid),
        ("FromState", ""),
        ("SmsStatus", "received"),
        ("FromCity", ""),
        ("Body", body),
        ("FromCountry", "TZ"),
        ("To", NUMBER),
        ("MessagingServiceSid", "MG0123456789abcdef0123456789abcdef"),
        ("ToZip", ""),
        ("NumSegments", "1"),
        ("MessageSid", sid),
        ("AccountSid", SID),
        ("From", from),
        ("ApiVersion", "2010-04-01"),
    ])
}

/// A status callback's parameters.
fn callback(sid: &str, to: &str, status: &str, error: Option<&str>) -> Params {
    let mut params = p(&[
        ("ApiVersion", "2010-04-01"),
        ("MessageStatus", status),
        ("SmsSid", sid),
        ("SmsStatus", status),
        ("To", to),
        ("From", NUMBER),
        ("MessageSid", sid),
        ("AccountSid", SID),
    ]);
    if let Some(code) = error {
        params.push(("ErrorCode".into(), code.into()));
    }
    params
}

fn sign(url: &str, params: &[(String, String)]) -> String {
    signature(TOKEN, url, params)
}

/// A running pipeline with a Twilio backend pointed at the fake API.
struct Harness {
    running: Running,
    base: String,
    fake: Arc<Mutex<Fake>>,
    events: Consumer,
    inbound: Consumer,
    client: reqwest::Client,
}

async fn start() -> Harness {
    let fake = Arc::new(Mutex::new(Fake::default()));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let api = format!("http://{}", listener.local_addr().unwrap());
    let app = Router::new().fallback(fake_api).with_state(fake.clone());
    tokio::spawn(async move { axum::serve(listener, app).await });
    let yaml = format!(
        r#"
http:
  listen: ${{SMSFLOW_LISTEN}}
  public_url: {PUBLIC}
backends:
  - type: twilio
    account_sid: {SID}
    auth_token: {TOKEN}
    from: "{NUMBER}"
    api_url: {api}/
    send: {{backoff: 10ms}}
routes:
  - app: echo
apps:
  - type: echo
"#
    );
    let running = Topology::new(common::pipeline_from(&yaml, KafkaMode::Embedded))
        .unwrap()
        .start(None, true)
        .await
        .unwrap();
    let base = format!("http://{}", running.http_addr().unwrap());
    let events = running
        .bus()
        .consumer("test.events", &["sms.events"])
        .unwrap();
    let inbound = running
        .bus()
        .consumer("test.inbound", &["sms.inbound"])
        .unwrap();
    Harness {
        running,
        base,
        fake,
        events,
        inbound,
        client: reqwest::Client::new(),
    }
}

impl Harness {
    /// POST `params` to `path` (with its query), with `signature` if any.
    async fn post_with(
        &self,
        path: &str,
        params: &[(String, String)],
        signature: Option<&str>,
    ) -> reqwest::Response {
        let mut req = self
            .client
            .post(format!("{}{path}", self.base))
            .form(params);
        if let Some(s) = signature {
            req = req.header("X-Twilio-Signature", s);
        }
        req.send().await.unwrap()
    }

    /// POST `params` to `path`, signed as Twilio signs it: over the public URL.
    async fn post(&self, path: &str, params: &[(String, String)]) -> reqwest::Response {
        let sig = sign(&format!("{PUBLIC}{path}"), params);
        self.post_with(path, params, Some(&sig)).await
    }

    async fn next_event(&mut self) -> DeliveryEvent {
        common::next_event(&mut self.events).await
    }

    async fn next_inbound(&mut self) -> InboundMessage {
        common::next(&mut self.inbound, schema::inbound()).await
    }

    fn requests(&self) -> Vec<Request> {
        self.fake.lock().unwrap().requests.clone()
    }

    async fn stop(self) {
        self.running.shutdown().await.unwrap();
    }
}

/// The JSON error of a refused request: (status, field, message).
async fn refusal(res: reqwest::Response) -> (u16, Value, String) {
    let status = res.status().as_u16();
    let body: Value = res.json().await.unwrap_or(Value::Null);
    (
        status,
        body["field"].clone(),
        body["error"].as_str().unwrap_or_default().to_owned(),
    )
}

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

/// The python with Twilio's helper library (scripts/tools.sh makes it).
fn python() -> PathBuf {
    let path = std::env::var_os("SMSFLOW_PYTHON")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(std::env::var_os("HOME").unwrap_or_default())
                .join(".cache/smsflow/venv/bin/python")
        });
    assert!(
        path.exists(),
        "no python with Twilio's helper library at {} (SMSFLOW_PYTHON): run scripts/tools.sh, or python3 -m venv ~/.cache/smsflow/venv && ~/.cache/smsflow/venv/bin/pip install twilio",
        path.display()
    );
    path
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
