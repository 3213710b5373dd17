//! The pipeline file's types: plain data, one `///` comment per field. The
//! JSON Schema (`schemas/pipeline.schema.json`) and the reference
//! (`docs/pipeline-reference.md`) are generated from these comments and the
//! `Default` impls ([`super::schema`]), so a default is written once, in code.
//! Nothing here opens a socket.
//!
//! The sections with more to them live in their own files and are
//! re-exported here: [`super::kafka`] (`kafka:`, `topics:`), [`super::http`]
//! (`http:`) and [`super::backends`] (`backends:`).

use std::collections::BTreeMap;
use std::time::Duration;

use schemars::{json_schema, JsonSchema, Schema};
use serde::{Deserialize, Serialize};

pub use super::analytics::*;
use super::backends::Backend;
pub use super::export::*;
pub use super::http::*;
pub use super::kafka::*;
use super::value::{humantime_serde_compat, HumanDuration};

/// Routes a pipeline may have unless its `max_routes` says more: far more
/// than hand-written tables have, few enough that a generated table gone
/// wrong is caught before every router compiles it.
pub const DEFAULT_MAX_ROUTES: usize = 10_000;

/// A whole pipeline file. Every string may be written with `${VAR}` or
/// `${VAR:-default}`: the value of the environment variable is put in
/// before the file is read.
//
// Not `Deserialize`: `config::Reader` reads it section by section (to report
// every error); the `schemars` attributes tell the schema what it accepts.
#[derive(Debug, Clone, Serialize, JsonSchema)]
#[schemars(deny_unknown_fields, transform = complete_pipeline_schema)]
pub struct Pipeline {
    /// Shown in replies such as the default app's (RapidSMS `PROJECT_NAME`).
    #[schemars(default = "default_project")]
    pub project: String,
    /// The bus: `embedded` (in-process, not durable unless given a
    /// `data_dir`), `mock` (librdkafka's mock cluster, tests only) or a
    /// mapping (`mode: kafka` and `brokers` for a Kafka cluster).
    #[schemars(schema_with = "kafka_section")]
    pub kafka: Kafka,
    /// Topic names and partitions.
    #[schemars(default)]
    pub topics: Topics,
    /// The HTTP server: tester pages, webhooks, `/metrics`, `/healthz`, `/readyz`.
    #[schemars(default)]
    pub http: Http,
    /// Inbound filters (RapidSMS's `filter` phase).
    #[schemars(default)]
    pub filters: Filters,
    /// Opt-out keywords (STOP, START, HELP), handled before any app. Off
    /// unless the section is given; `optout:` alone (or `{}`) turns it on
    /// with every setting at its default.
    pub optout: Option<OptOut>,
    /// The languages contacts can choose, and the reply texts in each.
    #[schemars(default)]
    pub languages: Languages,
    /// The message log: every inbound and outbound message on `topics.log`.
    /// Off unless the section is given; `messagelog:` alone (or `{}`) turns
    /// it on with every setting at its default.
    pub messagelog: Option<MessageLog>,
    /// Bulk campaigns: the `campaign` stage, each backend's bulk lane,
    /// prices for the cost estimate. Off unless the section is given;
    /// `campaigns:` alone (or `{}`) turns them on with every setting at its
    /// default.
    pub campaigns: Option<Campaigns>,
    /// Statistics: the `analytics` stage counts messages in event-time
    /// windows (per backend, app, keyword and campaign) and writes them to
    /// `topics.stats`. Off unless the section is given; `analytics:` alone
    /// (or `{}`) turns it on with every setting at its default.
    pub analytics: Option<Analytics>,
    /// Topics to Parquet or Avro files, exactly once: the `export` stage.
    /// Off unless the section is given.
    pub export: Option<Export>,
    /// Backends (providers), each a source and a sink.
    pub backends: Vec<Backend>,
    /// The route table, first match wins.
    #[schemars(default)]
    pub routes: Vec<Route>,
    /// The app that answers what no route matched (RapidSMS's `default`
    /// phase). Default: the app named `default`, if any; without one,
    /// unmatched messages are dropped (`smsflow_dropped_total{reason="unrouted"}`).
    pub default_app: Option<String>,
    /// Apps that see every inbound message, matched or not (after filtering).
    #[schemars(default)]
    pub taps: Vec<String>,
    /// The apps, in order: the outgoing phase runs them in reverse.
    pub apps: Vec<App>,
    /// Apps run inside the router (in) instead of as stages of their own:
    /// `false`, `true` (every app this process runs) or a list of names
    /// (about twice the throughput on Kafka).
    #[schemars(default)]
    pub chain: Chain,
    /// How long a graceful shutdown may take before stages are stopped hard.
    #[serde(with = "humantime_serde_compat")]
    #[schemars(with = "HumanDuration", default = "default_shutdown_timeout")]
    pub shutdown_timeout: Duration,
}

/// `project:` when the file gives none.
pub fn default_project() -> String {
    "RapidSMS".into()
}

/// `shutdown_timeout:` when the file gives none.
pub fn default_shutdown_timeout() -> Duration {
    Duration::from_secs(30)
}

/// What the derived schema cannot know: `kafka:` may be left out (its
/// schema is written by hand, [`kafka_section`]), and `max_routes:`, read
/// before the route table (it bounds the work of reading it) and kept nowhere.
fn complete_pipeline_schema(schema: &mut Schema) {
    if let Some(required) = schema
        .get_mut("required")
        .and_then(serde_json::Value::as_array_mut)
    {
        required.retain(|key| key != "kafka");
    }
    let max_routes = json_schema!({
        "description": "Routes the table may have, at most: a generated table gone wrong is caught before every router compiles it. Raise it if the table is meant to be this big.",
        "type": "integer",
        "format": "uint",
        "minimum": 0,
        "default": DEFAULT_MAX_ROUTES
    });
    if let Some(properties) = schema
        .get_mut("properties")
        .and_then(serde_json::Value::as_object_mut)
    {
        properties.insert("max_routes".into(), max_routes.into());
    }
}

/// `chain:` — which apps are chained into the router (in): the router runs
/// them and their replies' outgoing phase in the same step, in memory, and
/// writes `sms.send.<backend>` directly. Two Kafka hops fewer per message,
/// with the same guarantees (the input offset is stored once those outputs
/// are acknowledged; reply ids are still derived). What changes:
/// `sms.app.<app>` and `sms.outbound` do not carry the chained messages, a
/// chained app scales with the router, and its failures are counted under
/// `app:<name>`; a reply the outgoing phase rejects is dead-lettered with
/// stage `router-out` and source topic `sms.outbound` (so `dlq replay` puts
/// it where router (out) reads). `router-out` still runs, for what other
/// producers write to `sms.outbound`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, JsonSchema)]
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

/// `campaigns:` — bulk campaigns.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct Campaigns {
    /// The region (ISO 3166 alpha-2, `KE`) national numbers of an audience
    /// are read in: `0712345678` becomes `+254712345678`. Without one only
    /// international numbers (`+254…`, `00254…`) are valid.
    pub region: Option<String>,
    /// The time zone of recipients whose own is not known (a number of a
    /// country with several zones, and no `timezone` column), for quiet
    /// hours; campaigns may set their own.
    pub timezone: String,
    /// Recipients per record of the frozen audience (`sms.campaigns.audience`).
    pub chunk: usize,
    /// Messages a campaign hands its backend ahead of what the backend has
    /// sent, at most: the bulk lane never holds more, so a pause or a
    /// cancel takes effect at once and a reply waits behind no more than
    /// these.
    pub max_pending: usize,
    /// Price per segment of each backend, for the cost estimate; a backend
    /// not listed costs 0.
    pub prices: BTreeMap<String, Price>,
    /// Largest audience upload (the request to preview or start a
    /// campaign, on the admin listener), in bytes; other requests keep
    /// `http.limits.max_body_bytes`.
    pub max_upload_bytes: usize,
}

impl Default for Campaigns {
    fn default() -> Self {
        Campaigns {
            region: None,
            timezone: "UTC".into(),
            chunk: 1000,
            max_pending: 100,
            prices: BTreeMap::new(),
            max_upload_bytes: 64 << 20,
        }
    }
}

/// What one segment costs on a backend.
#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct Price {
    /// Per segment, to any number.
    pub segment: f64,
    /// Per segment to numbers starting with a prefix (`"+254": 0.004`);
    /// the longest matching prefix wins.
    pub prefixes: BTreeMap<String, f64>,
}

/// `filters:` — RapidSMS's filter phase: a filtered message goes nowhere.
#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct Filters {
    /// Identities whose messages are dropped (counted as `dropped{reason="blocked"}`).
    pub blocked: Vec<String>,
}

/// `optout:` — carrier-style opt-out. Each list holds whole-message keywords,
/// matched case-insensitively after trimming (`stop`, ` Stop `, not `stop it`).
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct OptOut {
    /// Unsubscribe.
    pub stop: Vec<String>,
    /// Subscribe again.
    pub start: Vec<String>,
    /// Ask for help.
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
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct Languages {
    /// The language of contacts that chose none.
    pub default: String,
    /// The languages a contact can choose with `LANGUAGE <code or name>`.
    pub available: Vec<Language>,
    /// Reply texts: `<language>: {<app>.<text>: template}`; a text missing in
    /// a language falls back to the default language, then to the built-in English.
    pub texts: BTreeMap<String, BTreeMap<String, String>>,
    /// YAML files shaped like `texts`, relative to the pipeline file and
    /// inside its directory (no absolute path, no `..` or symlink out), at
    /// most 1 MiB each; they add to `texts`.
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
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Language {
    /// What contacts send after `LANGUAGE`, and the key of its `texts`: `fr`, `pt-BR`.
    pub code: String,
    /// Its name, which contacts may send instead: `French`.
    pub name: String,
}

/// `messagelog:` — RapidSMS's messagelog app.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct MessageLog {
    /// Entries the web page can search, per process (the newest kept). The topic keeps them all.
    pub keep: usize,
}

impl Default for MessageLog {
    fn default() -> Self {
        MessageLog { keep: 100_000 }
    }
}

/// `routes:` — one rule. All the conditions given must hold; the first route
/// that matches wins. Give at most one of `keyword`, `pattern`, `exact`; a
/// route with none takes its app's own trigger: `echo` → keyword `echo`,
/// `ping` → exact `ping`, an autoresponder or external app → its
/// `keyword`/`pattern`/`exact`.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Route {
    /// Name shown in metrics, logs and on the routed message. Default: the app's name, or `<app>.<n>`.
    #[serde(default)]
    pub name: Option<String>,
    /// The app that gets the message.
    pub app: String,
    /// RapidSMS KeywordHandler: a regex (`register|reg|join`), case-insensitive, at the start, followed by a separator or the end.
    #[serde(default)]
    pub keyword: Option<String>,
    /// RapidSMS PatternHandler: a regex, case-insensitive, anchored at the start only; named and numbered groups become `captures`.
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
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum App {
    /// `echo <text>` answers `<text>`; a bare `echo` answers `To echo some
    /// text, send: ECHO <ANYTHING>`. Its route is the keyword `echo`.
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
    /// Answers what nothing else matched, with `response`.
    Default {
        /// Default `default`.
        #[serde(default)]
        name: Option<String>,
        /// Reply text; `{project}` is replaced by the project name. `null` answers nothing.
        #[serde(default = "default_response")]
        response: Option<String>,
    },
    /// Not run by a built-in: its topic `sms.app.<name>` is consumed by an
    /// external program (with the Avro schemas in `schemas/`), or by a Rust
    /// app registered with `Topology::with_app`.
    External {
        /// The app's name: its topic is `sms.app.<name>`.
        name: String,
        /// Trigger of routes naming this app without conditions: a keyword regex, as in routes.
        #[serde(default)]
        keyword: Option<String>,
        /// Trigger of routes naming this app without conditions: a pattern regex, as in routes.
        #[serde(default)]
        pattern: Option<String>,
        /// Trigger of routes naming this app without conditions: the exact text.
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
        /// The poll's name (answers are kept under it).
        name: String,
        /// Trigger, a keyword regex as in routes. Default: the poll's name.
        #[serde(default)]
        keyword: Option<String>,
        /// The question (text key `<name>.question`), sent as help and to a group.
        question: String,
        /// The answers, one word each, at least two, matched case-insensitively.
        choices: Vec<String>,
    },
    /// Keyword, pattern or exact text → a reply template. `{rest}` inserts the
    /// text after the keyword, `{project}` the project name, `{<group>}` a
    /// capture, `{{` and `}}` a brace; placeholders are checked against the trigger.
    Autoresponder {
        /// The app's name.
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

fn default_response() -> Option<String> {
    Some("Sorry, {project} could not understand your message.".into())
}
