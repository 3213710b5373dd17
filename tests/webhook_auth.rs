//! Validation of webhook credentials: every backend whose webhooks anyone
//! could reach proves who calls them, or says `receive.insecure: true` on a
//! loopback listener; secrets are long, URL-safe, and never printed.

use smsflow::config::ConfigError;
use smsflow::topology::load_str;

/// A pipeline with `backend` (YAML lines under `backends:`) and `listen`.
fn pipeline(listen: &str, backend: &str) -> String {
    format!(
        "http:\n  listen: {listen}\nbackends:\n{backend}routes:\n  - app: echo\napps:\n  - type: echo\n"
    )
}

fn errors(yaml: &str) -> Vec<ConfigError> {
    match load_str(yaml, &|_| None) {
        Ok(_) => Vec::new(),
        Err(e) => e,
    }
}

/// All error texts of `yaml`, one per line.
fn text(yaml: &str) -> String {
    errors(yaml)
        .iter()
        .map(|e| e.to_string())
        .collect::<Vec<_>>()
        .join("\n")
}

const LOOPBACK: &str = "127.0.0.1:8080";
const SECRET: &str = "a-long-random-secret-0123456789";

/// Each webhook backend, as `(its YAML without receive:, the key its error suggests)`.
fn webhook_backends() -> Vec<(&'static str, &'static str)> {
    vec![
        (
            "  - type: kannel\n    name: k\n    username: u\n    password: p\n",
            "receive.secret",
        ),
        (
            "  - type: http\n    name: gw\n    url: http://127.0.0.1:9/send\n",
            "receive.secret",
        ),
        ("  - type: discard\n    name: load\n", "receive.secret"),
        (
            "  - type: vumi\n    name: v\n    sendsms_url: http://127.0.0.1:9/send\n",
            "receive.username and receive.password",
        ),
        (
            "  - type: clickatell\n    name: c\n    api_key: key\n",
            "receive.secret",
        ),
    ]
}

#[test]
fn a_webhook_backend_without_credentials_fails_naming_it_and_the_key_to_add() {
    for (backend, key) in webhook_backends() {
        let name = backend
            .lines()
            .find_map(|l| l.trim().strip_prefix("name: "))
            .unwrap();
        let e = errors(&pipeline(LOOPBACK, backend));
        assert_eq!(e.len(), 1, "{backend}: {e:#?}");
        let msg = e[0].to_string();
        assert!(msg.contains(&format!("backend {name:?}")), "{msg}");
        assert!(msg.contains(key), "{msg}");
        assert!(msg.contains("receive.insecure: true"), "{msg}");
        assert_eq!(e[0].path.to_string(), "backends[0]");

        // With a secret, or insecure on loopback, it validates.
        let with =
            |receive: &str| pipeline(LOOPBACK, &format!("{backend}    receive: {receive}\n"));
        assert_eq!(
            text(&with(&format!("{{secret: {SECRET}}}"))),
            "",
            "{backend}"
        );
        assert_eq!(
            text(&with("{username: u, password: a-password}")),
            "",
            "{backend}"
        );
        assert_eq!(text(&with("{insecure: true}")), "", "{backend}");
    }
}

#[test]
fn insecure_is_only_for_a_loopback_listener() {
    for (backend, _) in webhook_backends() {
        let yaml = pipeline(
            "0.0.0.0:8080",
            &format!("{backend}    receive: {{insecure: true}}\n"),
        );
        let e = errors(&yaml);
        assert_eq!(e.len(), 1, "{e:#?}");
        assert!(
            e[0].to_string().contains("reachable from other machines"),
            "{}",
            e[0]
        );
        assert!(
            e[0].path.to_string().ends_with("receive.insecure"),
            "{}",
            e[0].path
        );
        // With a secret instead, any listener will do.
        let yaml = pipeline(
            "0.0.0.0:8080",
            &format!("{backend}    receive: {{secret: {SECRET}}}\n"),
        );
        assert_eq!(text(&yaml), "");
    }
}

#[test]
fn secrets_are_long_url_safe_and_never_printed() {
    let kannel = "  - type: kannel\n    username: u\n    password: p\n";
    let with = |receive: &str| pipeline(LOOPBACK, &format!("{kannel}    receive: {receive}\n"));
    for (secret, why) in [
        ("short-secret", "shorter than 16"),
        ("a secret with spaces in it", "letters, digits"),
        ("a-long-secret-with-a-%-sign", "letters, digits"),
        ("a-long-secret-with-an-&-and", "letters, digits"),
        ("", "shorter than 16"),
    ] {
        let out = text(&with(&format!("{{secret: '{secret}'}}")));
        assert!(out.contains(why), "{secret}: {out}");
        assert!(out.contains("receive.secret"), "{out}");
        if !secret.is_empty() {
            assert!(!out.contains(secret), "the value is printed: {out}");
        }
    }
    // Basic auth needs both halves; the password is not printed either.
    let out = text(&with("{password: hunter2-hunter2-hunter2}"));
    assert!(
        out.contains("both receive.username and receive.password"),
        "{out}"
    );
    assert!(!out.contains("hunter2"), "{out}");
    // Credentials and insecure together are a contradiction.
    let out = text(&with(&format!("{{secret: {SECRET}, insecure: true}}")));
    assert!(out.contains("remove insecure, or the credentials"), "{out}");
    assert!(!out.contains(SECRET), "{out}");
}

#[test]
fn limits_must_let_something_in() {
    let yaml = pipeline(
        LOOPBACK,
        "  - type: discard\n    name: d\n    receive: {insecure: true, max_text: 0, max_id: 0, max_identity: 0, max_field: 0}\n",
    );
    let e = errors(&yaml);
    let paths: Vec<String> = e.iter().map(|e| e.path.to_string()).collect();
    assert_eq!(
        paths,
        [
            "backends[0].receive.max_text",
            "backends[0].receive.max_id",
            "backends[0].receive.max_identity",
            "backends[0].receive.max_field"
        ],
        "{e:#?}"
    );
}

#[test]
fn twilio_keeps_its_signature_and_takes_no_secret() {
    let twilio = "  - type: twilio\n    account_sid: AC1\n    auth_token: an-auth-token\n    from: '+15005550006'\n";
    assert_eq!(text(&pipeline(LOOPBACK, twilio)), "");
    let out = text(&pipeline(
        LOOPBACK,
        &format!("{twilio}    receive: {{secret: {SECRET}}}\n"),
    ));
    assert!(out.contains("X-Twilio-Signature"), "{out}");
    assert!(!out.contains(SECRET), "{out}");
    // Turning the signature off is insecure, and must say so.
    let off = format!("{twilio}    validate: false\n");
    let out = text(&pipeline(LOOPBACK, &off));
    assert!(out.contains("receive.insecure: true"), "{out}");
    let said = format!("{off}    receive: {{insecure: true}}\n");
    assert_eq!(text(&pipeline(LOOPBACK, &said)), "");
    let out = text(&pipeline("0.0.0.0:8080", &said));
    assert!(out.contains("reachable from other machines"), "{out}");
}
