//! Contacts through the web API: create, read, update, delete, CSV import.

use super::*;

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
