//! Bounded resources: body sizes, idle and slow connections, list sizes, shutdown.

use super::*;

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

// The clock is paused (tokio's test clock): the runtime jumps to the
// header_read_timeout as soon as every task waits, instead of sleeping through it.
#[tokio::test(start_paused = true)]
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

// The clock is paused (tokio's test clock): the runtime jumps to the
// request_timeout as soon as every task waits, instead of sleeping through it.
#[tokio::test(start_paused = true)]
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
