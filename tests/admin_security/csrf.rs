//! Cross-site requests and forms (CSRF), and the security headers.

use super::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cross_site_json_requests_are_refused() {
    let r = start("", &[]).await;
    let c = client();
    let base = admin(&r);
    let attack = json!({"text": "evil", "numbers": ["message_tester:+15550999"]}).to_string();
    // Before: 202, and the message was queued.
    let res = c
        .post(format!("{base}/api/messages"))
        .header("content-type", "text/plain")
        .header("origin", "http://evil.example")
        .body(attack.clone())
        .send()
        .await
        .unwrap();
    let (status, body) = common::json_answer(res).await;
    assert_eq!(status, 403, "{body}");
    assert!(
        body["error"].as_str().unwrap().contains("evil.example"),
        "{body}"
    );
    // JSON from another origin, or a browser saying it is cross-site.
    for (name, value) in [
        ("origin", "http://evil.example"),
        ("origin", "null"),
        ("sec-fetch-site", "cross-site"),
        ("sec-fetch-site", "same-site"),
    ] {
        let res = c
            .post(format!("{base}/api/messages"))
            .header("content-type", "application/json")
            .header(name, value)
            .body(attack.clone())
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 403, "{name}: {value}");
    }
    // A simple content type without any browser header: still not JSON.
    let res = c
        .post(format!("{base}/api/messages"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(attack.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 415);
    // The same page's own request goes through.
    let host = r.admin_addr().unwrap().to_string();
    let res = c
        .post(format!("{base}/api/messages"))
        .header("content-type", "application/json")
        .header("origin", format!("http://{host}"))
        .header("sec-fetch-site", "same-origin")
        .body(json!({"text": "fine", "numbers": ["message_tester:+15550998"]}).to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 202);
    let got = common::received(&c, &base, "+15550998", 1).await;
    assert_eq!(got, ["fine"]);
    // Sent after the refused ones and delivered: none of those was queued.
    let log: Value = c
        .get(format!("{base}/api/log?text=evil"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(log["total"], 0, "{log}");
    assert!(common::conversation(&c, &base, "+15550999", 0)
        .await
        .is_empty());
    r.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forms_need_their_token_and_origin() {
    let r = start("", &[]).await;
    let c = client();
    let base = admin(&r);
    let post = |form: Vec<(&'static str, String)>,
                origin: Option<&'static str>,
                cookie: Option<String>| {
        let mut req = c.post(format!("{base}/contacts/new")).form(&form);
        if let Some(o) = origin {
            req = req.header("origin", o);
        }
        if let Some(cookie) = cookie {
            req = req.header("cookie", cookie);
        }
        req.send()
    };
    let ada = || {
        vec![
            ("name", "Ada".to_owned()),
            ("backend-0", "message_tester".to_owned()),
            ("identity-0", "+15550101".to_owned()),
        ]
    };
    // No token, a wrong one: refused, nothing saved.
    let res = post(ada(), None, None).await.unwrap();
    let (status, body) = common::json_answer(res).await;
    assert_eq!(status, 403, "{body}");
    assert_eq!(body["field"], "csrf");
    assert!(
        body["error"].as_str().unwrap().contains("CSRF token"),
        "{body}"
    );
    let mut wrong = ada();
    wrong.push(("csrf", "0".repeat(64)));
    assert_eq!(post(wrong, None, None).await.unwrap().status(), 403);
    let count = |v: Value| v["total"].as_u64().unwrap();
    let contacts = || async {
        c.get(format!("{base}/api/contacts"))
            .send()
            .await
            .unwrap()
            .json::<Value>()
            .await
            .unwrap()
    };
    assert_eq!(count(contacts().await), 0);
    // The page's token from another site's page: refused too.
    let page = c.get(format!("{base}/contacts/new")).send().await.unwrap();
    let cookie = common::csrf_cookie(&page);
    let token = common::csrf_token(&page.text().await.unwrap());
    let mut signed = ada();
    signed.push(("csrf", token.clone()));
    let res = post(
        signed.clone(),
        Some("http://evil.example"),
        Some(cookie.clone()),
    )
    .await
    .unwrap();
    assert_eq!(res.status(), 403);
    // The token without its cookie (another browser), or with another
    // browser's cookie: refused.
    assert_eq!(
        post(signed.clone(), None, None).await.unwrap().status(),
        403
    );
    let other = format!("smsflow_csrf={}", "ab".repeat(32));
    let res = post(signed.clone(), None, Some(other)).await.unwrap();
    assert_eq!(res.status(), 403);
    assert_eq!(count(contacts().await), 0);
    // The page's own post is saved.
    let res = post(signed.clone(), None, Some(cookie.clone()))
        .await
        .unwrap();
    assert_eq!(res.status(), 303);
    assert_eq!(count(contacts().await), 1);
    r.shutdown().await.unwrap();

    // Another replica takes the form the first one served: nothing on the
    // server ties the token to the process that made it (the cookie carries
    // it), so replicas behind one load balancer accept each other's forms.
    let r = start("", &[]).await;
    let base = admin(&r);
    let res = c
        .post(format!("{base}/contacts/new"))
        .header("cookie", cookie)
        .form(&signed)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 303);
    r.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_answer_carries_the_security_headers() {
    let r = start("", &[]).await;
    let c = client();
    for url in [
        format!("{}/contacts/", admin(&r)),
        format!("{}/tester/", admin(&r)),
        format!("{}/api/log", admin(&r)),
        format!("{}/nothing", admin(&r)),
        format!("{}/healthz", public(&r)),
    ] {
        let res = c.get(&url).send().await.unwrap();
        let h = res.headers();
        assert_eq!(h["x-content-type-options"], "nosniff", "{url}");
        assert_eq!(h["x-frame-options"], "DENY", "{url}");
        assert_eq!(h["referrer-policy"], "same-origin", "{url}");
        let csp = h["content-security-policy"].to_str().unwrap();
        assert!(csp.contains("frame-ancestors 'none'"), "{url}: {csp}");
        assert!(csp.contains("script-src 'self'"), "{url}: {csp}");
    }
    // The pages' scripts and styles are files of their own.
    let page = c
        .get(format!("{}/tester/", admin(&r)))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        !page.contains("<script>") && !page.contains("<style>"),
        "{page}"
    );
    for asset in ["style.css", "tester.css", "tester.js", "import.js"] {
        let res = c
            .get(format!("{}/static/{asset}", admin(&r)))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 200, "{asset}");
    }
    r.shutdown().await.unwrap();
}
