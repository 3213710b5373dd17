//! Operator credentials, and an open admin listener refused at start.

use super::*;

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
