//! The pipeline file as the manifests need it: its text (for the
//! ConfigMap), the variables it references (for the Secret), where its
//! listeners and brokers come from, and the stages and topics it implies.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::Path;

use anyhow::{bail, Context};

use super::names;
use crate::bus::TopicSpec;
use crate::config::vars::{self, Var};
use crate::config::{ConfigErrors, KafkaMode, Node, Path as At};
use crate::topology::{self, StageInfo, Topology};

/// Where the pipeline file is mounted in every container.
pub const MOUNT: &str = "/etc/smsflow";
/// The pipeline file's name in the ConfigMap and under [`MOUNT`].
pub const FILE: &str = "pipeline.yaml";
/// The variable the binary reads its static group membership id from
/// (librdkafka's `group.instance.id`); the manifests set it to the pod's name.
pub const INSTANCE_ID: &str = "SMSFLOW_INSTANCE_ID";
/// The log format the manifests ask for (clap reads it from this variable).
pub const LOG_FORMAT: &str = "SMSFLOW_LOG_FORMAT";

/// A listener as the container has it.
#[derive(Debug, Clone)]
pub struct Listener {
    pub port: u16,
    /// The variable of `${VAR}` the address is read from, which the
    /// manifests set to `0.0.0.0:<port>`; None when the file says
    /// `0.0.0.0:<port>` itself.
    pub var: Option<String>,
}

/// Where the stages find the brokers (for KEDA's Kafka trigger).
#[derive(Debug, Clone)]
pub enum Brokers {
    /// `kafka.brokers: ${VAR}`: KEDA reads VAR from the container's env.
    Env(String),
    /// A literal `host:port,...` (no secret in it).
    Literal(String),
}

/// A pipeline file read for rendering.
pub struct Source {
    /// The ConfigMap's files: `pipeline.yaml` and each of `languages.files`,
    /// by ConfigMap key, with the path each is mounted at under [`MOUNT`].
    pub files: BTreeMap<String, (String, String)>,
    /// Every `${VAR}` the file references.
    pub vars: Vec<Var>,
    pub public: Listener,
    /// None when the admin listener stays on the pod's loopback.
    pub admin: Option<Listener>,
    /// The variable holding the first admin token (what Prometheus sends).
    pub metrics_token: Option<String>,
    /// None on the embedded bus.
    pub brokers: Option<Brokers>,
    pub group: String,
    pub stages: Vec<StageInfo>,
    pub topics: Vec<TopicSpec>,
    pub shutdown_timeout: std::time::Duration,
    /// Backends that take webhooks on the public listener.
    pub webhook_backends: Vec<String>,
    /// Backends that must run as one process (the tester keeps its
    /// conversations in memory; a modem's serial port opens once).
    pub single_backends: Vec<String>,
}

impl Source {
    /// Read `path` and load it as `smsflow validate` does, with the
    /// listeners' variables set as the containers will have them. Variables
    /// without a default must be set in `env` (their values never reach the
    /// output).
    pub fn read(path: &Path, env_var: &dyn Fn(&str) -> Option<String>) -> anyhow::Result<Source> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read {}", path.display()))?;
        let root = Node::parse(&text).map_err(|e| errors(path, vec![e]))?;
        let vars = vars::referenced(&text).map_err(|e| errors(path, vec![e]))?;
        let public = listener(&root, &["http", "listen"], 8080)?.ok_or_else(|| {
            anyhow::anyhow!(
                "http.listen is on loopback (its default is 127.0.0.1:8080): nothing outside the pod \
                 could reach the webhooks or the probes. Write `listen: ${{SMSFLOW_LISTEN:-127.0.0.1:8080}}` \
                 (the manifests set SMSFLOW_LISTEN=0.0.0.0:8080) or `listen: 0.0.0.0:8080`"
            )
        })?;
        let admin = listener(&root, &["http", "admin", "listen"], public.port + 1)?;
        let mut env: BTreeMap<String, String> = BTreeMap::new();
        for l in std::iter::once(&public).chain(admin.as_ref()) {
            if let Some(v) = &l.var {
                env.insert(v.clone(), format!("0.0.0.0:{}", l.port));
            }
        }
        let dir = path.parent().unwrap_or(Path::new("."));
        let lookup = |k: &str| env.get(k).cloned().or_else(|| env_var(k));
        let pipeline = topology::load_str_in(&text, &lookup, dir).map_err(|e| errors(path, e))?;
        let metrics_token = match &admin {
            Some(_) => Some(token_var(&root)?),
            None => None,
        };
        let brokers = match pipeline.kafka.mode {
            KafkaMode::Kafka => Some(brokers(&root)?),
            _ => None,
        };
        let mut files = BTreeMap::new();
        files.insert(FILE.to_owned(), (FILE.to_owned(), text.clone()));
        for name in &pipeline.languages.files {
            let content = std::fs::read_to_string(dir.join(name))
                .with_context(|| format!("cannot read {name} (languages.files)"))?;
            let key = names::label(name);
            if files.insert(key.clone(), (name.clone(), content)).is_some() {
                bail!("two files of languages.files share the ConfigMap key {key:?}: rename one");
            }
        }
        let webhook_backends = pipeline
            .backends
            .iter()
            .filter(|b| b.receiving().is_some())
            .map(|b| b.name().to_owned())
            .collect();
        let single_backends = pipeline
            .backends
            .iter()
            .filter(|b| {
                matches!(
                    b,
                    crate::config::Backend::Tester { .. } | crate::config::Backend::Modem(_)
                )
            })
            .map(|b| b.name().to_owned())
            .collect();
        let group = pipeline.kafka.group.clone();
        let shutdown_timeout = pipeline.shutdown_timeout;
        let topology = Topology::new(pipeline)?;
        Ok(Source {
            files,
            vars,
            public,
            admin,
            metrics_token,
            brokers,
            group,
            stages: topology.stages(),
            topics: topology.topics(),
            shutdown_timeout,
            webhook_backends,
            single_backends,
        })
    }

    /// Whether the stages may run in pods of their own (a Kafka bus).
    pub fn on_kafka(&self) -> bool {
        self.brokers.is_some()
    }

    /// The variables the manifests set themselves, with their values.
    pub fn plain_env(&self) -> BTreeMap<String, String> {
        let mut env = BTreeMap::new();
        for l in std::iter::once(&self.public).chain(self.admin.as_ref()) {
            if let Some(v) = &l.var {
                env.insert(v.clone(), format!("0.0.0.0:{}", l.port));
            }
        }
        env.insert(LOG_FORMAT.to_owned(), "json".to_owned());
        env
    }

    /// The partitions of `topic`.
    pub fn partitions(&self, topic: &str) -> Option<i32> {
        self.topics
            .iter()
            .find(|t| t.name == topic)
            .map(|t| t.partitions)
    }
}

fn errors(path: &Path, errors: Vec<crate::config::ConfigError>) -> anyhow::Error {
    let e = ConfigErrors {
        file: path.display().to_string(),
        errors,
    };
    anyhow::anyhow!("the pipeline does not load, so nothing was rendered:\n{e}")
}

fn at(keys: &[&str]) -> At {
    keys.iter().fold(At::default(), |p, k| p.key(k))
}

/// The listener at `keys`: its port, and the variable to set. None when it
/// is on loopback (said so or by default).
fn listener(root: &Node, keys: &[&str], default_port: u16) -> anyhow::Result<Option<Listener>> {
    let key = keys.join(".");
    let Some(node) = root.get(&at(keys)) else {
        return Ok(None);
    };
    let Some(s) = node.as_str() else {
        bail!(
            "{key} is {}: expected an address such as 0.0.0.0:8080 or ${{VAR:-127.0.0.1:8080}}",
            node.describe()
        );
    };
    let (var, written) = match vars::whole_reference(s) {
        Some((name, default)) => (Some(name.to_owned()), default),
        None if s.contains('$') => bail!(
            "{key} is {s:?}: the manifests set the address through one variable, so write `${{NAME}}` or `${{NAME:-127.0.0.1:8080}}` alone"
        ),
        None => (None, Some(s)),
    };
    let addr = match written {
        Some(w) => Some(
            w.parse::<SocketAddr>()
                .with_context(|| format!("{key}: {w:?} is not an address such as 0.0.0.0:8080"))?,
        ),
        None => None,
    };
    let port = addr.map_or(default_port, |a| a.port());
    if port == 0 {
        bail!("{key} has port 0: a Service needs a fixed port, such as 8080");
    }
    match (var, addr) {
        (Some(var), _) => Ok(Some(Listener {
            port,
            var: Some(var),
        })),
        (None, Some(a)) if a.ip().is_unspecified() => Ok(Some(Listener { port, var: None })),
        (None, Some(a)) if a.ip().is_loopback() => Ok(None),
        _ => bail!(
            "{key} is {s:?}: in a pod, listen on 0.0.0.0:{port}, or write `${{SMSFLOW_LISTEN:-{s}}}` for the manifests to set it"
        ),
    }
}

/// The variable of `http.admin.tokens[0]`, which the ServiceMonitor reads from the Secret.
fn token_var(root: &Node) -> anyhow::Result<String> {
    let first = at(&["http", "admin", "tokens"]).index(0);
    let why = "Prometheus scrapes /metrics on the admin listener, which needs a bearer token off loopback";
    match root.get(&first).and_then(Node::as_str) {
        Some(s) => match vars::whole_reference(s) {
            Some((name, _)) => Ok(name.to_owned()),
            None => bail!("http.admin.tokens[0] must be `${{VAR}}` alone, so that the ServiceMonitor reads it from the Secret ({why})"),
        },
        None => bail!("http.admin.tokens is empty: {why}; add `tokens: [\"${{SMSFLOW_METRICS_TOKEN}}\"]`"),
    }
}

fn brokers(root: &Node) -> anyhow::Result<Brokers> {
    let node = root.get(&at(&["kafka", "brokers"]));
    match node.and_then(Node::as_str) {
        Some(s) => match vars::whole_reference(s) {
            Some((name, _)) => Ok(Brokers::Env(name.to_owned())),
            None if !s.contains('$') => Ok(Brokers::Literal(s.to_owned())),
            None => bail!("kafka.brokers is {s:?}: KEDA's trigger reads the brokers from one variable, so write `${{KAFKA_BROKERS}}` alone (or the brokers themselves)"),
        },
        None => bail!("kafka.brokers must be a string (`${{KAFKA_BROKERS}}`) for KEDA's trigger"),
    }
}
