//! Host checks (DNS rebinding) and what each listener serves.

use super::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_foreign_host_is_refused_on_both_listeners() {
    let r = start("", &[]).await;
    let c = client();
    // Before: 200 with the whole log.
    let res = c
        .get(format!("{}/api/log", admin(&r)))
        .header("host", "evil.example")
        .send()
        .await
        .unwrap();
    let (status, body) = common::json_answer(res).await;
    assert_eq!(status, 421, "{body}");
    assert!(
        body["error"].as_str().unwrap().contains("http.admin.hosts"),
        "{body}"
    );
    for host in ["localhost", "127.0.0.1", "LOCALHOST:8081"] {
        let res = c
            .get(format!("{}/api/log", admin(&r)))
            .header("host", host)
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 200, "{host}");
    }
    // The public listener answers its own name (public_url's) and refuses others.
    for (host, want) in [
        ("evil.example", 421),
        ("sms.example.org", 200),
        ("127.0.0.1", 200),
    ] {
        let res = c
            .get(format!("{}/healthz", public(&r)))
            .header("host", host)
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), want, "{host}");
    }
    r.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn configured_hosts_are_answered() {
    let r = start(
        "  hosts: [hooks.example.net]\n  admin:\n    hosts: [ops.example.net]\n",
        &[],
    )
    .await;
    let c = client();
    for (base, host, want) in [
        (admin(&r), "ops.example.net", 200),
        (admin(&r), "hooks.example.net", 421),
        (public(&r), "hooks.example.net", 200),
        (public(&r), "ops.example.net", 421),
    ] {
        let res = c
            .get(format!("{base}/healthz"))
            .header("host", host)
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), want, "{base} {host}");
    }
    r.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn operator_pages_and_api_are_only_on_the_admin_listener() {
    let r = start("", &[]).await;
    let c = client();
    for path in [
        "/api/log",
        "/contacts/",
        "/tester/",
        "/metrics",
        "/api/tester/conversations/+1555",
    ] {
        let res = c.get(format!("{}{path}", public(&r))).send().await.unwrap();
        assert_eq!(res.status(), 404, "{path} on the public listener");
        let res = c.get(format!("{}{path}", admin(&r))).send().await.unwrap();
        assert_eq!(res.status(), 200, "{path} on the admin listener");
    }
    for base in [public(&r), admin(&r)] {
        let res = c.get(format!("{base}/healthz")).send().await.unwrap();
        assert_eq!(res.status(), 200, "{base}");
    }
    // The webhook is public, and not on the admin listener.
    let hook = "/backend/gw/?identity=%2B15550100&text=hi";
    assert_eq!(get_status(&c, format!("{}{hook}", public(&r))).await, 200);
    assert_eq!(get_status(&c, format!("{}{hook}", admin(&r))).await, 404);
    r.shutdown().await.unwrap();
}
