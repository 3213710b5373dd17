//! The message log, opt-outs, and pages escaping what users typed.

use super::*;

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
