//! The two listeners under attack: DNS rebinding, CSRF on the API and the
//! forms, missing or wrong operator credentials, an admin listener open to
//! the network without authentication, over-large bodies, idle
//! connections, and lists that would grow without bound.

use std::time::Duration;

use serde_json::{json, Value};
use smsflow::config::{self, KafkaMode};
use smsflow::topology::{Running, Topology};

mod common;

/// Admin on loopback, a message log, a tester, a webhook backend.
const PIPELINE: &str = r#"
kafka: embedded
http:
  listen: 127.0.0.1:0
  public_url: http://sms.example.org
  EXTRA
backends:
  - type: tester
  - type: http
    name: gw
    url: http://127.0.0.1:9/send
    receive: {insecure: true}
messagelog: {}
routes:
  - app: echo
apps:
  - type: echo
"#;

fn pipeline(extra: &str, env: &[(&str, &str)]) -> Result<config::Pipeline, String> {
    let text = PIPELINE.replace("  EXTRA\n", extra);
    let env = |k: &str| {
        env.iter()
            .find(|(name, _)| *name == k)
            .map(|(_, v)| v.to_string())
    };
    smsflow::topology::load_str(&text, &env).map_err(|errors| {
        errors
            .iter()
            .map(|e| e.to_string())
            .collect::<Vec<_>>()
            .join("\n")
    })
}

async fn start(extra: &str, env: &[(&str, &str)]) -> Running {
    let mut p = pipeline(extra, env).unwrap();
    p.kafka = config::Kafka::with_mode(KafkaMode::Embedded);
    Topology::new(p).unwrap().start(None, true).await.unwrap()
}

/// The status of a GET of `url`.
async fn get_status(c: &reqwest::Client, url: String) -> reqwest::StatusCode {
    c.get(url).send().await.unwrap().status()
}

fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

fn admin(r: &Running) -> String {
    format!("http://{}", r.admin_addr().unwrap())
}

fn public(r: &Running) -> String {
    format!("http://{}", r.http_addr().unwrap())
}

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

/// A cheap argon2id hash, for tests only (the default parameters are slow
/// in a debug build).
fn cheap_hash(password: &str) -> String {
    use argon2::password_hash::{PasswordHasher, SaltString};
    let params = argon2::Params::new(64, 1, 1, None).unwrap();
    argon2::Argon2::new(argon2::Algorithm::Argon2id, argon2::Version::V0x13, params)
        .hash_password(
            password.as_bytes(),
            &SaltString::from_b64("c21zZmxvd3NhbHQ").unwrap(),
        )
        .unwrap()
        .to_string()
}

const AUTH: &str = "  admin:\n    tokens: [\"${ADMIN_TOKEN}\"]\n    users:\n      - {name: ops, password_hash: \"${OPS_HASH}\"}\n";
const TOKEN: &str = "a-long-operator-token-1234";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn operators_authenticate_with_a_token_or_a_password() {
    let hash = cheap_hash("correct horse");
    let r = start(AUTH, &[("ADMIN_TOKEN", TOKEN), ("OPS_HASH", &hash)]).await;
    let c = client();
    let url = format!("{}/api/log", admin(&r));
    // Nothing, a wrong token, a wrong password, an unknown user: 401.
    let res = c.get(&url).send().await.unwrap();
    assert_eq!(res.status(), 401);
    let challenges: Vec<&str> = res
        .headers()
        .get_all("www-authenticate")
        .iter()
        .map(|v| v.to_str().unwrap())
        .collect();
    assert!(
        challenges.iter().any(|c| c.starts_with("Bearer")),
        "{challenges:?}"
    );
    assert!(
        challenges.iter().any(|c| c.starts_with("Basic")),
        "{challenges:?}"
    );
    let refused = [
        c.get(&url).bearer_auth("a-long-operator-token-1235"),
        c.get(&url).bearer_auth(&TOKEN[..TOKEN.len() - 1]),
        c.get(&url).header("authorization", "Token whatever"),
        c.get(&url).basic_auth("ops", Some("wrong horse")),
        c.get(&url).basic_auth("root", Some("correct horse")),
        c.get(&url).header("authorization", "Basic !!!"),
    ];
    for req in refused {
        let res = req.send().await.unwrap();
        assert_eq!(res.status(), 401);
        assert!(res.headers().contains_key("x-frame-options"));
    }
    // The right ones.
    assert_eq!(
        c.get(&url)
            .bearer_auth(TOKEN)
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    for _ in 0..2 {
        let res = c
            .get(&url)
            .basic_auth("ops", Some("correct horse"))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 200);
    }
    // Probes need no credentials; the public listener none either.
    assert_eq!(get_status(&c, format!("{}/healthz", admin(&r))).await, 200);
    assert_eq!(get_status(&c, format!("{}/readyz", admin(&r))).await, 200);
    assert_eq!(get_status(&c, format!("{}/healthz", public(&r))).await, 200);
    // The CLI's client sends the token.
    let mut p = pipeline(AUTH, &[("ADMIN_TOKEN", TOKEN), ("OPS_HASH", &hash)]).unwrap();
    p.http.admin.listen = r.admin_addr();
    let api = smsflow::cli::client::Api::new(&p, None).with_token(Some(TOKEN.into()));
    assert!(api.get("/api/log").await.is_ok());
    let anonymous = smsflow::cli::client::Api::new(&p, None).with_token(Some("nope".into()));
    let err = anonymous.get("/api/log").await.unwrap_err().to_string();
    assert!(err.contains("401"), "{err}");
    r.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_open_admin_listener_without_authentication_does_not_start() {
    let open = "  admin:\n    listen: 0.0.0.0:0\n";
    let err = pipeline(open, &[]).unwrap_err();
    assert!(
        err.contains("not on loopback and has no authentication"),
        "{err}"
    );
    // With a token it validates, but the tester must be allowed explicitly.
    let with_token = "  admin:\n    listen: 0.0.0.0:0\n    tokens: [\"${ADMIN_TOKEN}\"]\n";
    let err = pipeline(with_token, &[("ADMIN_TOKEN", TOKEN)]).unwrap_err();
    assert!(err.contains("allow_remote_tester"), "{err}");
    assert!(!err.contains("not on loopback and has no"), "{err}");
    let allowed = format!("{with_token}    allow_remote_tester: true\n");
    assert!(pipeline(&allowed, &[("ADMIN_TOKEN", TOKEN)]).is_ok());
    // Short tokens and hashes that are not argon2 are refused, unquoted.
    let weak = "  admin:\n    tokens: [\"${ADMIN_TOKEN}\"]\n    users:\n      - {name: ops, password_hash: \"${OPS_HASH}\"}\n";
    let err = pipeline(
        weak,
        &[("ADMIN_TOKEN", "hunter2"), ("OPS_HASH", "plaintext-secret")],
    )
    .unwrap_err();
    assert!(err.contains("at least 16 characters"), "{err}");
    assert!(err.contains("not an argon2 hash"), "{err}");
    assert!(
        !err.contains("hunter2") && !err.contains("plaintext-secret"),
        "{err}"
    );
    // A pipeline built in code is refused at start too.
    let mut p = pipeline("", &[]).unwrap();
    p.http.admin.listen = Some("0.0.0.0:0".parse().unwrap());
    let err = Topology::new(p)
        .unwrap()
        .start(None, true)
        .await
        .err()
        .unwrap();
    assert!(err.to_string().contains("not on loopback"), "{err}");
    // And so is its tester, with credentials but without allow_remote_tester.
    let mut p = pipeline(
        AUTH,
        &[("ADMIN_TOKEN", TOKEN), ("OPS_HASH", &cheap_hash("x"))],
    )
    .unwrap();
    p.http.admin.listen = Some("0.0.0.0:0".parse().unwrap());
    let err = Topology::new(p)
        .unwrap()
        .start(None, true)
        .await
        .err()
        .unwrap();
    assert!(err.to_string().contains("allow_remote_tester"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_over_large_body_is_413_naming_the_limit() {
    let r = start("  limits:\n    max_body_bytes: 4096\n", &[]).await;
    let c = client();
    let big = format!(r#"{{"name": "{}"}}"#, "a".repeat(5000));
    for url in [
        format!("{}/api/contacts", admin(&r)),
        format!("{}/backend/gw/", public(&r)),
    ] {
        let res = c
            .post(&url)
            .header("content-type", "application/json")
            .body(big.clone())
            .send()
            .await
            .unwrap();
        let (status, body) = common::json_answer(res).await;
        assert_eq!(status, 413, "{url}: {body}");
        assert!(
            body["error"]
                .as_str()
                .unwrap()
                .contains("max_body_bytes (4096 bytes)"),
            "{body}"
        );
        // Without a length up front (chunked), cut off at the limit all the same.
        let status = chunked_post(&url, 10, 1000).await;
        assert!(
            status.starts_with("HTTP/1.1 413"),
            "{url} chunked: {status}"
        );
    }
    // Under the limit: answered as before.
    let res = c
        .post(format!("{}/api/contacts", admin(&r)))
        .header("content-type", "application/json")
        .body(r#"{"name": "Small"}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 201);
    r.shutdown().await.unwrap();
}

/// POST `chunks` chunks of `size` bytes with no Content-Length: the answer's status line.
async fn chunked_post(url: &str, chunks: usize, size: usize) -> String {
    use tokio::io::{AsyncBufReadExt, AsyncWriteExt};
    let rest = url.strip_prefix("http://").unwrap();
    let (authority, path) = rest.split_at(rest.find('/').unwrap());
    let mut s = tokio::net::TcpStream::connect(authority).await.unwrap();
    let head = format!(
        "POST {path} HTTP/1.1\r\nHost: {authority}\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n"
    );
    s.write_all(head.as_bytes()).await.unwrap();
    for _ in 0..chunks {
        let chunk = format!("{size:x}\r\n{}\r\n", "a".repeat(size));
        // The server may answer and close before the last chunk.
        if s.write_all(chunk.as_bytes()).await.is_err() {
            break;
        }
    }
    let _ = s.write_all(b"0\r\n\r\n").await;
    let mut line = String::new();
    tokio::io::BufReader::new(s)
        .read_line(&mut line)
        .await
        .unwrap();
    line
}

/// Let this process open `n` files (the test holds both ends of every connection).
fn allow_files(n: u64) {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit/setrlimit only read and write the struct given.
    unsafe {
        assert_eq!(libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit), 0);
        if limit.rlim_cur < n {
            limit.rlim_cur = n.min(limit.rlim_max);
            assert_eq!(libc::setrlimit(libc::RLIMIT_NOFILE, &limit), 0);
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn healthz_answers_while_2000_idle_connections_are_open() {
    allow_files(8192);
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    // 1,024 connections per listener (the default), and idle ones never
    // timed out here: only closing idle ones makes room.
    let r = start("  limits:\n    header_read_timeout: 10m\n", &[]).await;
    let addr = r.http_addr().unwrap();
    let mut idle = Vec::new();
    let opened = tokio::time::timeout(Duration::from_secs(60), async {
        for i in 0..2000 {
            let mut c = tokio::net::TcpStream::connect(addr).await.unwrap();
            // The first 1,100 ask once and keep the connection open, idle;
            // the others never say anything.
            if i < 1100 {
                c.write_all(b"GET /healthz HTTP/1.1\r\nHost: localhost\r\n\r\n")
                    .await
                    .unwrap();
                let mut answer = Vec::new();
                while !answer.ends_with(b"\r\n\r\nok") {
                    let mut buf = [0; 512];
                    let n = c.read(&mut buf).await.unwrap();
                    assert!(n > 0, "closed before the answer: {answer:?}");
                    answer.extend_from_slice(&buf[..n]);
                }
            }
            idle.push(c);
        }
    })
    .await;
    assert!(opened.is_ok(), "the listener stopped accepting connections");
    // Before: /healthz hung once file descriptors ran out.
    let res = tokio::time::timeout(
        Duration::from_secs(1),
        client().get(format!("http://{addr}/healthz")).send(),
    )
    .await
    .expect("/healthz answered within 1 s")
    .unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(res.text().await.unwrap(), "ok");
    drop(idle);
    r.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_too_slow_with_its_headers_is_disconnected() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let r = start("  limits:\n    header_read_timeout: 200ms\n", &[]).await;
    let mut slow = tokio::net::TcpStream::connect(r.http_addr().unwrap())
        .await
        .unwrap();
    slow.write_all(b"GET /healthz HTTP/1.1\r\nHost: loc")
        .await
        .unwrap();
    let mut rest = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(20), slow.read_to_end(&mut rest)).await;
    assert!(read.is_ok(), "the connection is still open");
    assert!(
        !String::from_utf8_lossy(&rest).contains("200 OK"),
        "{}",
        String::from_utf8_lossy(&rest)
    );
    r.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lists_are_paginated_and_capped() {
    let r = start("", &[]).await;
    let c = client();
    let base = admin(&r);
    let csv: String = (0..120)
        .map(|i| format!("Person {i:03}, message_tester, +1555010{i:04}\n"))
        .collect();
    let res = c
        .post(format!("{base}/api/contacts/import"))
        .header("content-type", "text/csv")
        .body(csv)
        .send()
        .await
        .unwrap();
    let (status, body) = common::json_answer(res).await;
    assert_eq!((status, &body["added"]), (200, &json!(120)), "{body}");
    let get = |path: String| {
        let c = c.clone();
        async move { common::json_answer(c.get(path).send().await.unwrap()).await }
    };
    let (_, first) = get(format!("{base}/api/contacts")).await;
    assert_eq!(first["contacts"].as_array().unwrap().len(), 50);
    assert_eq!(
        (first["total"].as_u64(), first["pages"].as_u64()),
        (Some(120), Some(3))
    );
    let (_, last) = get(format!("{base}/api/contacts?page=3&per_page=50")).await;
    assert_eq!(last["contacts"].as_array().unwrap().len(), 20);
    let (_, all) = get(format!("{base}/api/contacts?per_page=200")).await;
    assert_eq!(all["contacts"].as_array().unwrap().len(), 120);
    for path in [
        "/api/contacts?per_page=201",
        "/api/log?per_page=500",
        "/api/contacts?page=0",
        "/api/optouts?per_page=1000",
    ] {
        let (status, body) = get(format!("{base}{path}")).await;
        assert_eq!(status, 400, "{path}: {body}");
    }
    let (_, body) = get(format!("{base}/api/log?per_page=500")).await;
    assert!(
        body["error"].as_str().unwrap().contains("limit of 200"),
        "{body}"
    );
    assert_eq!(get(format!("{base}/api/log?per_page=200")).await.0, 200);

    // The messaging page: one page of checkboxes, and a search.
    let page = |q: &str| {
        let c = c.clone();
        let url = format!("{base}/messaging/?{q}");
        async move { c.get(url).send().await.unwrap().text().await.unwrap() }
    };
    let boxes = |html: &str| html.matches("name=\"contacts\"").count();
    let first = page("").await;
    assert_eq!(
        boxes(&first),
        smsflow::state::messagelog::PER_PAGE,
        "{first}"
    );
    assert!(first.contains("page=10"), "links to the last page");
    let found = page("q=Person+007").await;
    assert_eq!(boxes(&found), 1);
    assert!(found.contains("Person 007"));
    r.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_half_sent_request_does_not_hold_up_shutdown() {
    use tokio::io::AsyncWriteExt;
    let mut p = pipeline("  limits:\n    header_read_timeout: 10m\n", &[]).unwrap();
    p.kafka = config::Kafka::with_mode(KafkaMode::Embedded);
    p.shutdown_timeout = Duration::from_secs(3);
    let r = Topology::new(p).unwrap().start(None, true).await.unwrap();
    let mut slow = tokio::net::TcpStream::connect(r.admin_addr().unwrap())
        .await
        .unwrap();
    slow.write_all(b"GET /healthz HTTP/1.1\r\nHost: loc")
        .await
        .unwrap();
    // Served: the connection is accepted and reading its headers.
    let res = client()
        .get(format!("{}/healthz", admin(&r)))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    // Within shutdown_timeout, every stage drained.
    r.shutdown().await.unwrap();
    drop(slow);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_body_that_never_arrives_is_timed_out() {
    use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt};
    let r = start("  limits:\n    request_timeout: 300ms\n", &[]).await;
    for addr in [r.http_addr().unwrap(), r.admin_addr().unwrap()] {
        let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
        // 100 bytes announced, 10 sent, then nothing.
        s.write_all(
            b"POST /backend/gw/ HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{\"a\": \"b\"",
        )
        .await
        .unwrap();
        let mut line = String::new();
        let mut reader = tokio::io::BufReader::new(s);
        tokio::time::timeout(Duration::from_secs(20), reader.read_line(&mut line))
            .await
            .expect("an answer")
            .unwrap();
        assert!(line.starts_with("HTTP/1.1 408"), "{addr}: {line}");
        // The connection is closed after the answer: its body is the rest.
        let mut rest = String::new();
        tokio::time::timeout(Duration::from_secs(20), reader.read_to_string(&mut rest))
            .await
            .expect("the connection closed")
            .unwrap();
        assert!(
            rest.contains("http.limits.request_timeout (300ms)"),
            "{rest}"
        );
    }
    r.shutdown().await.unwrap();
}
