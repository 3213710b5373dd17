//! The web API (and a few pages) on the embedded bus, with a tester
//! backend standing in for the phones: contacts, CSV import, messaging and
//! message status, polls, the message log, opt-outs.

use std::time::{Duration, Instant};

use serde_json::{json, Value};
use smsflow::topology::Running;

mod common;

struct Web {
    running: Running,
    base: String,
    client: reqwest::Client,
}

impl Web {
    async fn start(yaml: &str) -> Web {
        let running = common::start_embedded(yaml).await;
        let base = format!("http://{}", running.admin_addr().unwrap());
        let client = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap();
        Web {
            running,
            base,
            client,
        }
    }

    async fn call(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> (u16, Value) {
        let mut req = self.client.request(method, format!("{}{path}", self.base));
        if let Some(b) = body {
            req = req.json(&b);
        }
        common::json_answer(req.send().await.unwrap()).await
    }

    async fn get(&self, path: &str) -> (u16, Value) {
        self.call(reqwest::Method::GET, path, None).await
    }

    async fn post(&self, path: &str, body: Value) -> (u16, Value) {
        self.call(reqwest::Method::POST, path, Some(body)).await
    }

    /// A raw body, as a client that sends no JSON would.
    async fn post_raw(&self, path: &str, content_type: &str, body: &str) -> (u16, Value) {
        let res = self
            .client
            .post(format!("{}{path}", self.base))
            .header("content-type", content_type)
            .body(body.to_owned())
            .send()
            .await
            .unwrap();
        common::json_answer(res).await
    }

    /// A page: status and HTML.
    async fn page(&self, path: &str) -> (u16, String) {
        let res = self
            .client
            .get(format!("{}{path}", self.base))
            .send()
            .await
            .unwrap();
        (res.status().as_u16(), res.text().await.unwrap())
    }

    /// A form as the page posts it, with the CSRF token its page carries.
    async fn post_form(&self, path: &str, form: &[(&str, &str)]) -> (u16, String, String) {
        let res = self
            .client
            .get(format!("{}/contacts/new", self.base))
            .send()
            .await
            .unwrap();
        let cookie = common::csrf_cookie(&res);
        let token = common::csrf_token(&res.text().await.unwrap());
        let mut form = form.to_vec();
        form.push(("csrf", &token));
        let res = self
            .client
            .post(format!("{}{path}", self.base))
            .header("cookie", cookie)
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

    /// A phone sends `text` through the tester.
    async fn phone_sends(&self, identity: &str, text: &str) {
        let (status, body) = self
            .post(
                "/api/tester/messages",
                json!({"identity": identity, "text": text}),
            )
            .await;
        assert_eq!(status, 202, "{body}");
    }

    /// What the phone `identity` received, once it has `n` messages.
    async fn received(&self, identity: &str, n: usize) -> Vec<String> {
        common::received(&self.client, &self.base, identity, n).await
    }

    async fn contact(&self, body: Value) -> Value {
        let (status, answer) = self.post("/api/contacts", body.clone()).await;
        assert_eq!(status, 201, "{body}: {answer}");
        answer["contact"].clone()
    }
}

/// Ask `ask` every 20 ms until its answer is `done`, for at most 20 s; the
/// last answer (the caller asserts on it).
async fn until<T, F, Fut>(mut ask: F, done: impl Fn(&T) -> bool) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = T>,
{
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let answer = ask().await;
        if done(&answer) || Instant::now() > deadline {
            return answer;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The next record on `topic` about contact `id` (an empty payload is a tombstone).
async fn next_about(topic: &mut smsflow::bus::Consumer, id: &str) -> bytes::Bytes {
    loop {
        let r = tokio::time::timeout(Duration::from_secs(20), topic.recv())
            .await
            .expect("a record within 20 s")
            .unwrap();
        if r.key.as_deref() == Some(id.as_bytes()) {
            return r.payload;
        }
    }
}

fn contact_of(payload: &[u8]) -> smsflow::message::Contact {
    smsflow::schema::contact().decode(payload).unwrap()
}

fn assert_refused(answer: &(u16, Value), status: u16, field: &str, words: &str) {
    let (s, body) = answer;
    assert_eq!(*s, status, "{body}");
    assert_eq!(body["field"], field, "{body}");
    let error = body["error"].as_str().unwrap_or_default();
    assert!(error.contains(words), "{error:?} should say {words:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn contacts_are_created_read_updated_and_deleted_through_the_topic() {
    let web = Web::start(common::WEB_PIPELINE).await;
    let mut topic = web
        .running
        .bus()
        .consumer("test-contacts", &["sms.contacts"])
        .unwrap();

    let ada = web
        .contact(json!({
            "name": " Ada Lovelace ",
            "language": "French",
            "groups": ["staff", "staff", " math "],
            "connections": [{"backend": "message_tester", "identity": "+1 555 000-1111"}]
        }))
        .await;
    let id = ada["id"].as_str().unwrap().to_owned();
    assert_eq!(ada["name"], "Ada Lovelace");
    assert_eq!(ada["language"], "fr");
    assert_eq!(ada["groups"], json!(["math", "staff"]));
    assert_eq!(
        ada["connections"],
        json!([{"backend": "message_tester", "identity": "+15550001111"}])
    );
    assert!(ada["created_at"].as_i64().unwrap() > 0);
    let stored = contact_of(&next_about(&mut topic, &id).await);
    assert_eq!(stored.name, "Ada Lovelace");

    // Without a backend, a number goes on the first one.
    let bob = web
        .contact(json!({"name": "Bob", "connections": [{"identity": "+15550002222"}]}))
        .await;
    assert_eq!(bob["connections"][0]["backend"], "message_tester");
    assert_eq!(bob["language"], "");

    let (status, found) = web.get("/api/contacts?q=lovelace").await;
    assert_eq!(status, 200);
    assert_eq!(found["contacts"].as_array().unwrap().len(), 1);
    assert_eq!(found["contacts"][0]["id"], id.as_str());
    let (_, found) = web.get("/api/contacts?q=2222").await;
    assert_eq!(found["contacts"][0]["name"], "Bob");
    let (_, all) = web.get("/api/contacts").await;
    let names: Vec<&str> = all["contacts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["Ada Lovelace", "Bob"]);

    let (status, got) = web.get(&format!("/api/contacts/{id}")).await;
    assert_eq!(status, 200);
    assert_eq!(got["contact"], ada);

    // A contact read can be sent back changed.
    let mut changed = got["contact"].clone();
    changed["name"] = json!("Ada King");
    changed["language"] = json!("en");
    let (status, put) = web
        .call(
            reqwest::Method::PUT,
            &format!("/api/contacts/{id}"),
            Some(changed),
        )
        .await;
    assert_eq!(status, 200, "{put}");
    assert_eq!(put["contact"]["id"], id.as_str());
    assert_eq!(put["contact"]["name"], "Ada King");
    assert_eq!(put["contact"]["created_at"], ada["created_at"]);
    let stored = contact_of(&next_about(&mut topic, &id).await);
    assert_eq!(
        (stored.name.as_str(), stored.language.as_str()),
        ("Ada King", "en")
    );

    // Each mistake names its field.
    let bad = [
        (json!({"connections": []}), "name", "needs a name"),
        (json!({"name": "  "}), "name", "needs a name"),
        (json!({"name": "x".repeat(101)}), "name", "longer than 100"),
        (
            json!({"name": "C", "language": "klingon"}),
            "language",
            "en (English), fr (French)",
        ),
        (
            json!({"name": "C", "connections": [{"backend": "kannel", "identity": "+1555"}]}),
            "backend",
            "no backend \"kannel\"",
        ),
        (
            json!({"name": "C", "connections": [{"identity": "12ab"}]}),
            "identity",
            "is not a phone number",
        ),
        (
            json!({"name": "C", "connections": [{"identity": "+1555"}, {"identity": "+1 555"}]}),
            "identity",
            "given twice",
        ),
        (
            json!({"name": "C", "groups": "staff"}),
            "groups",
            "expected a sequence",
        ),
        (json!({"name": "C", "grups": []}), "grups", "unknown field"),
        (
            json!({"name": "C", "connections": [{"number": "+1555"}]}),
            "connections[0].number",
            "unknown field",
        ),
    ];
    for (body, field, words) in bad {
        let answer = web.post("/api/contacts", body.clone()).await;
        assert_refused(&answer, 400, field, words);
    }
    let answer = web
        .call(
            reqwest::Method::PUT,
            &format!("/api/contacts/{id}"),
            Some(json!({"name": "A", "connections": [{"identity": "call me"}]})),
        )
        .await;
    assert_refused(
        &answer,
        400,
        "identity",
        "\"call me\" is not a phone number",
    );
    let (_, unchanged) = web.get(&format!("/api/contacts/{id}")).await;
    assert_eq!(unchanged["contact"]["name"], "Ada King");

    for (content_type, body) in [
        ("application/json", "{not json"),
        ("application/json", ""),
        ("application/json", "[1, 2]"),
        ("application/json", r#"{"name": "A"} and more"#),
    ] {
        let (status, answer) = web.post_raw("/api/contacts", content_type, body).await;
        assert_eq!(status, 400, "{body:?}: {answer}");
        let error = answer["error"].as_str().unwrap();
        assert!(
            error.starts_with("expected a JSON object {\"name\""),
            "{error}"
        );
    }
    // What an HTML form on another site could send is not JSON: refused.
    let (status, answer) = web.post_raw("/api/contacts", "text/plain", "name=A").await;
    assert_eq!(status, 415, "{answer}");
    assert_eq!(answer["field"], "content-type");
    assert_eq!(web.get("/api/contacts?name=x").await.0, 400);

    // A number moves to the contact that takes it.
    let carol = web
        .contact(json!({"name": "Carol", "connections": [{"identity": "+15550002222"}]}))
        .await;
    let (_, bob_now) = web
        .get(&format!("/api/contacts/{}", bob["id"].as_str().unwrap()))
        .await;
    assert_eq!(bob_now["contact"]["connections"], json!([]));
    assert_eq!(carol["connections"][0]["identity"], "+15550002222");

    let (status, _) = web
        .call(
            reqwest::Method::DELETE,
            &format!("/api/contacts/{id}"),
            None,
        )
        .await;
    assert_eq!(status, 204);
    let (status, gone) = web.get(&format!("/api/contacts/{id}")).await;
    assert_eq!(status, 404);
    assert!(gone["error"].as_str().unwrap().contains(&id));
    let (status, _) = web
        .call(
            reqwest::Method::DELETE,
            &format!("/api/contacts/{id}"),
            None,
        )
        .await;
    assert_eq!(status, 404);
    let (status, _) = web
        .call(
            reqwest::Method::PUT,
            &format!("/api/contacts/{id}"),
            Some(json!({"name": "Ghost"})),
        )
        .await;
    assert_eq!(status, 404);
    // Ada's next record is her tombstone.
    assert!(next_about(&mut topic, &id).await.is_empty());
    web.running.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_csv_import_keeps_the_good_lines_and_reports_each_bad_one() {
    let web = Web::start(common::WEB_PIPELINE).await;
    let csv = "Ada Lovelace, message_tester, +15550001111\n\
               just a name\n\
               Bob, kannel, +15550002222\n\
               \"Smith, Carol\", message_tester, +1 555 000 3333\n\
               Dan, message_tester, 555-DAN\n";
    let (status, report) = web.post_raw("/api/contacts/import", "text/csv", csv).await;
    assert_eq!(status, 200, "{report}");
    assert_eq!(report["added"], 2);
    assert_eq!(report["updated"], 0);
    let errors = report["errors"].as_array().unwrap();
    let lines: Vec<i64> = errors.iter().map(|e| e["line"].as_i64().unwrap()).collect();
    assert_eq!(lines, [2, 3, 5], "{report}");
    assert!(errors[0]["reason"]
        .as_str()
        .unwrap()
        .contains("expected 3 fields"));
    assert!(errors[1]["reason"]
        .as_str()
        .unwrap()
        .contains("no backend \"kannel\""));
    assert!(errors[2]["reason"]
        .as_str()
        .unwrap()
        .contains("is not a phone number"));

    let (_, all) = web.get("/api/contacts").await;
    let people: Vec<(String, String)> = all["contacts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            (
                c["name"].as_str().unwrap().to_owned(),
                c["connections"][0]["identity"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    assert_eq!(
        people,
        [
            ("Ada Lovelace".to_owned(), "+15550001111".to_owned()),
            ("Smith, Carol".to_owned(), "+15550003333".to_owned())
        ]
    );

    // Windows line ends (and a browser's form) count lines the same.
    let (_, crlf) = web
        .post_raw(
            "/api/contacts/import",
            "text/csv",
            "Eve, message_tester, +15550006666\r\nno commas\r\nFay, nope, +1555\r\n",
        )
        .await;
    assert_eq!(crlf["added"], 1, "{crlf}");
    let lines: Vec<&Value> = crlf["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| &e["line"])
        .collect();
    assert_eq!(lines, [2, 3], "{crlf}");
    let (status, _) = web
        .call(
            reqwest::Method::DELETE,
            &format!(
                "/api/contacts/{}",
                web.get("/api/contacts?q=Eve").await.1["contacts"][0]["id"]
                    .as_str()
                    .unwrap()
            ),
            None,
        )
        .await;
    assert_eq!(status, 204);

    // The same number again renames its contact.
    let (_, again) = web
        .post_raw(
            "/api/contacts/import",
            "text/csv",
            "Ada King, message_tester, +15550001111\n",
        )
        .await;
    assert_eq!(again, json!({"added": 0, "updated": 1, "errors": []}));
    let (_, empty) = web
        .post_raw("/api/contacts/import", "text/csv", "\n\n")
        .await;
    assert_eq!(
        empty["errors"][0]["reason"],
        "no contacts found in the file"
    );
    let res = web
        .client
        .post(format!("{}/api/contacts/import", web.base))
        .header("content-type", "text/csv")
        .body(vec![b'A', b',', 0xff, 0xfe])
        .send()
        .await
        .unwrap();
    let answer = common::json_answer(res).await;
    assert_refused(&answer, 400, "csv", "not UTF-8");
    web.running.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_message_reaches_contacts_a_group_and_numbers_and_its_status_lists_each() {
    let web = Web::start(common::WEB_PIPELINE).await;
    let ada = web
        .contact(json!({"name": "Ada", "groups": ["staff"], "connections": [{"identity": "+15550001111"}]}))
        .await;
    web.contact(
        json!({"name": "Bob", "groups": ["staff"], "connections": [{"identity": "+15550002222"}]}),
    )
    .await;
    let carol = web
        .contact(json!({"name": "Carol", "connections": [{"identity": "+15550003333"}]}))
        .await;
    let nobody = web.contact(json!({"name": "Nobody"})).await;

    let (status, sent) = web
        .post(
            "/api/messages",
            json!({
                "text": "Meeting at 10",
                // Ada is both chosen and in the group: she gets one message.
                "contacts": [carol["id"], ada["id"]],
                "groups": ["staff"],
                "numbers": ["+15550004444", "message_tester:+1 555 000 5555"]
            }),
        )
        .await;
    assert_eq!(status, 202, "{sent}");
    assert_eq!(sent["recipients"], 5);
    assert_eq!(
        sent["confirmation"],
        "Your message was sent to 5 recipients."
    );
    assert_eq!(sent["message_ids"].as_array().unwrap().len(), 5);
    let phones = [
        "+15550001111",
        "+15550002222",
        "+15550003333",
        "+15550004444",
        "+15550005555",
    ];
    for phone in phones {
        assert_eq!(web.received(phone, 1).await, ["Meeting at 10"], "{phone}");
    }

    let send_id = sent["send_id"].as_str().unwrap();
    let path = format!("/api/status/{send_id}");
    let (_, report) = until(
        || web.get(&path),
        |(s, r)| *s == 200 && r["counts"]["delivered"] == 5,
    )
    .await;
    assert_eq!(report["counts"], json!({"delivered": 5}), "{report}");
    assert_eq!(report["kind"], "send");
    assert_eq!(report["id"], send_id);
    let mut numbers: Vec<&str> = report["recipients"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["connection"]["identity"].as_str().unwrap())
        .collect();
    numbers.sort();
    assert_eq!(numbers, phones);
    let one = sent["message_ids"][0].as_str().unwrap();
    let (status, message) = web.get(&format!("/api/status/{one}")).await;
    assert_eq!(status, 200);
    assert_eq!(message["kind"], "message");
    assert_eq!(message["recipients"][0]["send_id"], send_id);

    let (status, single) = web
        .post(
            "/api/messages",
            json!({"text": "Just you", "numbers": ["+15550004444"]}),
        )
        .await;
    assert_eq!(status, 202);
    assert_eq!(
        single["confirmation"],
        "Your message was sent to 1 recipient."
    );
    assert_eq!(
        web.received("+15550004444", 2).await,
        ["Meeting at 10", "Just you"]
    );

    let bad = [
        (json!({"text": "hi"}), "recipients", "no recipients"),
        (json!({"numbers": ["+1555"]}), "text", "empty"),
        (json!({"text": "  ", "numbers": ["+1555"]}), "text", "empty"),
        (
            json!({"text": "hi", "contacts": ["nope"]}),
            "contacts",
            "no contact with id \"nope\"",
        ),
        (
            json!({"text": "hi", "contacts": [nobody["id"]]}),
            "contacts",
            "no phone number",
        ),
        (
            json!({"text": "hi", "groups": ["band"]}),
            "groups",
            "no contact is in group \"band\"",
        ),
        (
            json!({"text": "hi", "numbers": ["call me"]}),
            "numbers",
            "is not a phone number",
        ),
        (
            json!({"text": "hi", "numbers": ["kannel:+1555"]}),
            "numbers",
            "no backend \"kannel\"",
        ),
        (
            json!({"text": "hi", "numbers": "+1555"}),
            "numbers",
            "expected a sequence",
        ),
        (json!({"message": "hi"}), "message", "unknown field"),
    ];
    for (body, field, words) in bad {
        let answer = web.post("/api/messages", body.clone()).await;
        assert_refused(&answer, 400, field, words);
    }
    let (status, answer) = web
        .post_raw("/api/messages", "application/json", "{\"text\": ")
        .await;
    assert_eq!(status, 400);
    assert!(
        answer["error"].as_str().unwrap().contains("EOF"),
        "{answer}"
    );

    let (status, missing) = web.get("/api/status/no-such-id").await;
    assert_eq!(status, 404);
    assert_eq!(missing["error"], "no message or send with id no-such-id");
    web.running.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn poll_results_follow_the_answers_and_the_question_goes_out_in_each_language() {
    let web = Web::start(common::WEB_PIPELINE).await;
    let (status, polls) = web.get("/api/polls").await;
    assert_eq!(status, 200);
    assert_eq!(
        polls,
        json!({"polls": [{
            "name": "lunch",
            "question": "What do you want for lunch?",
            "choices": ["pizza", "salad", "soup"],
            "results": {
                "poll": "lunch",
                "question": "What do you want for lunch?",
                "choices": [["pizza", 0], ["salad", 0], ["soup", 0]],
                "total": 0
            }
        }]})
    );

    web.phone_sends("+15550001111", "lunch pizza").await;
    web.phone_sends("+15550002222", "LUNCH Pizza").await;
    web.phone_sends("+15550003333", "lunch salad").await;
    web.phone_sends("+15550004444", "lunch sushi").await;
    assert_eq!(
        web.received("+15550004444", 1).await,
        ["Sorry, \"sushi\" is not a choice. Reply LUNCH and one of: pizza, salad, soup."]
    );
    let results = |pizza: i64, salad: i64| {
        json!({
            "poll": "lunch",
            "question": "What do you want for lunch?",
            "choices": [["pizza", pizza], ["salad", salad], ["soup", 0]],
            "total": pizza + salad
        })
    };
    let (_, seen) = until(|| web.get("/api/polls/lunch"), |(_, r)| *r == results(2, 1)).await;
    assert_eq!(seen, results(2, 1));
    // Answering again changes the answer.
    web.phone_sends("+15550001111", "lunch salad").await;
    let (_, seen) = until(|| web.get("/api/polls/lunch"), |(_, r)| *r == results(1, 2)).await;
    assert_eq!(seen, results(1, 2));
    let (_, list) = web.get("/api/polls").await;
    assert_eq!(list["polls"][0]["results"], results(1, 2));

    let (status, missing) = web.get("/api/polls/dinner").await;
    assert_eq!(status, 404);
    assert!(missing["error"].as_str().unwrap().contains("polls: lunch"));

    web.contact(json!({"name": "Amélie", "language": "fr", "groups": ["team"], "connections": [{"identity": "+15550006666"}]}))
        .await;
    web.contact(
        json!({"name": "Bob", "groups": ["team"], "connections": [{"identity": "+15550007777"}]}),
    )
    .await;
    let (status, sent) = web
        .post("/api/polls/lunch/send", json!({"groups": ["team"]}))
        .await;
    assert_eq!(status, 202, "{sent}");
    assert_eq!(
        sent["confirmation"],
        "Your message was sent to 2 recipients."
    );
    assert_eq!(
        web.received("+15550006666", 1).await,
        ["Que voulez-vous pour le déjeuner ? Reply LUNCH and one of: pizza, salad, soup."]
    );
    assert_eq!(
        web.received("+15550007777", 1).await,
        ["What do you want for lunch? Reply LUNCH and one of: pizza, salad, soup."]
    );
    let path = format!("/api/status/{}", sent["send_id"].as_str().unwrap());
    let (status, report) = until(|| web.get(&path), |(s, _)| *s == 200).await;
    assert_eq!(status, 200, "the poll's send has no status: {report}");
    assert_eq!(report["kind"], "send");
    // The message log has the broadcast as the poll's.
    let (_, log) = until(
        || web.get("/api/log?number=6666&direction=out"),
        |(_, l)| l["total"] == 1,
    )
    .await;
    assert_eq!(log["entries"][0]["app"], "lunch", "{log}");

    let answer = web.post("/api/polls/lunch/send", json!({})).await;
    assert_refused(&answer, 400, "recipients", "no recipients");
    let answer = web
        .post(
            "/api/polls/lunch/send",
            json!({"text": "hi", "groups": ["team"]}),
        )
        .await;
    assert_refused(&answer, 400, "text", "unknown field");
    let (status, _) = web
        .post("/api/polls/dinner/send", json!({"groups": ["team"]}))
        .await;
    assert_eq!(status, 404);
    web.running.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_log_is_searched_newest_first_and_opt_outs_are_listed() {
    let web = Web::start(common::WEB_PIPELINE).await;
    web.contact(json!({"name": "Ada", "connections": [{"identity": "+15550001111"}]}))
        .await;
    let before = smsflow::message::now_millis();
    // One at a time, each logged both ways before the next: the log's order
    // is the order it was written in.
    let sent = [
        ("+15550001111", "echo one"),
        ("+15550001111", "echo two"),
        ("+15550001111", "echo three"),
        ("+15550002222", "echo other"),
    ];
    for (n, (phone, text)) in sent.into_iter().enumerate() {
        web.phone_sends(phone, text).await;
        let (_, page) = until(|| web.get("/api/log"), |(_, p)| p["total"] == 2 * (n + 1)).await;
        assert_eq!(page["total"], 2 * (n + 1), "{page}");
    }
    let (status, ada) = web.get("/api/log?number=5550001111").await;
    assert_eq!(status, 200);
    assert_eq!(ada["total"], 6);
    let texts: Vec<&str> = ada["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["text"].as_str().unwrap())
        .collect();
    assert_eq!(
        texts,
        ["three", "echo three", "two", "echo two", "one", "echo one"]
    );
    assert_eq!(ada["entries"][1]["direction"], "in");
    assert_eq!(ada["entries"][1]["contact_name"], "Ada");

    let (_, inbound) = web.get("/api/log?contact=ada&direction=in").await;
    assert_eq!(inbound["total"], 3);
    let (_, text) = web.get("/api/log?text=OTHER").await;
    assert_eq!(text["total"], 2);
    let (_, paged) = web.get("/api/log?per_page=3&page=2").await;
    assert_eq!(
        (
            &paged["page"],
            &paged["pages"],
            &paged["per_page"],
            &paged["total"]
        ),
        (&json!(2), &json!(3), &json!(3), &json!(8))
    );
    assert_eq!(paged["entries"].as_array().unwrap().len(), 3);
    let (_, since) = web
        .get(&format!("/api/log?since={}", before + 3_600_000))
        .await;
    assert_eq!(since["total"], 0);
    let (_, earlier) = web.get(&format!("/api/log?until={before}")).await;
    assert_eq!(earlier["total"], 0);
    let (_, window) = web
        .get(&format!(
            "/api/log?since={before}&until={}",
            before + 3_600_000
        ))
        .await;
    assert_eq!(window["total"], 8);

    for (query, field) in [
        ("direction=sideways", "direction"),
        ("since=yesterday", "since"),
        ("until=1.5", "until"),
        ("page=0", "page"),
        ("per_page=x", "per_page"),
        ("numbr=1", "query"),
    ] {
        let (status, answer) = web.get(&format!("/api/log?{query}")).await;
        assert_eq!(status, 400, "{query}: {answer}");
        assert_eq!(answer["field"], field, "{query}: {answer}");
    }

    let (_, none) = web.get("/api/optouts").await;
    assert_eq!(none["optouts"], json!([]));
    assert_eq!(none["total"], 0);
    web.phone_sends("+15550002222", "STOP").await;
    web.received("+15550002222", 2).await;
    let (_, optouts) = until(
        || web.get("/api/optouts"),
        |(_, o)| o["optouts"].as_array().unwrap().len() == 1,
    )
    .await;
    assert_eq!(optouts["optouts"][0]["identity"], "+15550002222");
    assert_eq!(optouts["optouts"][0]["keyword"], "STOP");
    web.running.shutdown().await.unwrap();

    // Without `messagelog:` the log says how to turn it on.
    let off = Web::start(&common::WEB_PIPELINE.replace("messagelog: {}\n", "")).await;
    let (status, answer) = off.get("/api/log").await;
    assert_eq!(status, 404);
    assert_eq!(
        answer["error"],
        "the message log is off: add `messagelog:` to the pipeline"
    );
    let (status, html) = off.page("/log/").await;
    assert_eq!(status, 404);
    assert!(html.contains("The message log is off"));
    off.running.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pages_escape_what_users_typed_and_keep_it_when_it_is_wrong() {
    let web = Web::start(common::WEB_PIPELINE).await;
    for (path, heading) in [
        ("/log/", "<h1>Message log</h1>"),
        ("/contacts/", "<h1>Contacts</h1>"),
        ("/contacts/new", "<h1>Add a contact</h1>"),
        ("/contacts/import", "<h1>Import contacts</h1>"),
        ("/messaging/", "<h1>Send a message</h1>"),
        ("/polls/", "<h1>Polls</h1>"),
        ("/polls/lunch", "<h1>Poll lunch</h1>"),
        ("/status/", "<h1>Message status</h1>"),
    ] {
        let (status, html) = web.page(path).await;
        assert_eq!(status, 200, "{path}");
        assert!(html.contains(heading), "{path}: {html}");
        for nav in [
            "Message tester",
            "Message log",
            "Contacts",
            "Send a message",
            "Polls",
            "Message status",
        ] {
            assert!(
                html.contains(&format!(">{nav}</a>")),
                "{path} has no {nav} link"
            );
        }
    }
    assert_eq!(web.page("/polls/dinner").await.0, 404);
    assert_eq!(web.page("/contacts/nope/edit").await.0, 404);
    let res = web
        .client
        .get(format!("{}/log", web.base))
        .send()
        .await
        .unwrap();
    assert_eq!(res.headers()["location"], "/log/");

    // A bad number: the form comes back with the error next to its row
    // and everything typed kept (escaped).
    let evil = "<script>alert('x')</script> & Co";
    let (status, _, html) = web
        .post_form(
            "/contacts/new",
            &[
                ("name", evil),
                ("language", "fr"),
                ("groups", "staff, math"),
                ("backend-0", "message_tester"),
                ("identity-0", "+15550001111"),
                ("backend-1", "message_tester"),
                ("identity-1", "12ab"),
                ("backend-2", "message_tester"),
                ("identity-2", ""),
            ],
        )
        .await;
    assert_eq!(status, 400);
    assert!(!html.contains("<script>alert"), "not escaped: {html}");
    let escaped = "&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt; &amp; Co";
    assert!(html.contains(&format!("value=\"{escaped}\"")), "{html}");
    assert!(html.contains("value=\"staff, math\""));
    assert!(html.contains("<option value=\"fr\" selected>"));
    assert!(html
        .contains("id=\"error-identity-1\" role=\"alert\">&quot;12ab&quot; is not a phone number"));
    assert!(!html.contains("id=\"error-identity-0\""));
    let (_, none) = web.get("/api/contacts").await;
    assert_eq!(none["contacts"], json!([]));

    let (status, location, _) = web
        .post_form(
            "/contacts/new",
            &[
                ("name", evil),
                ("language", "fr"),
                ("groups", "staff, math"),
                ("backend-0", "message_tester"),
                ("identity-0", "+15550001111"),
                ("backend-1", "message_tester"),
                ("identity-1", ""),
            ],
        )
        .await;
    assert_eq!(status, 303);
    let (_, listed) = web.page(&location).await;
    assert!(listed.contains(&format!("Saved {escaped}.")), "{listed}");
    assert!(listed.contains(
        "<td class=\"groups\">math, staff</td><td class=\"identities\">+15550001111</td>"
    ));
    assert!(!listed.contains("<script>alert"));
    let (_, all) = web.get("/api/contacts").await;
    let id = all["contacts"][0]["id"].as_str().unwrap().to_owned();
    assert_eq!(all["contacts"][0]["name"], evil);

    // The message form keeps the text when a number is wrong.
    let (status, _, html) = web
        .post_form(
            "/messaging/",
            &[
                ("text", "Hi <b>there</b>"),
                ("numbers", "+15550002222, nope"),
            ],
        )
        .await;
    assert_eq!(status, 400);
    assert!(html.contains(">Hi &lt;b&gt;there&lt;/b&gt;</textarea>"));
    assert!(html.contains("id=\"error-numbers\""));
    let (status, _, html) = web
        .post_form("/messaging/", &[("text", "Hi"), ("contacts", &id)])
        .await;
    assert_eq!(status, 200);
    assert!(html.contains("<span id=\"confirmation\">Your message was sent to 1 recipient.</span>"));
    assert_eq!(web.received("+15550001111", 1).await, ["Hi"]);

    // CSV import on the page: the count and each bad line.
    let (status, _, html) = web
        .post_form(
            "/contacts/import",
            &[("csv", "Bob, message_tester, +15550002222\nCarol <x>\n")],
        )
        .await;
    assert_eq!(status, 200);
    assert!(
        html.contains("id=\"import-result\">Added 1 contact.</p>"),
        "{html}"
    );
    assert!(html.contains("<li>Line 2: expected 3 fields (name, backend, identity), found 1</li>"));

    // Delete through the confirmation page.
    let (status, html) = web.page(&format!("/contacts/{id}/delete")).await;
    assert_eq!(status, 200);
    assert!(html.contains(&format!("Delete {escaped}?")));
    let (status, location, _) = web.post_form(&format!("/contacts/{id}/delete"), &[]).await;
    assert_eq!(status, 303);
    let (_, listed) = web.page(&location).await;
    assert!(listed.contains(&format!("Deleted {escaped}.")), "{listed}");
    assert_eq!(web.get(&format!("/api/contacts/{id}")).await.0, 404);

    let (status, html) = web.page("/log/?from=2024-02-30").await;
    assert_eq!(status, 400);
    assert!(html.contains("id=\"error-from\""));
    let (status, html) = web.page("/status/?id=%3Cb%3E").await;
    assert_eq!(status, 404);
    assert!(html.contains("No message or send with id &lt;b&gt;"));
    web.running.shutdown().await.unwrap();
}
