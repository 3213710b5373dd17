//! Headless Chromium through chromedriver's WebDriver API: the calls
//! `tests/browser.rs` makes, in a module of its own. Reads tolerate a page
//! that is reloading (the campaign page refreshes itself): they answer
//! `None` then, and the caller looks again.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use super::common;

pub struct Driver {
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
    pub async fn start() -> Driver {
        let port = common::free_port();
        let child = Command::new(common::Tool::Chromedriver.path())
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

    /// A WebDriver call's value, or its error.
    async fn try_call(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> Result<Value, Value> {
        let mut req = self.client.request(method, format!("{}{path}", self.base));
        if let Some(b) = body {
            req = req.json(&b);
        }
        let res: Value = req.send().await.unwrap().json().await.unwrap();
        match res["value"].get("error") {
            Some(_) => Err(res),
            None => Ok(res["value"].clone()),
        }
    }

    async fn call(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> Value {
        self.try_call(method, path, body)
            .await
            .unwrap_or_else(|e| panic!("{path}: {e}"))
    }
}

pub struct Session<'d> {
    driver: &'d Driver,
    id: String,
}

impl<'d> Session<'d> {
    /// A headless Chromium session.
    pub async fn start(driver: &'d Driver) -> Session<'d> {
        let caps = json!({"capabilities": {"alwaysMatch": {"goog:loggingPrefs": {"browser": "ALL"}, "goog:chromeOptions": {
            "binary": common::Tool::Chromium.path(),
            "args": ["--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--disable-quic",
                     "--no-first-run", "--disable-background-networking", "--disable-component-update", "--disable-sync",
                     "--window-size=1280,2000",
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

    fn path(&self, rest: &str) -> String {
        format!("/session/{}{rest}", self.id)
    }

    pub async fn close(self) {
        self.driver
            .call(reqwest::Method::DELETE, &self.path(""), None)
            .await;
    }

    pub async fn open(&self, url: &str) {
        self.driver
            .call(
                reqwest::Method::POST,
                &self.path("/url"),
                Some(json!({ "url": url })),
            )
            .await;
    }

    /// The page's address, unless it is between two pages.
    pub async fn url(&self) -> Option<String> {
        let v = self
            .driver
            .try_call(reqwest::Method::GET, &self.path("/url"), None)
            .await
            .ok()?;
        v.as_str().map(str::to_owned)
    }

    /// `script` run in the page with `args`, unless the page is reloading.
    async fn run(&self, script: &str, args: Value) -> Option<Value> {
        self.driver
            .try_call(
                reqwest::Method::POST,
                &self.path("/execute/sync"),
                Some(json!({"script": script, "args": args})),
            )
            .await
            .ok()
    }

    /// The trimmed texts of the elements matching `css`, read in one go.
    pub async fn texts(&self, css: &str) -> Option<Vec<String>> {
        let v = self
            .run(
                "return Array.from(document.querySelectorAll(arguments[0])).map(e => e.textContent.trim())",
                json!([css]),
            )
            .await?;
        Some(
            v.as_array()?
                .iter()
                .map(|t| t.as_str().unwrap_or_default().to_owned())
                .collect(),
        )
    }

    /// The text of the one element `css`, once the page has it.
    pub async fn text(&self, css: &str) -> String {
        self.wait_for(css, |t| t.len() == 1).await.remove(0)
    }

    /// The texts of `css` once `ok` holds for them; fails the test after 30 s.
    pub async fn wait_for(&self, css: &str, ok: impl Fn(&[String]) -> bool) -> Vec<String> {
        let deadline = Instant::now() + Duration::from_secs(30);
        let mut last = None;
        loop {
            if let Some(texts) = self.texts(css).await {
                if ok(&texts) {
                    return texts;
                }
                last = Some(texts);
            }
            assert!(
                Instant::now() < deadline,
                "{css}: still {last:?} after 30 s"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// The current value of the form field `css`.
    pub async fn value(&self, css: &str) -> String {
        let v = self
            .run(
                "return document.querySelector(arguments[0]).value",
                json!([css]),
            )
            .await
            .unwrap_or_else(|| panic!("no {css}"));
        v.as_str().unwrap_or_default().to_owned()
    }

    /// An attribute of the elements matching `css`.
    pub async fn attributes(&self, css: &str, name: &str) -> Vec<String> {
        let v = self
            .run(
                "return Array.from(document.querySelectorAll(arguments[0])).map(e => e.getAttribute(arguments[1]))",
                json!([css, name]),
            )
            .await
            .unwrap_or_else(|| panic!("no {css}"));
        v.as_array()
            .unwrap()
            .iter()
            .map(|t| t.as_str().unwrap_or_default().to_owned())
            .collect()
    }

    async fn element(&self, css: &str) -> String {
        let v = self
            .driver
            .call(
                reqwest::Method::POST,
                &self.path("/element"),
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

    /// Type `text` into the field `css` (a file input takes a path).
    pub async fn type_into(&self, css: &str, text: &str) {
        let el = self.element(css).await;
        if !css.contains("type=file") && css != "#file" {
            self.driver
                .call(
                    reqwest::Method::POST,
                    &self.path(&format!("/element/{el}/clear")),
                    Some(json!({})),
                )
                .await;
        }
        self.driver
            .call(
                reqwest::Method::POST,
                &self.path(&format!("/element/{el}/value")),
                Some(json!({ "text": text })),
            )
            .await;
    }

    pub async fn click(&self, css: &str) {
        let el = self.element(css).await;
        self.driver
            .call(
                reqwest::Method::POST,
                &self.path(&format!("/element/{el}/click")),
                Some(json!({})),
            )
            .await;
    }

    /// A screenshot (base64 PNG) to `name` under the target's test tmpdir.
    pub async fn screenshot(&self, name: &str) {
        let png = self
            .driver
            .call(reqwest::Method::GET, &self.path("/screenshot"), None)
            .await;
        let out = std::path::PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(name);
        std::fs::write(&out, png.as_str().unwrap_or_default()).unwrap();
    }

    /// What the browser's console said about the Content-Security-Policy
    /// since the last look (a blocked script, style or frame).
    pub async fn csp_violations(&self) -> Vec<String> {
        let log = self
            .driver
            .call(
                reqwest::Method::POST,
                &self.path("/se/log"),
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
}
