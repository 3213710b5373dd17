//! The web pages in a real browser (Debian's Chromium, driven through
//! chromedriver's WebDriver API): the message tester against `smsflow run`
//! of the demo pipeline, as a new user would try it (`echo hi`, `ping`,
//! `blah`); and contacts, CSV import, messaging, message status, the
//! message log and poll results, clicked through as an operator would.
//!
//! Needs `chromium` and `chromium-driver` (the test script installs them).

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

mod common;

struct Driver {
    child: Child,
    base: String,
    client: reqwest::Client,
    /// Chromium's profile: its processes are found by it if the test fails
    /// before the session is closed.
    profile: tempfile::TempDir,
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = Command::new("pkill")
            .arg("-f")
            .arg(self.profile.path())
            .status();
    }
}

impl Driver {
    async fn start() -> Driver {
        let path = common::Tool::Chromedriver.path();
        let port = common::free_port();
        let child = Command::new(path)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let d = Driver {
            child,
            base: format!("http://127.0.0.1:{port}"),
            client: reqwest::Client::new(),
            profile: tempfile::tempdir().unwrap(),
        };
        let deadline = Instant::now() + Duration::from_secs(20);
        while d
            .client
            .get(format!("{}/status", d.base))
            .send()
            .await
            .is_err()
        {
            assert!(Instant::now() < deadline, "chromedriver did not start");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        d
    }

    async fn call(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> Value {
        let mut req = self.client.request(method, format!("{}{path}", self.base));
        if let Some(b) = body {
            req = req.json(&b);
        }
        let res: Value = req.send().await.unwrap().json().await.unwrap();
        assert!(res["value"].get("error").is_none(), "{path}: {res}");
        res["value"].clone()
    }
}

struct Session<'d> {
    driver: &'d Driver,
    id: String,
}

impl<'d> Session<'d> {
    /// A headless Chromium session.
    async fn start(driver: &'d Driver) -> Session<'d> {
        let caps = json!({"capabilities": {"alwaysMatch": {"goog:loggingPrefs": {"browser": "ALL"}, "goog:chromeOptions": {
            "binary": common::Tool::Chromium.path(),
            "args": ["--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--disable-quic",
                     "--no-first-run", "--disable-background-networking", "--disable-component-update", "--disable-sync",
                     format!("--user-data-dir={}", driver.profile.path().display())]
        }}}});
        let session = driver
            .call(reqwest::Method::POST, "/session", Some(caps))
            .await;
        Session {
            driver,
            id: session["sessionId"].as_str().unwrap().to_owned(),
        }
    }

    async fn close(self) {
        self.driver
            .call(
                reqwest::Method::DELETE,
                &format!("/session/{}", self.id),
                None,
            )
            .await;
    }

    async fn open(&self, url: &str) {
        self.driver
            .call(
                reqwest::Method::POST,
                &format!("/session/{}/url", self.id),
                Some(json!({ "url": url })),
            )
            .await;
    }

    async fn refresh(&self) {
        self.driver
            .call(
                reqwest::Method::POST,
                &format!("/session/{}/refresh", self.id),
                Some(json!({})),
            )
            .await;
    }

    /// A screenshot (base64 PNG) to `name` under the target's test tmpdir.
    async fn screenshot(&self, name: &str) {
        let png = self
            .driver
            .call(
                reqwest::Method::GET,
                &format!("/session/{}/screenshot", self.id),
                None,
            )
            .await;
        let out = std::path::PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(name);
        std::fs::write(&out, png.as_str().unwrap_or_default()).unwrap();
    }

    /// What the browser's console said about the Content-Security-Policy
    /// since the last look (a blocked script, style or frame).
    async fn csp_violations(&self) -> Vec<String> {
        let log = self
            .driver
            .call(
                reqwest::Method::POST,
                &format!("/session/{}/se/log", self.id),
                Some(json!({ "type": "browser" })),
            )
            .await;
        log.as_array()
            .unwrap()
            .iter()
            .filter_map(|e| e["message"].as_str())
            .filter(|m| m.contains("Content Security Policy"))
            .map(str::to_owned)
            .collect()
    }

    /// A computed style property of `css` (whether the style sheet applied).
    async fn style(&self, css: &str, property: &str) -> String {
        let v = self
            .driver
            .call(
                reqwest::Method::POST,
                &format!("/session/{}/execute/sync", self.id),
                Some(json!({
                    "script": "return getComputedStyle(document.querySelector(arguments[0])).getPropertyValue(arguments[1])",
                    "args": [css, property],
                })),
            )
            .await;
        v.as_str().unwrap_or_default().to_owned()
    }

    /// The current value of the form field `css`.
    async fn value(&self, css: &str) -> String {
        let v = self
            .driver
            .call(
                reqwest::Method::POST,
                &format!("/session/{}/execute/sync", self.id),
                Some(json!({
                    "script": "return document.querySelector(arguments[0]).value",
                    "args": [css],
                })),
            )
            .await;
        v.as_str().unwrap_or_default().to_owned()
    }

    /// The trimmed texts of `css` once `ok` holds for them (reloading the
    /// page between looks when `reload`); fails the test after 20 s.
    async fn wait_for(
        &self,
        css: &str,
        reload: bool,
        ok: impl Fn(&[String]) -> bool,
    ) -> Vec<String> {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let texts: Vec<String> = self
                .texts(css)
                .await
                .iter()
                .map(|t| t.trim().to_owned())
                .collect();
            if ok(&texts) {
                return texts;
            }
            assert!(
                Instant::now() < deadline,
                "{css}: still {texts:?} after 20 s"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
            if reload {
                self.refresh().await;
            }
        }
    }

    async fn element(&self, css: &str) -> String {
        let v = self
            .driver
            .call(
                reqwest::Method::POST,
                &format!("/session/{}/element", self.id),
                Some(json!({"using": "css selector", "value": css})),
            )
            .await;
        // The W3C element reference is the object's only value.
        v.as_object()
            .and_then(|o| o.values().next())
            .and_then(Value::as_str)
            .unwrap()
            .to_owned()
    }

    /// Texts of the elements matching `css`, read in one go (the page
    /// re-renders its log, so element references go stale).
    async fn texts(&self, css: &str) -> Vec<String> {
        let script =
            "return Array.from(document.querySelectorAll(arguments[0])).map(e => e.textContent)";
        let v = self
            .driver
            .call(
                reqwest::Method::POST,
                &format!("/session/{}/execute/sync", self.id),
                Some(json!({"script": script, "args": [css]})),
            )
            .await;
        v.as_array()
            .unwrap()
            .iter()
            .map(|t| t.as_str().unwrap_or_default().to_owned())
            .collect()
    }

    async fn type_into(&self, css: &str, text: &str) {
        let el = self.element(css).await;
        self.driver
            .call(
                reqwest::Method::POST,
                &format!("/session/{}/element/{el}/clear", self.id),
                Some(json!({})),
            )
            .await;
        self.driver
            .call(
                reqwest::Method::POST,
                &format!("/session/{}/element/{el}/value", self.id),
                Some(json!({"text": text})),
            )
            .await;
    }

    async fn click(&self, css: &str) {
        let el = self.element(css).await;
        self.driver
            .call(
                reqwest::Method::POST,
                &format!("/session/{}/element/{el}/click", self.id),
                Some(json!({})),
            )
            .await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_tester_page_answers_in_a_real_browser() {
    require_tools!(common::Tool::Chromium, common::Tool::Chromedriver);
    let smsflow = common::Smsflow::start(common::free_port());
    let driver = Driver::start().await;
    let s = Session::start(&driver).await;
    s.open(&format!("{}/", smsflow.base)).await;

    s.type_into("#identity", "+15557777").await;
    let exchanges = [
        ("echo hi", "hi"),
        ("ping", "pong"),
        (
            "blah",
            "Sorry, smsflow demo could not understand your message.",
        ),
    ];
    for (n, (text, reply)) in exchanges.iter().enumerate() {
        s.type_into("#text", text).await;
        s.click("button[type=submit]").await;
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let outs = s.texts("#log li.out").await;
            if outs.len() > n {
                assert_eq!(outs[n], *reply, "reply to {text:?}");
                break;
            }
            assert!(
                Instant::now() < deadline,
                "no reply to {text:?} on the page; seen {outs:?}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    let sent = s.texts("#log li.in").await;
    assert_eq!(
        sent,
        exchanges
            .iter()
            .map(|(t, _)| t.to_string())
            .collect::<Vec<_>>()
    );

    s.screenshot("tester-page.b64").await;

    // A bad number is refused on the page with the server's reason.
    s.type_into("#identity", "call me").await;
    s.type_into("#text", "echo x").await;
    s.click("button[type=submit]").await;
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let err = s.texts("#error").await.concat();
        if err.contains("is not a phone number") {
            break;
        }
        assert!(Instant::now() < deadline, "no error shown: {err:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // Under the Content-Security-Policy: the style sheet applied, nothing blocked.
    let blocked = s.csp_violations().await;
    assert!(blocked.is_empty(), "{blocked:?}");
    assert_eq!(s.style("nav", "background-color").await, "rgb(36, 50, 63)");
    s.close().await;
    let (status, stderr) = smsflow.stop("TERM");
    assert!(status.success(), "{stderr}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_operator_adds_contacts_sends_a_message_and_follows_it_in_a_real_browser() {
    require_tools!(common::Tool::Chromium, common::Tool::Chromedriver);
    let running = common::start_embedded(common::WEB_PIPELINE).await;
    let base = format!("http://{}", running.admin_addr().unwrap());
    let api = reqwest::Client::new();
    let driver = Driver::start().await;
    let s = Session::start(&driver).await;

    // Add a contact; a bad number first comes back next to its field, with
    // what was typed kept.
    s.open(&format!("{base}/contacts/new")).await;
    s.type_into("#name", "Ada Lovelace").await;
    s.click("#language option[value=fr]").await;
    s.type_into("#groups", "staff").await;
    s.type_into("#identity-0", "555-ADA").await;
    s.click("#save").await;
    let error = s
        .wait_for("#error-identity-0", false, |t| !t.is_empty())
        .await;
    assert!(
        error[0].starts_with("\"555-ADA\" is not a phone number"),
        "{error:?}"
    );
    assert_eq!(s.value("#name").await, "Ada Lovelace");
    assert_eq!(s.value("#language").await, "fr");
    assert_eq!(s.value("#groups").await, "staff");
    assert_eq!(s.value("#identity-0").await, "555-ADA");
    s.type_into("#identity-0", "+1 555 000 1111").await;
    s.click("#save").await;
    s.wait_for("#flash", false, |t| t == ["Saved Ada Lovelace."])
        .await;
    assert_eq!(s.texts("#contacts td.name").await, ["Ada Lovelace"]);
    assert_eq!(s.texts("#contacts td.language").await, ["fr"]);
    assert_eq!(s.texts("#contacts td.groups").await, ["staff"]);
    assert_eq!(s.texts("#contacts td.identities").await, ["+15550001111"]);

    // Import a CSV file with one bad line.
    let csv = tempfile::Builder::new().suffix(".csv").tempfile().unwrap();
    std::fs::write(
        csv.path(),
        "Bob Smith, message_tester, +15550002222\nCarol, message_tester, call me\nDan, message_tester, +15550004444\n",
    )
    .unwrap();
    s.open(&format!("{base}/contacts/import")).await;
    s.type_into("#file", &csv.path().display().to_string())
        .await;
    let deadline = Instant::now() + Duration::from_secs(20);
    while !s.value("#csv").await.contains("Dan") {
        assert!(
            Instant::now() < deadline,
            "the file was not read into the form"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    s.click("#upload").await;
    s.wait_for("#import-result", false, |t| t == ["Added 2 contacts."])
        .await;
    s.screenshot("import-page.b64").await;
    let bad = s.texts("#import-errors li").await;
    assert_eq!(bad.len(), 1, "{bad:?}");
    assert!(
        bad[0].starts_with("Line 2: identity: \"call me\" is not a phone number"),
        "{bad:?}"
    );

    // Send a message to Ada and a raw number.
    let found: Value = api
        .get(format!("{base}/api/contacts?q=Ada"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let ada = found["contacts"][0]["id"].as_str().unwrap().to_owned();
    s.open(&format!("{base}/messaging/")).await;
    let label = s.texts(&format!("label:has(#contact-{ada})")).await;
    assert_eq!(
        label[0].trim(),
        "Ada Lovelace (message_tester - +15550001111)"
    );
    s.type_into("#text", "Lunch is at noon").await;
    s.click(&format!("#contact-{ada}")).await;
    s.type_into("#numbers", "+15550009999").await;
    s.click("#send").await;
    s.wait_for("#confirmation", false, |t| {
        t == ["Your message was sent to 2 recipients."]
    })
    .await;
    s.screenshot("messaging-page.b64").await;
    for phone in ["+15550001111", "+15550009999"] {
        assert_eq!(
            common::received(&api, &base, phone, 1).await,
            ["Lunch is at noon"],
            "{phone}"
        );
    }

    // Its status page lists both recipients, delivered.
    s.click("#status-link").await;
    s.wait_for("#recipients td.status", true, |t| {
        t == ["delivered", "delivered"]
    })
    .await;
    let mut numbers = s.texts("#recipients td.number").await;
    numbers.sort();
    assert_eq!(numbers, ["+15550001111", "+15550009999"]);
    let contacts = s.texts("#recipients td.contact").await;
    assert!(
        contacts.contains(&"Ada Lovelace".to_owned()),
        "{contacts:?}"
    );
    s.screenshot("status-page.b64").await;
    let summary = s.texts("#summary").await.concat();
    assert!(summary.contains("2 recipients: 2 delivered"), "{summary}");

    // The message log finds it by number.
    s.open(&format!("{base}/log/")).await;
    s.type_into("#number", "5550001111").await;
    s.click("#search-button").await;
    s.wait_for("#log tbody tr.out td.text", true, |t| {
        t == ["Lunch is at noon"]
    })
    .await;
    assert_eq!(s.value("#number").await, "5550001111");
    assert_eq!(
        s.texts("#log tbody tr.out td.contact").await,
        ["Ada Lovelace"]
    );
    assert_eq!(
        s.texts("#log tbody tr.out td.direction").await,
        ["Outgoing"]
    );
    assert_eq!(s.texts("#log tbody td.number").await, ["+15550001111"]);

    // Poll results change when an answer comes in; the question goes out
    // to the group from the poll's page, in Ada's French.
    s.open(&format!("{base}/polls/lunch")).await;
    assert_eq!(s.texts("#total").await, ["0"]);
    let res = api
        .post(format!("{base}/api/tester/messages"))
        .json(&json!({"identity": "+15550001111", "text": "lunch pizza"}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 202);
    s.wait_for("#total", true, |t| t == ["1"]).await;
    assert_eq!(
        s.texts("#results tr[data-choice=pizza] td.count").await,
        ["1"]
    );
    assert_eq!(
        s.texts("#results tr[data-choice=salad] td.count").await,
        ["0"]
    );
    s.type_into("#groups", "staff").await;
    s.click("#send-poll").await;
    s.wait_for("#confirmation", false, |t| {
        t == ["Your message was sent to 1 recipient."]
    })
    .await;
    let got = common::received(&api, &base, "+15550001111", 3).await;
    assert_eq!(
        got[2],
        "Que voulez-vous pour le déjeuner ? Reply LUNCH and one of: pizza, salad, soup."
    );

    // Under the Content-Security-Policy: the style sheet applied, nothing blocked.
    let blocked = s.csp_violations().await;
    assert!(blocked.is_empty(), "{blocked:?}");
    assert_eq!(s.style("nav", "background-color").await, "rgb(36, 50, 63)");
    s.close().await;
    running.shutdown().await.unwrap();
}
