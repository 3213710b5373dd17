//! The pipeline file's types: plain data, one `///` comment per field (the
//! reference docs in the README follow them). Nothing here opens a socket.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::Duration;

use serde::{Deserialize, Serialize};

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
    /// Embedded bus: records a partition holds before producers wait.
    #[serde(default = "default_capacity")]
    pub partition_capacity: usize,
}

impl Kafka {
    pub fn with_mode(mode: KafkaMode) -> Kafka {
        Kafka {
            mode,
            brokers: None,
            group: default_group(),
            config: BTreeMap::new(),
            partition_capacity: default_capacity(),
        }
    }
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

/// `http:`
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Http {
    /// Address to listen on. Default `127.0.0.1:8080`; use `0.0.0.0:8080` in a container.
    pub listen: SocketAddr,
    /// How long a source waits for the bus to store an inbound message before
    /// answering 503 (so the provider retries). Default `10s`.
    #[serde(with = "humantime_serde_compat")]
    pub accept_timeout: Duration,
    /// The URL providers reach this server at, behind any proxy (delivery
    /// report and status callback URLs are built on it, and Twilio signs
    /// it). Default `http://<listen>`.
    pub public_url: Option<String>,
}

impl Http {
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

/// `backends:` — one item per provider connection.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum Backend {
    /// RapidSMS's message tester: chat as any phone number from a web page or JSON API.
    Tester {
        /// Backend name, the `backend` of its connections. Default `message_tester`.
        #[serde(default = "default_tester_name")]
        name: String,
        /// Messages kept per phone number for the page and the API. Default 200.
        #[serde(default = "default_history")]
        history: usize,
    },
    /// A generic HTTP gateway. Inbound as RapidSMS's generic HTTP backend:
    /// `GET` or `POST /backend/<name>/` with `identity` and `text` (names
    /// configurable) → `200 OK`. Outbound: one request per message to the
    /// `url` template; delivery reports `POST /backend/<name>/status`.
    Http {
        name: String,
        /// Where each outbound message goes: a URL template whose `{id}`,
        /// `{identity}`, `{text}`, `{encoding}`, `{segments}` and
        /// `{in_response_to}` are replaced, URL-encoded.
        url: String,
        /// `post` (default): a JSON body; `get`: the URL template alone.
        #[serde(default)]
        method: HttpMethod,
        /// Inbound parameter names (RapidSMS's `params`).
        #[serde(default)]
        params: HttpParams,
        #[serde(default)]
        send: Sending,
        #[serde(default)]
        receive: Receiving,
    },
    /// Accepts inbound messages like the generic HTTP backend and discards
    /// what it should send (counted, with no delivery events): for load tests
    /// and dry runs.
    Discard { name: String },
    /// Kannel's smsbox: inbound through its `get-url`, outbound through
    /// `/cgi-bin/sendsms`, delivery reports through a `dlr-url` that carries
    /// the message id.
    Kannel {
        /// Default `kannel`.
        #[serde(default = "default_kannel_name")]
        name: String,
        /// smsbox's sendsms URL. Default `http://127.0.0.1:13013/cgi-bin/sendsms`.
        #[serde(default = "default_sendsms_url")]
        sendsms_url: String,
        /// A `sendsms-user` group's `username`.
        username: String,
        /// Its `password`.
        password: String,
        /// The sender (`from`); Kannel refuses a message without one unless a global sender is set.
        #[serde(default)]
        from: Option<String>,
        /// The `smsc` to send through (for example the `smsc-id` a message came in on).
        #[serde(default)]
        smsc: Option<String>,
        /// Which delivery reports Kannel sends: 1 delivered, 2 failed, 4 buffered, 8 SMSC accepted, 16 SMSC rejected. Default 31 (all); 0 asks for none.
        #[serde(default = "default_dlr_mask")]
        dlr_mask: u8,
        #[serde(default)]
        send: Sending,
        #[serde(default)]
        receive: Receiving,
    },
    /// Twilio's Programmable Messaging: an inbound webhook and status
    /// callbacks (both checked with `X-Twilio-Signature`), outbound through
    /// the Messages API.
    Twilio {
        /// Default `twilio`.
        #[serde(default = "default_twilio_name")]
        name: String,
        /// `AC...`
        account_sid: String,
        /// Signs webhooks and authenticates API calls.
        auth_token: String,
        /// The sender number; give this or `messaging_service_sid`.
        #[serde(default)]
        from: Option<String>,
        /// `MG...`: send through a Messaging Service instead of one number.
        #[serde(default)]
        messaging_service_sid: Option<String>,
        /// Default `https://api.twilio.com`.
        #[serde(default = "default_twilio_api")]
        api_url: String,
        /// Refuse webhooks without a valid `X-Twilio-Signature` (403). Default true.
        #[serde(default = "default_true")]
        validate: bool,
        #[serde(default)]
        send: Sending,
        #[serde(default)]
        receive: Receiving,
    },
    /// Clickatell's Platform REST API: `POST /messages` with an API key,
    /// inbound (MO) and message-status callbacks as JSON.
    Clickatell {
        /// Default `clickatell`.
        #[serde(default = "default_clickatell_name")]
        name: String,
        /// The integration's API key (sent as the `Authorization` header).
        api_key: String,
        /// The sender (a two-way number); optional for one-way integrations.
        #[serde(default)]
        from: Option<String>,
        /// Default `https://platform.clickatell.com`.
        #[serde(default = "default_clickatell_api")]
        api_url: String,
        /// Recipients of one text sent in one request, at most. Default 100.
        #[serde(default = "default_batch")]
        batch: usize,
        #[serde(default)]
        send: Sending,
        #[serde(default)]
        receive: Receiving,
    },
    /// Vumi's HTTP API (RapidSMS's `VumiBackend`): inbound messages and
    /// events (ack, nack, delivery_report) POSTed as JSON; outbound JSON to
    /// `sendsms_url`.
    Vumi {
        /// Default `vumi`.
        #[serde(default = "default_vumi_name")]
        name: String,
        /// Where outbound messages are POSTed.
        sendsms_url: String,
        /// HTTP basic auth for `sendsms_url` (both or neither).
        #[serde(default)]
        sendsms_user: Option<String>,
        #[serde(default)]
        sendsms_pass: Option<String>,
        /// Extra keys added to every outbound payload (RapidSMS's `sendsms_params`).
        #[serde(default)]
        sendsms_params: BTreeMap<String, String>,
        #[serde(default)]
        send: Sending,
        #[serde(default)]
        receive: Receiving,
    },
}

impl Backend {
    pub fn name(&self) -> &str {
        match self {
            Backend::Tester { name, .. }
            | Backend::Http { name, .. }
            | Backend::Discard { name }
            | Backend::Kannel { name, .. }
            | Backend::Twilio { name, .. }
            | Backend::Clickatell { name, .. }
            | Backend::Vumi { name, .. } => name,
        }
    }

    /// How the sink sends, for backends that call a provider.
    pub fn sending(&self) -> Option<&Sending> {
        match self {
            Backend::Tester { .. } | Backend::Discard { .. } => None,
            Backend::Http { send, .. }
            | Backend::Kannel { send, .. }
            | Backend::Twilio { send, .. }
            | Backend::Clickatell { send, .. }
            | Backend::Vumi { send, .. } => Some(send),
        }
    }

    /// How the source receives, for backends that take webhooks.
    pub fn receiving(&self) -> Option<&Receiving> {
        match self {
            Backend::Tester { .. } | Backend::Discard { .. } => None,
            Backend::Http { receive, .. }
            | Backend::Kannel { receive, .. }
            | Backend::Twilio { receive, .. }
            | Backend::Clickatell { receive, .. }
            | Backend::Vumi { receive, .. } => Some(receive),
        }
    }
}

/// `method:` of the generic HTTP backend's outbound requests.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum HttpMethod {
    #[default]
    Post,
    Get,
}

/// `params:` — the generic HTTP backend's inbound parameter names.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct HttpParams {
    /// Default `identity`.
    pub identity: String,
    /// Default `text`.
    pub text: String,
    /// The provider's message id, used to drop repeats (optional). Default `id`.
    pub id: String,
}

impl Default for HttpParams {
    fn default() -> Self {
        HttpParams {
            identity: "identity".into(),
            text: "text".into(),
            id: "id".into(),
        }
    }
}

/// `send:` — how a backend's sink calls its provider.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Sending {
    /// Messages per second, at most (a token bucket: messages wait, never dropped). Default: no limit.
    pub rate: Option<f64>,
    /// SMS segments per second, at most (operators count parts). Default: no limit.
    pub segment_rate: Option<f64>,
    /// Provider requests in flight at once. Default 4.
    pub concurrency: usize,
    /// Per request. Default `10s`.
    #[serde(with = "humantime_serde_compat")]
    pub timeout: Duration,
    /// Tries for a transient failure (timeout, no connection, 5xx, 429). Default 5.
    pub attempts: u32,
    /// Wait before the second try, doubled for each next one, with jitter. Default `500ms`.
    #[serde(with = "humantime_serde_compat")]
    pub backoff: Duration,
    /// The longest wait between tries (a `Retry-After` is honoured up to this). Default `1m`.
    #[serde(with = "humantime_serde_compat")]
    pub max_backoff: Duration,
}

impl Default for Sending {
    fn default() -> Self {
        Sending {
            rate: None,
            segment_rate: None,
            concurrency: 4,
            timeout: Duration::from_secs(10),
            attempts: 5,
            backoff: Duration::from_millis(500),
            max_backoff: Duration::from_secs(60),
        }
    }
}

/// `receive:` — how a backend's source takes messages in.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Receiving {
    /// A country (ISO 3166 code, such as `TZ` or `US`) whose national numbers
    /// are rewritten to E.164 (`0712 345 678` → `+255712345678`); the number
    /// as received is kept in the field `raw_identity`. Default: none (numbers
    /// only lose spaces, dashes and a leading `00`).
    pub country: Option<String>,
    /// A message whose provider id was seen within this window is answered
    /// as accepted but not stored again. Default `10m`.
    #[serde(with = "humantime_serde_compat")]
    pub dedupe_window: Duration,
}

impl Default for Receiving {
    fn default() -> Self {
        Receiving {
            country: None,
            dedupe_window: Duration::from_secs(600),
        }
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
            App::Autoresponder { name, .. } | App::External { name, .. } => name,
        }
    }

    pub fn type_name(&self) -> &'static str {
        match self {
            App::Echo { .. } => "echo",
            App::Ping { .. } => "ping",
            App::Default { .. } => "default",
            App::Autoresponder { .. } => "autoresponder",
            App::External { .. } => "external",
        }
    }
}

fn default_group() -> String {
    "smsflow".into()
}
fn default_capacity() -> usize {
    10_000
}
fn default_tester_name() -> String {
    "message_tester".into()
}
fn default_history() -> usize {
    200
}
fn default_kannel_name() -> String {
    "kannel".into()
}
fn default_sendsms_url() -> String {
    "http://127.0.0.1:13013/cgi-bin/sendsms".into()
}
fn default_dlr_mask() -> u8 {
    31
}
fn default_twilio_name() -> String {
    "twilio".into()
}
fn default_twilio_api() -> String {
    "https://api.twilio.com".into()
}
fn default_true() -> bool {
    true
}
fn default_clickatell_name() -> String {
    "clickatell".into()
}
fn default_clickatell_api() -> String {
    "https://platform.clickatell.com".into()
}
fn default_batch() -> usize {
    100
}
fn default_vumi_name() -> String {
    "vumi".into()
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
