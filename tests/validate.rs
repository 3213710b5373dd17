//! `smsflow validate`: one test for each kind of error it reports, each
//! checked for its line, column and message.

use smsflow::config::ConfigError;
use smsflow::topology::load_str;

const GOOD: &str = "\
backends:
  - type: tester
routes:
  - app: echo
apps:
  - type: echo
  - type: default
";

fn errors(yaml: &str) -> Vec<ConfigError> {
    let env = |k: &str| (k == "SET").then(|| "value".to_string());
    load_str(yaml, &env).expect_err("the pipeline must be rejected")
}

fn only(yaml: &str) -> ConfigError {
    let mut e = errors(yaml);
    assert_eq!(e.len(), 1, "expected one error, got {e:#?}");
    e.remove(0)
}

fn at(e: &ConfigError, line: u32, column: u32, words: &[&str]) {
    assert_eq!((e.line, e.column), (line, column), "{e}");
    for w in words {
        assert!(e.message.contains(w), "{w:?} not in {e}");
    }
}

#[test]
fn a_good_pipeline_passes() {
    let p = load_str(GOOD, &|_| None).unwrap();
    assert_eq!(p.default_app.as_deref(), Some("default"));
    assert_eq!(p.project, "RapidSMS");
}

#[test]
fn yaml_syntax() {
    at(
        &only("backends: [1, 2\nroutes: x\n"),
        2,
        7,
        &["invalid YAML"],
    );
}

#[test]
fn unknown_section_and_unknown_key() {
    let e = only(&format!("{GOOD}bogus: 1\n"));
    at(&e, 8, 1, &["unknown section \"bogus\"", "expected one of"]);
    let e = only(&GOOD.replace("  - app: echo", "  - app: echo\n    kewyord: x"));
    at(&e, 5, 5, &["unknown field `kewyord`", "`keyword`"]);
    assert_eq!(e.path.to_string(), "routes[0].kewyord");
}

#[test]
fn wrong_type_names_the_value() {
    let e = only(&format!("{GOOD}topics:\n  partitions: many\n"));
    at(&e, 9, 15, &["\"many\"", "i32"]);
}

#[test]
fn out_of_range_value() {
    at(
        &only(&format!("{GOOD}topics:\n  partitions: 0\n")),
        9,
        15,
        &["0 partitions", "at least 1"],
    );
}

#[test]
fn unknown_backend_type() {
    let e = only(&GOOD.replace("type: tester", "type: kanel"));
    at(&e, 2, 11, &["unknown variant `kanel`", "`tester`"]);
}

#[test]
fn unset_variable_without_default() {
    let e = only(&format!("project: ${{UNSET}}\n{GOOD}"));
    at(&e, 1, 10, &["UNSET is not set", "${UNSET:-value}"]);
    let p = load_str(&format!("project: ${{SET}} ${{UNSET:-d}}\n{GOOD}"), &|k| {
        (k == "SET").then(|| "v".into())
    })
    .unwrap();
    assert_eq!(p.project, "v d");
}

#[test]
fn unknown_app_in_a_route() {
    let e = only(&GOOD.replace("  - app: echo", "  - app: ech"));
    at(&e, 4, 10, &["unknown app \"ech\"", "echo, default"]);
}

#[test]
fn unknown_default_app_and_tap() {
    let e = errors(&format!("{GOOD}default_app: nope\ntaps: [ghost]\n"));
    assert_eq!(e.len(), 2, "{e:#?}");
    at(&e[0], 8, 14, &["unknown app \"nope\""]);
    at(&e[1], 9, 8, &["unknown app \"ghost\""]);
}

#[test]
fn duplicate_stage_names() {
    let e = only(&GOOD.replace("  - type: echo\n", "  - type: echo\n  - type: echo\n"));
    at(&e, 7, 5, &["duplicate app name \"echo\"", "apps[0]"]);
    let e = only(&GOOD.replace("  - type: tester\n", "  - type: tester\n  - type: tester\n"));
    at(&e, 3, 5, &["duplicate backend name \"message_tester\""]);
}

#[test]
fn invalid_regex() {
    let e = only(&GOOD.replace(
        "  - app: echo",
        "  - app: echo\n    pattern: 'price (?P<item'",
    ));
    at(&e, 5, 14, &["not a valid regex"]);
    let e = only(&GOOD.replace("  - app: echo", "  - app: echo\n    keyword: '(join'"));
    at(&e, 5, 14, &["not a valid regex"]);
}

#[test]
fn shadowed_routes() {
    // A catch-all before another route.
    let e = only(&GOOD.replace("  - app: echo", "  - app: echo\n    backend: message_tester\n  - app: echo\n    backend: message_tester\n    keyword: hi"));
    at(&e, 6, 5, &["can never match", "route 0"]);
    // The same keyword twice, in another case and as part of an alternation.
    let e = only(&GOOD.replace(
        "  - app: echo",
        "  - app: echo\n    keyword: 'join|reg'\n  - app: default\n    keyword: JOIN",
    ));
    at(&e, 6, 5, &["can never match"]);
    // An exact text the keyword route already takes.
    let e = only(&GOOD.replace(
        "  - app: echo",
        "  - app: echo\n  - app: default\n    exact: echo now",
    ));
    at(&e, 5, 5, &["can never match"]);
    // A narrower prefix after a wider one is shadowed; the reverse is not.
    assert!(load_str(
        &GOOD.replace(
            "  - app: echo",
            "  - app: echo\n    prefix: '+2567'\n  - app: default\n    prefix: '+256'"
        ),
        &|_| None
    )
    .is_ok());
}

#[test]
fn bad_duration() {
    let e = only(&format!("{GOOD}shutdown_timeout: 5 parsecs\n"));
    at(&e, 8, 19, &["\"5 parsecs\" is not a duration", "30s"]);
}

#[test]
fn missing_backend_for_the_reply_path() {
    let e = only(&GOOD.replace("  - app: echo", "  - app: echo\n    backend: twilio"));
    at(&e, 5, 14, &["unknown backend \"twilio\"", "message_tester"]);
    let e = only("backends: []\napps:\n  - type: default\n");
    at(&e, 1, 11, &["no backend", "replies nowhere to go"]);
}

#[test]
fn route_without_condition_to_an_app_without_trigger() {
    let e = only(&GOOD.replace("  - app: echo", "  - app: default"));
    at(&e, 4, 5, &["no condition", "default app brings no trigger"]);
}

#[test]
fn template_with_an_unknown_capture() {
    let yaml = format!("{GOOD}  - name: price\n    type: autoresponder\n    pattern: 'price (?P<item>\\w+)'\n    reply: 'Price of {{itme}}'\n");
    let e = only(&yaml);
    at(&e, 11, 12, &["{itme}", "{item}"]);
}

#[test]
fn kafka_without_brokers() {
    let e = only(&format!("{GOOD}kafka:\n  mode: kafka\n"));
    at(&e, 9, 3, &["needs `brokers`"]);
    at(
        &only(&format!("{GOOD}kafka: kafak\n")),
        8,
        8,
        &["unknown bus \"kafak\""],
    );
}

#[test]
fn a_consumer_setting_in_the_shared_map_names_its_new_place() {
    let yaml = format!(
        "{GOOD}kafka:\n  mode: kafka\n  brokers: b:9092\n  config:\n    consumer.session.timeout.ms: '6000'\n"
    );
    at(
        &only(&yaml),
        12,
        34,
        &["kafka.consumer", "`session.timeout.ms`"],
    );
}

#[test]
fn bad_topic_name() {
    at(
        &only(&format!("{GOOD}topics:\n  inbound: 'sms inbound'\n")),
        9,
        12,
        &["' '", "Kafka allows only"],
    );
}

#[test]
fn every_error_is_reported_at_once_in_file_order() {
    let yaml = "\
kafka:
  mode: kafka
backends:
  - type: tester
  - type: kanel
routes:
  - app: nosuch
  - app: echo
    kewyord: x
apps:
  - type: echo
  - type: echo
shutdown_timeout: soon
";
    let e = errors(yaml);
    let lines: Vec<u32> = e.iter().map(|e| e.line).collect();
    assert_eq!(lines, vec![2, 5, 7, 9, 12, 13], "{e:#?}");
}

#[test]
fn http_backend_needs_a_url_and_tries() {
    let yaml = GOOD.replace(
        "  - type: tester\n",
        "  - type: tester\n  - type: http\n    name: gw\n    url: 'ftp://x'\n    send:\n      attempts: 0\n      rate: -1\n    receive: {insecure: true}\n",
    );
    let e = errors(&yaml);
    assert_eq!(e.len(), 3, "{e:#?}");
    at(&e[0], 5, 10, &["\"ftp://x\" is a ftp URL", "http://"]);
    at(&e[1], 7, 17, &["0 attempts"]);
    at(&e[2], 8, 13, &["rate -1", "above 0"]);
    let e = only(&GOOD.replace(
        "  - type: tester\n",
        "  - type: tester\n  - type: http\n    name: gw\n    url: 'not a url'\n    receive: {insecure: true}\n",
    ));
    at(&e, 5, 10, &["is not a URL"]);
    let e = only(&GOOD.replace(
        "  - type: tester\n",
        "  - type: tester\n  - type: http\n    name: gw\n    url: 'https://gw/send?to={identity}&x={nope}'\n    receive: {insecure: true}\n",
    ));
    at(&e, 5, 10, &["{nope}", "{identity}"]);
}

#[test]
fn provider_backends_are_checked() {
    let e = errors(&GOOD.replace(
        "  - type: tester\n",
        "  - type: tester\n  - type: twilio\n    account_sid: AC1\n    auth_token: t\n    receive: {country: XX}\n  - type: kannel\n    username: u\n    password: p\n    dlr_mask: 99\n    receive: {secret: kannel-secret-0123456789}\n  - type: vumi\n    sendsms_url: https://v/\n    sendsms_user: u\n    receive: {insecure: true}\n",
    ));
    assert_eq!(e.len(), 4, "{e:#?}");
    at(
        &e[0],
        3,
        5,
        &["exactly one of `from`", "messaging_service_sid"],
    );
    at(&e[1], 6, 24, &["\"XX\" is not a country code"]);
    at(&e[2], 10, 15, &["dlr_mask 99"]);
    at(&e[3], 12, 5, &["both sendsms_user and sendsms_pass"]);
}

#[test]
fn chain_names_apps_that_exist() {
    let e = only(&format!("{GOOD}chain: [echo, ehco]\n"));
    at(&e, 8, 15, &["no app \"ehco\" to chain", "echo, default"]);
    assert_eq!(e.path.to_string(), "chain[1]");
    let e = only(&format!("{GOOD}chain: 3\n"));
    at(&e, 8, 8, &["expected true, false or a list of app names"]);
    let p = load_str(&format!("{GOOD}chain: true\n"), &|_| None).unwrap();
    assert!(p.chain.includes("echo"));
}

#[test]
fn languages_polls_and_optout() {
    let yaml = format!(
        "{GOOD}languages:
  default: de
  available: [{{code: en, name: English}}, {{code: 'e n', name: ''}}]
  texts:
    fr: {{echo.help: x}}
    en: {{help: x, echo.help: 'a {{b'}}
  files: [no/such/file.yaml]
optout:
  stop: [STOP, stop it]
  help_reply: '{{project}}: {{who}}'
"
    )
    .replace(
        "  - type: default\n",
        "  - type: default\n  - {name: lunch, type: poll, question: 'Your {colour}?', choices: [pizza, pizza, two words]}\n",
    );
    let e = errors(&yaml);
    let paths: Vec<String> = e.iter().map(|e| e.path.to_string()).collect();
    for (path, words) in [
        ("apps[2].question", "{colour}"),
        ("apps[2].choices[1]", "listed twice"),
        ("apps[2].choices[2]", "one word"),
        ("languages.default", "\"de\" is not among"),
        ("languages.available[1].code", "not a language code"),
        ("languages.available[1].name", "needs a name"),
        ("languages.texts.fr", "not among `languages.available`"),
        ("languages.texts.en.help", "names no app"),
        ("languages.texts.en.echo.help", "unclosed"),
        ("languages.files[0]", "cannot read"),
        ("optout.stop[1]", "not a keyword"),
        ("optout.help_reply", "{who}"),
    ] {
        let found = e.iter().find(|e| e.path.to_string() == path);
        let found = found.unwrap_or_else(|| panic!("no error at {path}: {paths:?}"));
        assert!(found.message.contains(words), "{found}");
        assert!(found.line > 0, "{found}");
    }
}

/// `smsflow validate FILE`, the pipeline written to `dir`: exit success and
/// everything it printed.
fn validate_in(dir: &std::path::Path, yaml: &str) -> (bool, String) {
    let file = dir.join("pipeline.yaml");
    std::fs::write(&file, yaml).unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_smsflow"))
        .arg("validate")
        .arg(&file)
        .env_remove("SMSFLOW_SECRET")
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

/// Before: `auth_token: 987654321098` made `validate` print the token. After:
/// no secret's value is printed, whichever check reports it; the error
/// still names the place and what was expected.
#[test]
fn validate_never_prints_a_secret() {
    let dir = tempfile::tempdir().unwrap();
    // Values of the wrong type and bad `${...}`: the file is not read further.
    let yaml = "\
backends:
  - type: tester
  - type: twilio
    account_sid: AC1
    from: '+15550000'
    auth_token: 987654321098
  - type: kannel
    username: u
    password: 'hunter2${'
kafka:
  mode: kafka
  brokers: localhost:9092
  config:
    sasl.password: 55554444
    ssl.key.password: ['in', 'a', 'list-xyz-secret']
routes:
  - app: echo
apps:
  - type: echo
";
    let (ok, out) = validate_in(dir.path(), yaml);
    assert!(!ok, "{out}");
    // serde spells a big number its own way (`1.2345678901234569e+23`).
    let (ok, admin) = validate_in(
        dir.path(),
        "http:\n  admin:\n    tokens: [123456789012345678901234]\nbackends:\n  - type: tester\nroutes:\n  - app: echo\napps:\n  - type: echo\n",
    );
    assert!(!ok, "{admin}");
    assert!(
        admin.contains("http.admin.tokens[0]: invalid type: floating point `<redacted>`"),
        "{admin}"
    );
    for secret in ["1234567890", "1.2345678901234569e+23", "e+23"] {
        assert!(!admin.contains(secret), "{secret:?} printed:\n{admin}");
    }
    for secret in ["987654321098", "hunter2", "55554444", "list-xyz-secret"] {
        assert!(!out.contains(secret), "{secret:?} printed:\n{out}");
    }
    // Still clear about what is wrong, and where.
    for words in [
        "pipeline.yaml:3:5: backends[1]: invalid type: integer `<redacted>`, expected a string (the value of backends[1].auth_token, not shown: a secret)",
        "pipeline.yaml:9:15: backends[2].password: unclosed `${` in this secret",
        "kafka.config.sasl.password: invalid type: integer `<redacted>`, expected a string",
    ] {
        assert!(out.contains(words), "{words:?} not in:\n{out}");
    }

    // Checks of the whole file that quote a value holding a secret.
    let yaml = "\
backends:
  - type: tester
  - type: http
    name: gw
    url: 'ftp://user:pa55w0rd@gw.example/send'
  - type: clickatell
    api_key: 's3cr3t-key-99('
routes:
  - app: echo
  - app: default
    keyword: 's3cr3t-key-99('
apps:
  - type: echo
  - type: default
";
    let (ok, out) = validate_in(dir.path(), yaml);
    assert!(!ok, "{out}");
    for secret in ["pa55w0rd", "s3cr3t-key-99"] {
        assert!(!out.contains(secret), "{secret:?} printed:\n{out}");
    }
    for words in [
        "backends[1].url: \"ftp://user:<redacted>@gw.example/send\" is a ftp URL",
        "routes[1].keyword: <redacted> is not a valid regex",
    ] {
        assert!(out.contains(words), "{words:?} not in:\n{out}");
    }
}

/// Before: `languages.files` read any path (and all of `/dev/zero`) and
/// quoted the first lines of a file it could not parse (`/etc/passwd`).
/// After: files stay inside the pipeline's directory, are at most 1 MiB, and
/// a parse error gives a line and column, never the contents.
#[test]
fn translation_files_are_confined_capped_and_never_quoted() {
    let root = tempfile::tempdir().unwrap();
    let dir = root.path().join("pipeline");
    std::fs::create_dir(&dir).unwrap();
    std::fs::write(
        root.path().join("outside.yaml"),
        "fr: {echo.help: TOPSECRET-OUTSIDE}\n",
    )
    .unwrap();
    std::os::unix::fs::symlink(root.path().join("outside.yaml"), dir.join("link.yaml")).unwrap();
    std::os::unix::fs::symlink("/dev/zero", dir.join("zero.yaml")).unwrap();
    std::fs::write(
        dir.join("bad.yaml"),
        "root:x:0:0:SECRETLINE:/root:/bin/bash\nfr: [unclosed SECRETLINE2\n",
    )
    .unwrap();
    std::fs::write(
        dir.join("passwd.yaml"),
        "root:x:0:0:SECRETLINE3:/root:/bin/bash\n",
    )
    .unwrap();
    std::fs::write(dir.join("big.yaml"), "#".repeat((1 << 20) + 1)).unwrap();
    std::fs::create_dir(dir.join("sub")).unwrap();
    std::fs::write(dir.join("good.yaml"), "fr: {echo.help: Bonjour}\n").unwrap();
    let files = [
        "/etc/passwd",
        "/dev/zero",
        "../outside.yaml",
        "link.yaml",
        "zero.yaml",
        "bad.yaml",
        "passwd.yaml",
        "big.yaml",
        "sub",
        "sub/../good.yaml",
    ];
    let yaml = format!(
        "{GOOD}languages:\n  available: [{{code: en, name: English}}, {{code: fr, name: French}}]\n  files: [{}]\n",
        files.map(|f| format!("'{f}'")).join(", ")
    );
    let (ok, out) = validate_in(&dir, &yaml);
    assert!(!ok, "{out}");
    for leak in ["root:x", "TOPSECRET", "SECRETLINE", "/bin/bash"] {
        assert!(!out.contains(leak), "{leak:?} printed:\n{out}");
    }
    let error = |i: usize| {
        let at = format!("languages.files[{i}]: ");
        out.lines()
            .find(|l| l.contains(&at))
            .unwrap_or_else(|| panic!("no error at {at}:\n{out}"))
            .to_owned()
    };
    assert!(error(0).contains("is an absolute path"));
    assert!(error(1).contains("is an absolute path"));
    assert!(error(2).contains("leads outside the pipeline file's directory"));
    assert!(error(3).contains("leads outside"));
    assert!(error(4).contains("leads outside"));
    assert!(error(5).contains("\"bad.yaml\" is not a translations file: line 2, column"));
    assert!(error(6).contains("line 1, column 1: expected a mapping of languages, found a string"));
    assert!(error(7).contains("larger than 1024 KiB"));
    assert!(error(8).contains("\"sub\" is not a regular file"));
    assert!(
        !out.contains("languages.files[9]"),
        "a file inside is read:\n{out}"
    );
}

/// 20,000 distinct routes (keywords, exact texts, prefixes, backends) are
/// checked, shadowing included, with the same answer as before; before, the
/// pairwise shadowing check did not finish in 20 s.
#[test]
fn twenty_thousand_routes_validate_and_shadowing_is_still_found() {
    let mut yaml = String::from(
        "max_routes: 20001\nbackends:\n  - type: tester\n  - type: tester\n    name: other\nroutes:\n",
    );
    for i in 0..6_500 {
        yaml.push_str(&format!("  - {{app: echo, keyword: 'kw{i}|alt{i}'}}\n"));
        yaml.push_str(&format!("  - {{app: echo, exact: 'text {i}'}}\n"));
        yaml.push_str(&format!("  - {{app: echo, prefix: '+1{i:05}'}}\n"));
    }
    for i in 0..500 {
        yaml.push_str(&format!(
            "  - {{app: echo, backend: other, pattern: 'p{i}\\d+'}}\n"
        ));
    }
    let good = format!("{yaml}apps:\n  - type: echo\n  - type: default\n");
    let p = load_str(&good, &|_| None).unwrap_or_else(|e| panic!("{:?}", &e[..e.len().min(3)]));
    assert_eq!(p.routes.len(), 20_000);
    // One more, shadowed by route 3 (`kw1|alt1`, matched in any case).
    yaml.push_str("  - {app: default, keyword: ALT1}\n");
    let e = only(&format!("{yaml}apps:\n  - type: echo\n  - type: default\n"));
    assert_eq!(e.path.to_string(), "routes[20000]");
    assert!(e.message.contains("route 3 (\"echo\""), "{e}");
}

/// More routes than `max_routes` (default 10,000) are refused without
/// reading them.
#[test]
fn routes_are_capped() {
    let mut yaml = String::from("backends:\n  - type: tester\nroutes:\n");
    for i in 0..10_001 {
        yaml.push_str(&format!("  - {{app: echo, keyword: 'kw{i}'}}\n"));
    }
    yaml.push_str("apps:\n  - type: echo\n");
    let e = only(&yaml);
    at(
        &e,
        4,
        3,
        &["10001 routes, more than the 10000 allowed", "max_routes"],
    );
    let e = errors(&format!("max_routes: lots\n{yaml}"));
    assert!(
        e.iter().any(|e| e.path.to_string() == "max_routes"),
        "{e:#?}"
    );
}
