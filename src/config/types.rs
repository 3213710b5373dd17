//! The pipeline file's types: plain data, one `///` comment per field (the
//! reference docs in the README follow them). Nothing here opens a socket.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::backends::Backend;

/// A whole pipeline file.
#[derive(Debug, Clone, Serialize)]
pub struct Pipeline {
    /// Shown in replies such as the default app's (RapidSMS `PROJECT_NAME`). Default `RapidSMS`.
    pub project: String,
    /// The bus: `embedded` (in-process, not durable), `mock` (librdkafka's mock cluster, tests only) or a Kafka cluster.
    pub kafka: Kafka,
    /// Topic names and partitions.
    pub topics: Topics,
    /// The HTTP server: tester pages, webhooks, `/metrics`, `/healthz`, `/readyz`.
    pub http: Http,
    /// Inbound filters (RapidSMS's `filter` phase).
    pub filters: Filters,
    /// Opt-out keywords (STOP, START, HELP), handled before any app. Off unless the section is given.
    pub optout: Option<OptOut>,
    /// The languages contacts can choose, and the reply texts in each.
    pub languages: Languages,
    /// The message log: every inbound and outbound message on `topics.log`. Off unless the section is given.
    pub messagelog: Option<MessageLog>,
    /// Backends (providers), each a source and a sink.
    pub backends: Vec<Backend>,
    /// The route table, first match wins.
    pub routes: Vec<Route>,
    /// The app that answers what no route matched (RapidSMS's `default` phase). Default: the app named `default`, if any.
    pub default_app: Option<String>,
    /// Apps that see every inbound message, matched or not (after filtering).
    pub taps: Vec<String>,
    /// The apps, in order: the outgoing phase runs them in reverse.
    pub apps: Vec<App>,
    /// Apps run inside the router (in) instead of as stages of their own:
    /// `false` (default), `true` (every app this process runs) or a list of names.
    pub chain: Chain,
    /// How long a graceful shutdown may take before stages are stopped hard.
    #[serde(with = "humantime_serde_compat")]
    pub shutdown_timeout: Duration,
}

/// `chain:` — which apps are chained into the router (in): the router runs
/// them and their replies' outgoing phase in the same step, in memory, and
/// writes `sms.send.<backend>` directly. Two Kafka hops fewer per message;
/// `sms.app.<app>` and `sms.outbound` then do not carry those messages.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(untagged)]
pub enum Chain {
    /// `true`: every app this process runs; `false`: none.
    Every(bool),
    /// These apps, by name.
    Apps(Vec<String>),
}

impl Default for Chain {
    fn default() -> Self {
        Chain::Every(false)
    }
}

impl Chain {
    /// Whether the app `name` is chained (given it runs in this process).
    pub fn includes(&self, name: &str) -> bool {
        match self {
            Chain::Every(all) => *all,
            Chain::Apps(names) => names.iter().any(|n| n == name),
        }
    }
}

/// `kafka:` — a bare string `embedded` / `mock`, or this mapping.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Kafka {
    /// `embedded`, `mock` or `kafka`.
    #[serde(default)]
    pub mode: KafkaMode,
    /// Bootstrap servers (`host:port,...`); required for `mode: kafka`.
    #[serde(default)]
    pub brokers: Option<String>,
    /// Consumer group prefix: each stage's group is `<group>.<stage>`. Default `smsflow`.
    #[serde(default = "default_group")]
    pub group: String,
    /// librdkafka settings passed through as they are (TLS, SASL, acks, compression, ...).
    #[serde(default)]
    pub config: BTreeMap<String, String>,
    /// Embedded bus: records a partition holds before producers wait (on
    /// the durable bus: records some group has still to mark done).
    #[serde(default = "default_capacity")]
    pub partition_capacity: usize,
    /// Embedded bus: a directory to keep the partitions and the groups'
    /// offsets in (`<data_dir>/bus.redb`), so that nothing the bus
    /// acknowledged is lost when the process is killed. Without it the
    /// embedded bus lives in memory.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data_dir: Option<PathBuf>,
    /// Durable embedded bus: `always` (default) acknowledges a record once
    /// it is on disk; `interval` acknowledges it at once and syncs every
    /// `fsync_interval` (a crash of the machine, or kill -9, loses up to
    /// that much).
    #[serde(default)]
    pub fsync: Fsync,
    /// Durable embedded bus, `fsync: interval`: how often. Default `1s`.
    #[serde(default = "default_fsync_interval", with = "humantime_serde_compat")]
    pub fsync_interval: Duration,
    /// Durable embedded bus: how long records every group has marked done
    /// are kept (compacted topics keep each key's latest record for ever).
    /// Default `7d`.
    #[serde(default = "default_retention", with = "humantime_serde_compat")]
    pub retention: Duration,
    /// Durable embedded bus: at most this many records every group has
    /// marked done are kept per partition (ordinary topics). Default: no cap.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retention_records: Option<u64>,
}

impl Kafka {
    pub fn with_mode(mode: KafkaMode) -> Kafka {
        Kafka {
            mode,
            brokers: None,
            group: default_group(),
            config: BTreeMap::new(),
            partition_capacity: default_capacity(),
            data_dir: None,
            fsync: Fsync::default(),
            fsync_interval: default_fsync_interval(),
            retention: default_retention(),
            retention_records: None,
        }
    }
}

fn default_fsync_interval() -> Duration {
    Duration::from_secs(1)
}

fn default_retention() -> Duration {
    Duration::from_secs(7 * 24 * 3600)
}

/// When the durable embedded bus writes to disk.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Fsync {
    /// Every commit is on disk before its records are acknowledged;
    /// concurrent produces share one commit.
    #[default]
    Always,
    /// Commits are acknowledged at once and synced every `fsync_interval`.
    Interval,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum KafkaMode {
    /// In-process bus: keyed partitions, order, backpressure; not durable.
    #[default]
    Embedded,
    /// librdkafka's mock cluster, in-process: for tests of the Kafka code path only.
    Mock,
    /// A real Kafka-compatible cluster.
    Kafka,
}

/// `topics:` — names and partition counts.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Topics {
    /// Messages from phones. Default `sms.inbound`.
    pub inbound: String,
    /// Messages to phones, before the outgoing phase. Default `sms.outbound`.
    pub outbound: String,
    /// Prefix of each app's topic. Default `sms.app.`.
    pub app_prefix: String,
    /// Prefix of each backend's send topic. Default `sms.send.`.
    pub send_prefix: String,
    /// Delivery events. Default `sms.events`.
    pub events: String,
    /// Contacts (compacted). Default `sms.contacts`.
    pub contacts: String,
    /// Opted-out numbers (compacted, key = number). Default `sms.optouts`.
    pub optouts: String,
    /// The message log. Default `sms.log`.
    pub log: String,
    /// Poll answers (compacted, key = poll and contact). Default `sms.polls`.
    pub polls: String,
    /// Dead letters: records a stage could not process. Default `sms.dlq`.
    pub dlq: String,
    /// Partitions of every topic smsflow creates. Default 8.
    pub partitions: i32,
    /// Replication factor of topics smsflow creates on a cluster. Default 1.
    pub replication: i32,
}

impl Default for Topics {
    fn default() -> Self {
        Topics {
            inbound: "sms.inbound".into(),
            outbound: "sms.outbound".into(),
            app_prefix: "sms.app.".into(),
            send_prefix: "sms.send.".into(),
            events: "sms.events".into(),
            contacts: "sms.contacts".into(),
            optouts: "sms.optouts".into(),
            log: "sms.log".into(),
            polls: "sms.polls".into(),
            dlq: "sms.dlq".into(),
            partitions: 8,
            replication: 1,
        }
    }
}

impl Topics {
    pub fn app(&self, app: &str) -> String {
        format!("{}{app}", self.app_prefix)
    }
    pub fn send(&self, backend: &str) -> String {
        format!("{}{backend}", self.send_prefix)
    }
}

/// `http:` — two listeners: the public one (provider webhooks, `/healthz`,
/// `/readyz`) and the admin one (operator pages, the JSON API, the message
/// tester, `/metrics`).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Http {
    /// The public listener's address: provider webhooks under `/backend/<name>/`, `/healthz`, `/readyz`.
    /// Default `127.0.0.1:8080`; use `0.0.0.0:8080` in a container.
    pub listen: SocketAddr,
    /// How long a source waits for the bus to store an inbound message before
    /// answering 503 (so the provider retries). Default `10s`.
    #[serde(with = "humantime_serde_compat")]
    pub accept_timeout: Duration,
    /// The URL providers reach this server at, behind any proxy (delivery
    /// report and status callback URLs are built on it, and Twilio signs
    /// it). Default `http://<listen>`.
    pub public_url: Option<String>,
    /// Host names the public listener answers besides IP addresses, `localhost`
    /// and the host of `public_url` (any other `Host` header is refused: DNS rebinding).
    pub hosts: Vec<String>,
    /// The admin listener: operator pages, the JSON API, the tester, `/metrics`.
    pub admin: Admin,
    /// Request and connection limits, per listener.
    pub limits: Limits,
}

impl Http {
    /// The admin listener's address: [`Admin::listen`] or its default.
    pub fn admin_listen(&self) -> SocketAddr {
        self.admin.listen.unwrap_or_else(|| {
            let port = match self.listen.port() {
                0 => 0,
                p => p.checked_add(1).unwrap_or(0),
            };
            SocketAddr::from(([127, 0, 0, 1], port))
        })
    }

    /// Whether only this machine can reach the admin listener.
    pub fn admin_on_loopback(&self) -> bool {
        self.admin_listen().ip().is_loopback()
    }

    /// [`Http::public_url`], without a trailing `/`.
    pub fn public_base(&self) -> String {
        match &self.public_url {
            Some(u) => u.trim_end_matches('/').to_owned(),
            None => format!("http://{}", self.listen),
        }
    }
}

impl Default for Http {
    fn default() -> Self {
        Http {
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            accept_timeout: Duration::from_secs(10),
            public_url: None,
            hosts: Vec::new(),
            admin: Admin::default(),
            limits: Limits::default(),
        }
    }
}

/// `http.admin:` — where operators work. On loopback it needs no
/// authentication; anywhere else `tokens` or `users` are required.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Admin {
    /// The admin listener's address. Default: loopback, on the port after
    /// `http.listen`'s (`127.0.0.1:8081` with the default `http.listen`; any
    /// free port when `http.listen`'s port is 0). Read it with [`Http::admin_listen`].
    pub listen: Option<SocketAddr>,
    /// Host names it answers besides IP addresses and `localhost` (for example
    /// the name of a reverse proxy in front of it).
    pub hosts: Vec<String>,
    /// Bearer tokens (`Authorization: Bearer <token>`), at least 16 characters
    /// each; give them through `${VAR}`.
    pub tokens: Vec<Secret>,
    /// Users for basic auth, each with an argon2 password hash (PHC string,
    /// as `smsflow hash-password` prints it).
    pub users: Vec<AdminUser>,
    /// Serve the message tester although the admin listener is not on
    /// loopback (anyone with admin access can then inject messages as any
    /// number). Default `false`: such a pipeline does not start.
    pub allow_remote_tester: bool,
}

impl Admin {
    /// Whether operators must authenticate (some token or user is declared).
    pub fn has_auth(&self) -> bool {
        !self.tokens.is_empty() || !self.users.is_empty()
    }
}

/// One basic-auth user of the admin listener.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AdminUser {
    pub name: String,
    /// An argon2 hash in PHC form (`$argon2id$v=19$...`), never the password.
    pub password_hash: Secret,
}

/// A value that is never printed: `Debug` and serialization show `<redacted>`.
#[derive(Clone, PartialEq, Eq, Deserialize)]
#[serde(transparent)]
pub struct Secret(pub String);

impl Secret {
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("<redacted>")
    }
}

impl Serialize for Secret {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str("<redacted>")
    }
}

/// `http.limits:` — what one request or one client may take, per listener.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Limits {
    /// Largest request body in bytes; a larger one is answered 413. Default 1048576 (1 MiB).
    pub max_body_bytes: usize,
    /// How long a client may take to send a request's headers before the
    /// connection is closed (slow or idle clients). Default `10s`.
    #[serde(with = "humantime_serde_compat")]
    pub header_read_timeout: Duration,
    /// How long one request may take to be answered before a 503. Default `30s`.
    #[serde(with = "humantime_serde_compat")]
    pub request_timeout: Duration,
    /// Open connections per listener. When full, the oldest connection that
    /// has not sent a request yet is closed to make room; if every one is
    /// busy, new connections wait. Default 1024.
    pub max_connections: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_body_bytes: 1 << 20,
            header_read_timeout: Duration::from_secs(10),
            request_timeout: Duration::from_secs(30),
            max_connections: 1024,
        }
    }
}

/// `filters:` — RapidSMS's filter phase: a filtered message goes nowhere.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Filters {
    /// Identities whose messages are dropped (counted as `dropped{reason="blocked"}`).
    pub blocked: Vec<String>,
}

/// `optout:` — carrier-style opt-out. Each list holds whole-message keywords,
/// matched case-insensitively after trimming (`stop`, ` Stop `, not `stop it`).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct OptOut {
    /// Unsubscribe. Default STOP, STOPALL, UNSUBSCRIBE, CANCEL, END, QUIT.
    pub stop: Vec<String>,
    /// Subscribe again. Default START, UNSTOP.
    pub start: Vec<String>,
    /// Ask for help. Default HELP.
    pub help: Vec<String>,
    /// Answer to a stop keyword (text key `optout.stop`).
    pub stop_reply: String,
    /// Answer to a start keyword (text key `optout.start`).
    pub start_reply: String,
    /// Answer to a help keyword (text key `optout.help`); `{project}` is the project name.
    pub help_reply: String,
}

impl Default for OptOut {
    fn default() -> Self {
        let words = |w: &[&str]| w.iter().map(|s| s.to_string()).collect();
        OptOut {
            stop: words(&["STOP", "STOPALL", "UNSUBSCRIBE", "CANCEL", "END", "QUIT"]),
            start: words(&["START", "UNSTOP"]),
            help: words(&["HELP"]),
            stop_reply: "You have been unsubscribed and will receive no more messages. Reply START to subscribe again.".into(),
            start_reply: "You have been subscribed again. Reply STOP to unsubscribe.".into(),
            help_reply: "{project}: reply STOP to unsubscribe, START to subscribe again.".into(),
        }
    }
}

/// `languages:` — RapidSMS's `LANGUAGES` and `LANGUAGE_CODE`, and every reply text per language.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Languages {
    /// The language of contacts that chose none. Default `en`.
    pub default: String,
    /// The languages a contact can choose with `LANGUAGE <code or name>`. Default English only.
    pub available: Vec<Language>,
    /// Reply texts: `<language>: {<app>.<text>: template}`; a text missing in
    /// a language falls back to the default language, then to the built-in English.
    pub texts: BTreeMap<String, BTreeMap<String, String>>,
    /// YAML files shaped like `texts`, relative to the pipeline file; they add to `texts`.
    pub files: Vec<String>,
}

impl Default for Languages {
    fn default() -> Self {
        Languages {
            default: "en".into(),
            available: vec![Language {
                code: "en".into(),
                name: "English".into(),
            }],
            texts: BTreeMap::new(),
            files: Vec::new(),
        }
    }
}

/// One language: a code (`fr`, `pt-BR`) and its name (`French`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Language {
    pub code: String,
    pub name: String,
}

/// `messagelog:` — RapidSMS's messagelog app.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MessageLog {
    /// Entries the web page can search, per process (the newest kept). The topic keeps them all. Default 100000.
    pub keep: usize,
}

impl Default for MessageLog {
    fn default() -> Self {
        MessageLog { keep: 100_000 }
    }
}

/// `routes:` — one rule. All the conditions given must hold; the first route that matches wins.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Route {
    /// Name shown in metrics and on the routed message. Default: the app's name, or `<app>.<n>`.
    #[serde(default)]
    pub name: Option<String>,
    /// The app that gets the message.
    pub app: String,
    /// RapidSMS KeywordHandler: a regex (`register|reg|join`), case-insensitive, at the start, followed by a separator or the end.
    #[serde(default)]
    pub keyword: Option<String>,
    /// RapidSMS PatternHandler: a regex, case-insensitive, anchored at the start only; named groups become fields.
    #[serde(default)]
    pub pattern: Option<String>,
    /// The whole text, exactly (case-sensitive), as RapidSMS's `ping`.
    #[serde(default)]
    pub exact: Option<String>,
    /// Only messages that came in on this backend.
    #[serde(default)]
    pub backend: Option<String>,
    /// Only identities starting with this (for example a country code `+256`).
    #[serde(default)]
    pub prefix: Option<String>,
}

/// `apps:` — one item per app. The outgoing phase runs them in reverse order.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum App {
    /// `echo <text>` answers `<text>`; its route is the keyword `echo`.
    Echo {
        /// Default `echo`.
        #[serde(default)]
        name: Option<String>,
    },
    /// Exactly `ping` answers `pong`.
    Ping {
        /// Default `ping`.
        #[serde(default)]
        name: Option<String>,
    },
    /// Answers what nothing else matched: `Sorry, <project> could not understand your message.`
    Default {
        /// Default `default`.
        #[serde(default)]
        name: Option<String>,
        /// Reply text; `{project}` is replaced by the project name. `null` answers nothing.
        #[serde(default = "default_response")]
        response: Option<String>,
    },
    /// Not run by a built-in: its topic `sms.app.<name>` is consumed by an
    /// external program, or by a Rust [`crate::apps::App`] registered with
    /// [`crate::topology::Topology::with_app`].
    External {
        name: String,
        /// The trigger routes naming this app without conditions use (as in routes).
        #[serde(default)]
        keyword: Option<String>,
        #[serde(default)]
        pattern: Option<String>,
        #[serde(default)]
        exact: Option<String>,
    },
    /// RapidSMS's registration app: `JOIN <name>` and `LANGUAGE <code or name>`.
    Registration {
        /// Default `registration`.
        #[serde(default)]
        name: Option<String>,
    },
    /// A poll: `<keyword> <choice>` records the contact's answer (one per contact, changeable).
    Poll {
        name: String,
        /// Trigger, a keyword regex as in routes. Default: the poll's name.
        #[serde(default)]
        keyword: Option<String>,
        /// The question (text key `<name>.question`), sent as help and to a group.
        question: String,
        /// The answers, matched case-insensitively.
        choices: Vec<String>,
    },
    /// Keyword, pattern or exact text → a reply template. `{rest}` inserts the
    /// text after the keyword, `{project}` the project name, `{<group>}` a capture.
    Autoresponder {
        name: String,
        /// Trigger: a keyword regex, as in routes. Give one of keyword, pattern, exact.
        #[serde(default)]
        keyword: Option<String>,
        /// Trigger: a pattern regex, as in routes.
        #[serde(default)]
        pattern: Option<String>,
        /// Trigger: the exact text.
        #[serde(default)]
        exact: Option<String>,
        /// The reply template.
        reply: String,
        /// Reply when a keyword has nothing after it. Default: `reply`.
        #[serde(default)]
        help: Option<String>,
    },
}

impl App {
    pub fn name(&self) -> &str {
        match self {
            App::Echo { name } => name.as_deref().unwrap_or("echo"),
            App::Ping { name } => name.as_deref().unwrap_or("ping"),
            App::Default { name, .. } => name.as_deref().unwrap_or("default"),
            App::Registration { name } => name.as_deref().unwrap_or("registration"),
            App::Autoresponder { name, .. }
            | App::External { name, .. }
            | App::Poll { name, .. } => name,
        }
    }

    pub fn type_name(&self) -> &'static str {
        match self {
            App::Echo { .. } => "echo",
            App::Ping { .. } => "ping",
            App::Default { .. } => "default",
            App::Autoresponder { .. } => "autoresponder",
            App::External { .. } => "external",
            App::Registration { .. } => "registration",
            App::Poll { .. } => "poll",
        }
    }
}

fn default_group() -> String {
    "smsflow".into()
}
fn default_capacity() -> usize {
    10_000
}
fn default_response() -> Option<String> {
    Some("Sorry, {project} could not understand your message.".into())
}

/// Durations are written as in `30s`, `1m 30s`, `500ms` (humantime).
pub(crate) mod humantime_serde_compat {
    use std::time::Duration;

    pub fn serialize<S: serde::Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&humantime::format_duration(*d).to_string())
    }

    pub fn deserialize<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        let text = <String as serde::Deserialize>::deserialize(d)?;
        humantime::parse_duration(&text).map_err(|e| {
            serde::de::Error::custom(format!(
                "{text:?} is not a duration ({e}): expected for example 30s, 1m 30s, 500ms"
            ))
        })
    }
}
