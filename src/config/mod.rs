//! The pipeline YAML: parse with positions ([`node`]), interpolate `${VAR}`,
//! read each section into plain typed data ([`types`]), then check what only
//! the whole file can tell ([`validate`]). Every error found is reported, each
//! with its line, column, path, the offending value and what was expected.

pub mod backends;
pub mod http;
pub mod kafka;
pub mod node;
pub mod schema;
pub mod types;
mod validate;

use std::fmt;
use std::path::Path as FsPath;
use std::time::Duration;

use serde::de::DeserializeOwned;

pub use backends::*;
pub use node::{Kind, Node, Path, Step};
pub use types::*;

/// One problem in a pipeline file.
#[derive(Debug, Clone, PartialEq)]
pub struct ConfigError {
    pub line: u32,
    pub column: u32,
    pub path: Path,
    pub message: String,
}

impl ConfigError {
    pub fn new(line: u32, column: u32, path: Path, message: impl Into<String>) -> Self {
        Self {
            line,
            column,
            path,
            message: message.into(),
        }
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.path.0.is_empty() {
            write!(f, "{}:{}: {}", self.line, self.column, self.message)
        } else {
            write!(
                f,
                "{}:{}: {}: {}",
                self.line, self.column, self.path, self.message
            )
        }
    }
}

/// Every problem found in a pipeline file, in file order.
#[derive(Debug, Clone, thiserror::Error)]
pub struct ConfigErrors {
    pub file: String,
    pub errors: Vec<ConfigError>,
}

impl fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let n = self.errors.len();
        writeln!(
            f,
            "{}: {n} error{}",
            self.file,
            if n == 1 { "" } else { "s" }
        )?;
        for e in &self.errors {
            writeln!(f, "{}:{e}", self.file)?;
        }
        Ok(())
    }
}

/// Read and check a pipeline file, with the process environment for `${VAR}`.
pub fn load_file(path: &FsPath) -> Result<Pipeline, ConfigErrors> {
    let file = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|e| ConfigErrors {
        file: file.clone(),
        errors: vec![ConfigError::new(
            0,
            0,
            Path::default(),
            format!("cannot read the file: {e}"),
        )],
    })?;
    let dir = path.parent().unwrap_or(FsPath::new("."));
    load_str_in(&text, &|k| std::env::var(k).ok(), dir)
        .map_err(|errors| ConfigErrors { file, errors })
}

/// Read and check pipeline text, with `env` for `${VAR}`. Files it names
/// (`languages.files`) are relative to the current directory.
pub fn load_str(
    text: &str,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Pipeline, Vec<ConfigError>> {
    load_str_in(text, env, FsPath::new("."))
}

/// [`load_str`] for text read from a file in `dir` (the files it names are relative to `dir`).
pub fn load_str_in(
    text: &str,
    env: &dyn Fn(&str) -> Option<String>,
    dir: &FsPath,
) -> Result<Pipeline, Vec<ConfigError>> {
    let mut root = Node::parse(text).map_err(|e| vec![e])?;
    let mut errors = Vec::new();
    root.interpolate(env, &Path::default(), &mut errors);
    let mut reader = Reader {
        root: &root,
        errors,
    };
    let mut pipeline = reader.pipeline();
    let mut errors = reader.errors;
    if let Some(pipeline) = &mut pipeline {
        read_translation_files(pipeline, dir, &root, &mut errors);
        validate::check(pipeline, &root, &mut errors);
    }
    errors.sort_by_key(|e| (e.line, e.column));
    errors.dedup();
    redact(&mut errors, &root);
    match pipeline {
        Some(p) if errors.is_empty() => Ok(p),
        _ => Err(errors),
    }
}

/// Add the texts of `languages.files` to `languages.texts` (the pipeline's
/// own texts win over a file's). Files are confined to `dir` and
/// size-capped ([`crate::i18n::read_texts_file`]).
fn read_translation_files(
    p: &mut Pipeline,
    dir: &FsPath,
    root: &Node,
    errors: &mut Vec<ConfigError>,
) {
    for (i, name) in p.languages.files.clone().iter().enumerate() {
        let at = Path::default().key("languages").key("files").index(i);
        match crate::i18n::read_texts_file(dir, name) {
            Ok(texts) => {
                for (lang, texts) in texts {
                    let own = p.languages.texts.entry(lang).or_default();
                    for (k, v) in texts {
                        own.entry(k).or_insert(v);
                    }
                }
            }
            Err(message) => {
                let (line, column) = locate(root, &at);
                errors.push(ConfigError::new(line, column, at, message));
            }
        }
    }
}

/// What replaces a secret in an error message.
const REDACTED: &str = "<redacted>";

/// Secrets shorter than this are hidden only in errors about themselves:
/// elsewhere, hiding every `1` or `ab` would garble messages.
const SCRUB_EVERYWHERE: usize = 4;

/// Hide secret values in `errors`, whichever check wrote them (a value of the
/// wrong type, a bad `${VAR}`, a validation): every value under a secret key
/// ([`node::is_secret_key`]) and the password of any `scheme://user:password@`.
fn redact(errors: &mut [ConfigError], root: &Node) {
    let mut secrets = Vec::new();
    collect_secrets(root, &Path::default(), false, &mut secrets);
    for e in errors.iter_mut() {
        for (at, value) in &secrets {
            if e.path.0.starts_with(&at.0) || at.0.starts_with(&e.path.0) {
                let scrubbed = hide_serde_value(&scrub(&e.message, value, true));
                // An error placed above the secret (a list item read as a
                // whole) would not say which value it hid.
                if scrubbed != e.message && e.path != *at {
                    e.message = format!("{scrubbed} (the value of {at}, not shown: a secret)");
                } else {
                    e.message = scrubbed;
                }
            } else if value.chars().count() >= SCRUB_EVERYWHERE {
                e.message = scrub(&e.message, value, false);
            }
        }
        e.message = hide_url_passwords(&e.message);
    }
}

/// Every scalar under a secret key, with its path.
fn collect_secrets(node: &Node, path: &Path, secret: bool, out: &mut Vec<(Path, String)>) {
    match &node.kind {
        Kind::Map(entries) => {
            for (k, v) in entries {
                let key = k.as_str().map_or_else(|| k.describe(), str::to_owned);
                let secret = secret || node::is_secret_key(&key);
                collect_secrets(v, &path.key(&key), secret, out);
            }
        }
        Kind::Seq(items) => {
            for (i, item) in items.iter().enumerate() {
                collect_secrets(item, &path.index(i), secret, out);
            }
        }
        Kind::Str(s) if secret && !s.is_empty() => out.push((path.clone(), s.clone())),
        Kind::Int(_) | Kind::Float(_) if secret => out.push((path.clone(), node.describe())),
        _ => {}
    }
}

/// `message` with `value` replaced: quoted as serde and `describe` quote
/// it, and bare. A short value (`about_it`: the error is about this secret)
/// is replaced bare only where it stands as a word of its own.
fn scrub(message: &str, value: &str, about_it: bool) -> String {
    let quoted = format!("{value:?}");
    let mut out = message.replace(&quoted, REDACTED);
    if value.chars().count() >= SCRUB_EVERYWHERE {
        return out.replace(value, REDACTED);
    }
    if about_it {
        out = replace_word(&out, value);
    }
    out
}

/// serde's own rendering of a value it refused (`invalid type: floating
/// point `1.2e23``) hidden: it need not spell the value as the file did.
fn hide_serde_value(message: &str) -> String {
    let Some(kind) = ["invalid type: ", "invalid value: "]
        .into_iter()
        .find(|k| message.starts_with(k))
    else {
        return message.to_owned();
    };
    let rest = &message[kind.len()..];
    match (rest.find('`'), rest.find("`, expected")) {
        (Some(open), Some(close)) if open < close => {
            format!("{kind}{}`{REDACTED}{}", &rest[..open], &rest[close..])
        }
        _ => message.to_owned(),
    }
}

/// `text` with each occurrence of `word` not inside a longer word replaced.
fn replace_word(text: &str, word: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(i) = rest.find(word) {
        let before = rest[..i].chars().next_back();
        let after = rest[i + word.len()..].chars().next();
        let alone =
            !before.is_some_and(char::is_alphanumeric) && !after.is_some_and(char::is_alphanumeric);
        out.push_str(&rest[..i]);
        out.push_str(if alone { REDACTED } else { word });
        rest = &rest[i + word.len()..];
    }
    out.push_str(rest);
    out
}

/// `scheme://user:password@host` with the password hidden.
fn hide_url_passwords(message: &str) -> String {
    static USERINFO: std::sync::LazyLock<regex::Regex> = std::sync::LazyLock::new(|| {
        // Infallible: a constant, checked by the tests.
        regex::Regex::new(r"(?P<pre>[A-Za-z][A-Za-z0-9+.-]*://[^:/?#@\s]*:)[^@/?#\s]+@")
            .expect("a valid regex")
    });
    USERINFO
        .replace_all(message, format!("${{pre}}{REDACTED}@"))
        .into_owned()
}

/// Where `path` points in `root`: the deepest node along it that exists.
pub(crate) fn locate(root: &Node, path: &Path) -> (u32, u32) {
    let mut best = (root.line, root.column);
    for n in 0..=path.0.len() {
        match root.get(&Path(path.0[..n].to_vec())) {
            Some(node) => best = (node.line, node.column),
            None => break,
        }
    }
    best
}

/// Routes a pipeline may have unless its `max_routes` says more: far more
/// than hand-written tables have, few enough that a generated table gone
/// wrong is caught before every router compiles it.
pub const DEFAULT_MAX_ROUTES: usize = 10_000;

const TOP_LEVEL: [&str; 16] = [
    "project",
    "kafka",
    "topics",
    "http",
    "filters",
    "optout",
    "languages",
    "messagelog",
    "backends",
    "routes",
    "default_app",
    "taps",
    "apps",
    "chain",
    "shutdown_timeout",
    "max_routes",
];

/// Reads sections out of the node tree, collecting errors instead of stopping.
struct Reader<'a> {
    root: &'a Node,
    errors: Vec<ConfigError>,
}

impl Reader<'_> {
    fn error(&mut self, path: &Path, message: impl Into<String>) {
        // One error per place: a value that failed interpolation would
        // otherwise be reported again as a bad value.
        if self.errors.iter().any(|e| &e.path == path) {
            return;
        }
        let (line, column) = locate(self.root, path);
        self.errors
            .push(ConfigError::new(line, column, path.clone(), message));
    }

    fn pipeline(&mut self) -> Option<Pipeline> {
        let Kind::Map(entries) = &self.root.kind else {
            self.error(
                &Path::default(),
                format!(
                    "a pipeline file is a mapping of sections, found {}",
                    self.root.describe()
                ),
            );
            return None;
        };
        for (key, _) in entries {
            let name = key.as_str().unwrap_or_default();
            if !TOP_LEVEL.contains(&name) {
                self.errors.push(ConfigError::new(
                    key.line,
                    key.column,
                    Path::default(),
                    format!(
                        "unknown section {}, expected one of: {}",
                        key.describe(),
                        TOP_LEVEL.join(", ")
                    ),
                ));
            }
        }
        let top = Path::default();
        let project = self
            .optional(&top.key("project"))
            .unwrap_or_else(types::default_project);
        let kafka = self.kafka(&top.key("kafka"));
        let topics = self.optional(&top.key("topics")).unwrap_or_default();
        let http = self.optional(&top.key("http")).unwrap_or_default();
        let filters = self.optional(&top.key("filters")).unwrap_or_default();
        let optout = self.section(&top.key("optout"));
        let languages = self.optional(&top.key("languages")).unwrap_or_default();
        let messagelog = self.section(&top.key("messagelog"));
        let backends = self.list(&top.key("backends"), true);
        let routes = self.routes(&top);
        let default_app: Option<String> = self.optional(&top.key("default_app"));
        let taps = self.optional(&top.key("taps")).unwrap_or_default();
        let apps: Vec<App> = self.list(&top.key("apps"), true);
        let chain = self.chain(&top.key("chain"));
        let shutdown_timeout = self.duration(
            &top.key("shutdown_timeout"),
            types::default_shutdown_timeout(),
        );
        // RapidSMS puts contrib.default last in INSTALLED_APPS; here the app
        // named `default` answers unmatched messages unless told otherwise.
        let default_app = default_app.or_else(|| {
            apps.iter()
                .find(|a| a.name() == "default")
                .map(|a| a.name().to_owned())
        });
        Some(Pipeline {
            project,
            kafka: kafka?,
            topics,
            http,
            filters,
            optout,
            languages,
            messagelog,
            backends,
            routes,
            default_app,
            taps,
            apps,
            chain,
            shutdown_timeout,
        })
    }

    /// A section that is switched on by being there: `name:` alone (null) or
    /// `name: {}` gives the defaults; absent gives `None`.
    fn section<T: DeserializeOwned + Default>(&mut self, path: &Path) -> Option<T> {
        let node = self.root.get(path)?;
        if node.kind == Kind::Null {
            return Some(T::default());
        }
        self.typed(node, path)
    }

    /// A typed value at `path`, or `None` (with an error recorded if it was there but wrong).
    fn optional<T: DeserializeOwned>(&mut self, path: &Path) -> Option<T> {
        let node = self.root.get(path)?;
        if node.kind == Kind::Null {
            return None;
        }
        self.typed(node, path)
    }

    fn typed<T: DeserializeOwned>(&mut self, node: &Node, path: &Path) -> Option<T> {
        match serde_path_to_error::deserialize(node.to_json()) {
            Ok(v) => Some(v),
            Err(e) => {
                let mut at = path.clone();
                for seg in e.path().iter() {
                    match seg {
                        serde_path_to_error::Segment::Seq { index } => at = at.index(*index),
                        serde_path_to_error::Segment::Map { key } => at = at.key(key),
                        serde_path_to_error::Segment::Enum { .. }
                        | serde_path_to_error::Segment::Unknown => {}
                    }
                }
                let inner = e.into_inner().to_string();
                // serde_json's "invalid type" messages already name the value and
                // what was expected; point at the unknown key itself when there is one.
                if let Some(name) = unknown_field(&inner) {
                    // The path may or may not end at the unknown key itself.
                    let parent = match at.0.last() {
                        Some(Step::Key(k)) if *k == name => Path(at.0[..at.0.len() - 1].to_vec()),
                        _ => at.clone(),
                    };
                    if let Some(key) = self.root.get(&parent).and_then(|n| n.key_node(&name)) {
                        self.errors.push(ConfigError::new(
                            key.line,
                            key.column,
                            parent.key(&name),
                            inner,
                        ));
                        return None;
                    }
                }
                // "invalid value"/"invalid type" messages of some types do not
                // repeat the value: add it.
                let found = self
                    .root
                    .get(&at)
                    .filter(|n| !matches!(n.kind, Kind::Map(_) | Kind::Seq(_)));
                let message = match found {
                    Some(n)
                        if !inner.contains(&n.describe()) && !inner.contains("missing field") =>
                    {
                        format!("{inner} (found {})", n.describe())
                    }
                    _ => inner,
                };
                self.error(&at, message);
                None
            }
        }
    }

    /// A list section: each item is read on its own, so every bad item is reported.
    fn list<T: DeserializeOwned>(&mut self, path: &Path, required: bool) -> Vec<T> {
        let Some(node) = self.root.get(path) else {
            if required {
                self.error(path, format!("missing section `{path}`"));
            }
            return Vec::new();
        };
        match &node.kind {
            Kind::Seq(items) => items
                .iter()
                .enumerate()
                .filter_map(|(i, item)| self.typed(item, &path.index(i)))
                .collect(),
            Kind::Null => Vec::new(),
            _ => {
                self.error(path, format!("expected a list, found {}", node.describe()));
                Vec::new()
            }
        }
    }

    /// The route table, unless it has more routes than `max_routes` allows
    /// (then none is read: the cap bounds the work too).
    fn routes(&mut self, top: &Path) -> Vec<Route> {
        let cap = top.key("max_routes");
        let max = self.optional::<usize>(&cap).unwrap_or(DEFAULT_MAX_ROUTES);
        let at = top.key("routes");
        if let Some(Kind::Seq(items)) = self.root.get(&at).map(|n| &n.kind) {
            if items.len() > max {
                let why = format!(
                    "{} routes, more than the {max} allowed: raise `max_routes` if the table is meant to be this big",
                    items.len()
                );
                self.error(&at, why);
                return Vec::new();
            }
        }
        self.list(&at, false)
    }

    fn kafka(&mut self, path: &Path) -> Option<Kafka> {
        let Some(node) = self.root.get(path) else {
            return Some(Kafka::with_mode(KafkaMode::Embedded));
        };
        match &node.kind {
            Kind::Str(s) => match s.as_str() {
                "embedded" => Some(Kafka::with_mode(KafkaMode::Embedded)),
                "mock" => Some(Kafka::with_mode(KafkaMode::Mock)),
                other => {
                    self.error(path, format!("unknown bus {other:?}: expected `embedded`, `mock`, or a mapping with `mode: kafka` and `brokers`"));
                    None
                }
            },
            _ => {
                let kafka: Kafka = self.typed(node, path)?;
                self.check_durable(&kafka, path);
                Some(kafka)
            }
        }
    }

    /// The durable embedded bus's keys: only with `mode: embedded` and a
    /// `data_dir` we can write in.
    fn check_durable(&mut self, kafka: &Kafka, path: &Path) {
        match &kafka.data_dir {
            Some(_) if kafka.mode != KafkaMode::Embedded => self.error(
                &path.key("data_dir"),
                format!(
                    "`data_dir` keeps the embedded bus on disk: it is only used with `mode: embedded`, not {:?}",
                    kafka.mode
                ),
            ),
            Some(dir) => {
                if let Err(why) = crate::bus::durable::check_data_dir(dir) {
                    self.error(&path.key("data_dir"), why);
                }
            }
            None => {
                for key in ["fsync", "fsync_interval", "retention", "retention_records"] {
                    if self.root.get(&path.key(key)).is_some() {
                        self.error(
                            &path.key(key),
                            format!("`{key}` is a setting of the durable embedded bus: it needs `mode: embedded` and a `data_dir`"),
                        );
                    }
                }
            }
        }
        if kafka.fsync == Fsync::Interval && kafka.fsync_interval.is_zero() {
            self.error(
                &path.key("fsync_interval"),
                "0s: expected a positive interval, for example 1s (or `fsync: always`)",
            );
        }
    }

    /// `chain:` — `true`, `false` or a list of app names.
    fn chain(&mut self, path: &Path) -> Chain {
        let Some(node) = self.root.get(path) else {
            return Chain::default();
        };
        match &node.kind {
            Kind::Null => Chain::default(),
            Kind::Bool(b) => Chain::Every(*b),
            Kind::Seq(items) => {
                let mut names = Vec::new();
                for (i, item) in items.iter().enumerate() {
                    match item.as_str() {
                        Some(name) => names.push(name.to_owned()),
                        None => self.error(
                            &path.index(i),
                            format!("{} is not an app name", item.describe()),
                        ),
                    }
                }
                Chain::Apps(names)
            }
            _ => {
                self.error(
                    path,
                    format!(
                        "{} cannot say which apps to chain: expected true, false or a list of app names",
                        node.describe()
                    ),
                );
                Chain::default()
            }
        }
    }

    fn duration(&mut self, path: &Path, default: Duration) -> Duration {
        let Some(node) = self.root.get(path) else {
            return default;
        };
        match node.as_str().map(humantime::parse_duration) {
            Some(Ok(d)) => d,
            Some(Err(e)) => {
                self.error(
                    path,
                    format!(
                        "{} is not a duration ({e}): expected for example 30s, 1m 30s, 500ms",
                        node.describe()
                    ),
                );
                default
            }
            None => {
                self.error(
                    path,
                    format!(
                        "{} is not a duration: expected for example 30s, 1m 30s, 500ms",
                        node.describe()
                    ),
                );
                default
            }
        }
    }
}

fn unknown_field(message: &str) -> Option<String> {
    let rest = message.strip_prefix("unknown field `")?;
    Some(rest[..rest.find('`')?].to_owned())
}
