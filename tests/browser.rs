//! The message tester page in a real browser (Debian's Chromium, driven
//! through chromedriver's WebDriver API), against `smsflow run` of the demo
//! pipeline, as a new user would try it: `echo hi`, `ping`, `blah`.
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
        let path = ["/usr/bin/chromedriver", "/usr/lib/chromium/chromedriver"]
            .into_iter()
            .find(|p| std::path::Path::new(p).exists())
            .expect("chromedriver not found: install Debian's chromium and chromium-driver (.ci/run does)");
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

impl Session<'_> {
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
    let smsflow = common::Smsflow::start(common::free_port());
    let driver = Driver::start().await;
    let caps = json!({"capabilities": {"alwaysMatch": {"goog:chromeOptions": {
        "binary": "/usr/bin/chromium",
        "args": ["--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--disable-quic",
                 "--no-first-run", "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 format!("--user-data-dir={}", driver.profile.path().display())]
    }}}});
    let session = driver
        .call(reqwest::Method::POST, "/session", Some(caps))
        .await;
    let s = Session {
        driver: &driver,
        id: session["sessionId"].as_str().unwrap().to_owned(),
    };
    s.driver
        .call(
            reqwest::Method::POST,
            &format!("/session/{}/url", s.id),
            Some(json!({"url": format!("{}/", smsflow.base)})),
        )
        .await;

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

    let png = s
        .driver
        .call(
            reqwest::Method::GET,
            &format!("/session/{}/screenshot", s.id),
            None,
        )
        .await;
    let out = std::path::PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("tester-page.b64");
    std::fs::write(&out, png.as_str().unwrap_or_default()).unwrap();

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

    s.driver
        .call(reqwest::Method::DELETE, &format!("/session/{}", s.id), None)
        .await;
    let (status, stderr) = smsflow.stop("TERM");
    assert!(status.success(), "{stderr}");
}
