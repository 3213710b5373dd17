//! The YAML tree read into plain typed data, section by section: every
//! error is collected (with its position) instead of stopping at the first.

use std::time::Duration;

use serde::de::DeserializeOwned;

use super::error::ConfigError;
use super::files;
use super::node::{Kind, Node, Path, Step};
use super::types::{self, *};

pub(super) const TOP_LEVEL: [&str; 19] = [
    "project",
    "kafka",
    "topics",
    "http",
    "filters",
    "optout",
    "languages",
    "messagelog",
    "campaigns",
    "analytics",
    "export",
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
pub(super) struct Reader<'a> {
    pub(super) root: &'a Node,
    pub(super) errors: Vec<ConfigError>,
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

    pub(super) fn pipeline(&mut self) -> Option<Pipeline> {
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
        let campaigns = self.section(&top.key("campaigns"));
        let analytics = self.section(&top.key("analytics"));
        let export = self.section(&top.key("export"));
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
            campaigns,
            analytics,
            export,
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
                if let Err(why) = files::check_data_dir(dir) {
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
