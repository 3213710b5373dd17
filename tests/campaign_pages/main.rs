//! The campaigns pages as HTML answers (no browser): the form's preview and
//! start, a campaign's page and its buttons, refused forms, escaping, the
//! CSRF check, the upload limit, and 404 without `campaigns:`.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use smsflow::config::KafkaMode;
use smsflow::message::OutboundMessage;
use smsflow::topology::{Running, Topology};

#[path = "../common/mod.rs"]
mod common;
mod forms;

pub const PIPELINE: &str = common::CAMPAIGN_PIPELINE;

type Sends = Arc<Mutex<Vec<OutboundMessage>>>;

struct Pages {
    running: Running,
    base: String,
    client: reqwest::Client,
    sends: Sends,
    /// The CSRF cookie and the token of the pages' forms.
    cookie: String,
    token: String,
}

impl Pages {
    async fn start(yaml: &str) -> Pages {
        let p = common::pipeline_from(yaml, KafkaMode::Embedded);
        let sends: Sends = Arc::default();
        let seen = sends.clone();
        let running = Topology::new(p)
            .unwrap()
            .with_send_hook(
                "bulk",
                Arc::new(move |m: &OutboundMessage| seen.lock().unwrap().push(m.clone())),
            )
            .start(None, true)
            .await
            .unwrap();
        let base = format!("http://{}", running.admin_addr().unwrap());
        let client = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap();
        // Any page sets the cookie; the contacts form carries the token.
        let res = client
            .get(format!("{base}/contacts/new"))
            .send()
            .await
            .unwrap();
        let cookie = common::csrf_cookie(&res);
        let token = common::csrf_token(&res.text().await.unwrap());
        Pages {
            running,
            base,
            client,
            sends,
            cookie,
            token,
        }
    }

    /// A page: status and HTML.
    async fn get(&self, path: &str) -> (u16, String) {
        let res = self
            .client
            .get(format!("{}{path}", self.base))
            .header("cookie", &self.cookie)
            .send()
            .await
            .unwrap();
        (res.status().as_u16(), res.text().await.unwrap())
    }

    /// The `Refresh` header of a page, if it has one.
    async fn refresh(&self, path: &str) -> Option<String> {
        let res = self
            .client
            .get(format!("{}{path}", self.base))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 200, "{path}");
        let refresh = res.headers().get("refresh")?;
        Some(refresh.to_str().unwrap().to_owned())
    }

    /// A form as the browser posts it (with the CSRF token): status,
    /// `Location`, HTML.
    async fn post(&self, path: &str, form: &[(&str, &str)]) -> (u16, String, String) {
        let mut form = form.to_vec();
        form.push(("csrf", &self.token));
        let res = self
            .client
            .post(format!("{}{path}", self.base))
            .header("cookie", &self.cookie)
            .form(&form)
            .send()
            .await
            .unwrap();
        let location = res
            .headers()
            .get("location")
            .map(|l| l.to_str().unwrap().to_owned())
            .unwrap_or_default();
        (res.status().as_u16(), location, res.text().await.unwrap())
    }

    /// Campaign `path`'s page once `done` holds for it (fails after 30 s).
    async fn page_until(&self, path: &str, done: impl Fn(&str) -> bool) -> String {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let (status, html) = self.get(path).await;
            assert_eq!(status, 200, "{html}");
            if done(&html) {
                return html;
            }
            assert!(Instant::now() < deadline, "{path} never got there:\n{html}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

/// The text of the element with `id` up to its first child element
/// (`<td id="count-sent">4</td>` → "4"), if the page has it.
fn text_of(html: &str, id: &str) -> Option<String> {
    let at = html.find(&format!(" id=\"{id}\""))?;
    let rest = &html[at..];
    let start = rest.find('>')? + 1;
    let end = rest[start..].find('<')? + start;
    Some(rest[start..end].trim().to_owned())
}

/// The value attribute of the input `id`.
fn value_of(html: &str, id: &str) -> Option<String> {
    let at = html.find(&format!("<input id=\"{id}\""))?;
    let rest = &html[at..];
    let start = rest.find(" value=\"")? + 8;
    let end = rest[start..].find('"')? + start;
    Some(rest[start..end].to_owned())
}

#[test]
fn text_of_reads_an_element_and_misses_none() {
    let html = "<td id=\"count-sent\">4</td><td id=\"x\"> a <b>b</b></td><input id=\"n\" name=\"n\" value=\"&lt;x\">";
    assert_eq!(text_of(html, "count-sent").as_deref(), Some("4"));
    assert_eq!(text_of(html, "x").as_deref(), Some("a"));
    assert_eq!(text_of(html, "count"), None);
    assert_eq!(value_of(html, "n").as_deref(), Some("&lt;x"));
    assert_eq!(value_of(html, "m"), None);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_campaigns_the_pages_answer_404_and_the_nav_has_no_link() {
    let web = Pages::start(common::WEB_PIPELINE).await;
    for path in ["/campaigns/", "/campaigns/new", "/campaigns/anything"] {
        let (status, html) = web.get(path).await;
        assert_eq!(status, 404, "{path}: {html}");
        assert!(
            html.contains("Campaigns are off in this pipeline: add a campaigns: section"),
            "{path}: {html}"
        );
    }
    let (status, _, html) = web.post("/campaigns/new", &[("name", "x")]).await;
    assert_eq!(status, 404, "{html}");
    let (_, contacts) = web.get("/contacts/").await;
    assert!(!contacts.contains("href=\"/campaigns/\""), "{contacts}");

    let with = Pages::start(PIPELINE).await;
    let (_, contacts) = with.get("/contacts/").await;
    assert!(
        contacts.contains("<a href=\"/campaigns/\">Campaigns</a>"),
        "{contacts}"
    );
    let (status, html) = with.get("/campaigns/").await;
    assert_eq!(status, 200, "{html}");
    assert!(
        html.contains("<a href=\"/campaigns/\" aria-current=\"page\">Campaigns</a>"),
        "{html}"
    );
    assert!(html.contains("No campaigns yet."), "{html}");
    let (status, html) = with.get("/campaigns/nope").await;
    assert_eq!(status, 404);
    assert!(html.contains("No campaign with id nope"), "{html}");
    drop(web.running);
    drop(with.running);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_form_without_its_csrf_token_is_refused() {
    let web = Pages::start(PIPELINE).await;
    let form = [
        ("name", "x"),
        ("backend", "bulk"),
        ("text-en", "hi"),
        ("csv", "phone\n+254700000001\n"),
        ("action", "start"),
    ];
    // No token, then a wrong one, then the token without the cookie.
    for (cookie, token) in [
        (Some(web.cookie.as_str()), None),
        (Some(web.cookie.as_str()), Some("0".repeat(64))),
        (None, Some(web.token.clone())),
    ] {
        let mut pairs = form.to_vec();
        if let Some(t) = &token {
            pairs.push(("csrf", t));
        }
        let mut req = web
            .client
            .post(format!("{}/campaigns/new", web.base))
            .form(&pairs);
        if let Some(c) = cookie {
            req = req.header("cookie", c);
        }
        let (status, body) = common::json_answer(req.send().await.unwrap()).await;
        assert_eq!(status, 403, "{body}");
        assert_eq!(body["field"], "csrf", "{body}");
    }
    let (status, _, html) = web.post("/campaigns/nope/pause", &[]).await;
    assert_eq!(
        status, 404,
        "with its token, the command reaches the page: {html}"
    );
    let req = web
        .client
        .post(format!("{}/campaigns/nope/pause", web.base))
        .header("cookie", &web.cookie);
    let (status, _) = common::json_answer(req.send().await.unwrap()).await;
    assert_eq!(status, 403);
    let (_, list) = web.get("/campaigns/").await;
    assert!(
        list.contains("No campaigns yet."),
        "nothing started: {list}"
    );
    assert!(web.sends.lock().unwrap().is_empty());
    drop(web.running);
}
