//! The pipeline file's `backends:` section: each backend's keys, and the
//! `send:` / `receive:` settings provider backends share.

use std::collections::BTreeMap;
use std::time::Duration;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::value::{humantime_serde_compat, or_interpolated, HumanDuration};

/// The placeholders the generic HTTP backend's `url` template may use
/// (`backends::generic_http` fills them in).
pub const HTTP_URL_PLACEHOLDERS: [&str; 6] = [
    "id",
    "identity",
    "text",
    "encoding",
    "segments",
    "in_response_to",
];

/// `backends:` — one item per provider connection.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum Backend {
    /// RapidSMS's message tester: chat as any phone number from a web page or JSON API.
    Tester {
        /// Backend name, the `backend` of its connections.
        #[serde(default = "default_tester_name")]
        name: String,
        /// Messages kept per phone number for the page and the API.
        #[serde(default = "default_history")]
        history: usize,
    },
    /// A generic HTTP gateway. Inbound as RapidSMS's generic HTTP backend:
    /// `GET` or `POST /backend/<name>/` with `identity` and `text` (names
    /// configurable) → `200 OK`. Outbound: one request per message to the
    /// `url` template; delivery reports `POST /backend/<name>/status`.
    Http {
        /// Backend name, the `backend` of its connections.
        name: String,
        /// Where each outbound message goes: a URL template whose `{id}`,
        /// `{identity}`, `{text}`, `{encoding}`, `{segments}` and
        /// `{in_response_to}` are replaced, URL-encoded.
        url: String,
        /// `post`: a JSON body; `get`: the URL template alone.
        #[serde(default)]
        method: HttpMethod,
        /// Inbound parameter names (RapidSMS's `params`).
        #[serde(default)]
        params: HttpParams,
        /// How the sink calls the provider: rate, concurrency, retries, TLS.
        #[serde(default)]
        send: Sending,
        /// How the source takes webhooks in: credentials, limits, number format.
        #[serde(default)]
        receive: Receiving,
    },
    /// Accepts inbound messages like the generic HTTP backend (`GET`/`POST
    /// /backend/<name>/` with `identity` and `text`) and discards what it
    /// should send: it counts each message
    /// (`smsflow_received_total{stage="backend:<name>"}`,
    /// `smsflow_reply_seconds{backend="<name>"}`) and writes no event. For
    /// load tests and dry runs (`pipelines/loadtest.yaml`).
    Discard {
        /// Backend name, the `backend` of its connections.
        name: String,
        /// Webhook credentials and inbound limits, as for the generic HTTP backend.
        #[serde(default)]
        receive: Receiving,
    },
    /// Kannel's smsbox: inbound through its `get-url`, outbound through
    /// `/cgi-bin/sendsms`, delivery reports through a `dlr-url` that carries
    /// the message id (and `receive.secret`, which the `get-url` carries too).
    Kannel {
        /// Backend name, the `backend` of its connections.
        #[serde(default = "default_kannel_name")]
        name: String,
        /// smsbox's sendsms URL.
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
        /// Which delivery reports Kannel sends: 1 delivered, 2 failed, 4 buffered, 8 SMSC accepted, 16 SMSC rejected. 31 is all of them; 0 asks for none.
        #[serde(default = "default_dlr_mask")]
        dlr_mask: u8,
        /// How the sink calls the provider: rate, concurrency, retries, TLS.
        #[serde(default)]
        send: Sending,
        /// How the source takes webhooks in: credentials, limits, number format.
        #[serde(default)]
        receive: Receiving,
    },
    /// Twilio's Programmable Messaging: an inbound webhook and status
    /// callbacks (both checked with `X-Twilio-Signature`), outbound through
    /// the Messages API.
    Twilio {
        /// Backend name, the `backend` of its connections.
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
        /// The API's base URL (another for a test double).
        #[serde(default = "default_twilio_api")]
        api_url: String,
        /// Refuse webhooks without a valid `X-Twilio-Signature` (403).
        #[serde(default = "default_true")]
        validate: bool,
        /// How the sink calls the provider: rate, concurrency, retries, TLS.
        #[serde(default)]
        send: Sending,
        /// How the source takes webhooks in: credentials, limits, number format.
        #[serde(default)]
        receive: Receiving,
    },
    /// Clickatell's Platform REST API: `POST /messages` with an API key,
    /// inbound (MO) and message-status callbacks as JSON.
    Clickatell {
        /// Backend name, the `backend` of its connections.
        #[serde(default = "default_clickatell_name")]
        name: String,
        /// The integration's API key (sent as the `Authorization` header).
        api_key: String,
        /// The sender (a two-way number); optional for one-way integrations.
        #[serde(default)]
        from: Option<String>,
        /// The API's base URL (another for a test double).
        #[serde(default = "default_clickatell_api")]
        api_url: String,
        /// Recipients of one text sent in one request, at most.
        #[serde(default = "default_batch")]
        batch: usize,
        /// How the sink calls the provider: rate, concurrency, retries, TLS.
        #[serde(default)]
        send: Sending,
        /// How the source takes webhooks in: credentials, limits, number format.
        #[serde(default)]
        receive: Receiving,
    },
    /// Vumi's HTTP API (RapidSMS's `VumiBackend`): inbound messages and
    /// events (ack, nack, delivery_report) POSTed as JSON; outbound JSON to
    /// `sendsms_url`.
    Vumi {
        /// Backend name, the `backend` of its connections.
        #[serde(default = "default_vumi_name")]
        name: String,
        /// Where outbound messages are POSTed.
        sendsms_url: String,
        /// HTTP basic auth for `sendsms_url` (both or neither).
        #[serde(default)]
        sendsms_user: Option<String>,
        /// The password for `sendsms_user`.
        #[serde(default)]
        sendsms_pass: Option<String>,
        /// Extra keys added to every outbound payload (RapidSMS's `sendsms_params`).
        #[serde(default)]
        sendsms_params: BTreeMap<String, String>,
        /// How the sink calls the provider: rate, concurrency, retries, TLS.
        #[serde(default)]
        send: Sending,
        /// How the source takes webhooks in: credentials, limits, number format.
        #[serde(default)]
        receive: Receiving,
    },
    /// A GSM modem on a serial port (AT commands, PDU mode).
    Modem(ModemBackend),
}

impl Backend {
    pub fn name(&self) -> &str {
        match self {
            Backend::Tester { name, .. }
            | Backend::Http { name, .. }
            | Backend::Discard { name, .. }
            | Backend::Kannel { name, .. }
            | Backend::Twilio { name, .. }
            | Backend::Clickatell { name, .. }
            | Backend::Vumi { name, .. } => name,
            Backend::Modem(m) => &m.name,
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
            Backend::Modem(m) => Some(&m.send),
        }
    }

    /// How the source receives, for backends that take webhooks.
    pub fn receiving(&self) -> Option<&Receiving> {
        match self {
            Backend::Tester { .. } | Backend::Modem(_) => None,
            Backend::Http { receive, .. }
            | Backend::Discard { receive, .. }
            | Backend::Kannel { receive, .. }
            | Backend::Twilio { receive, .. }
            | Backend::Clickatell { receive, .. }
            | Backend::Vumi { receive, .. } => Some(receive),
        }
    }
}

/// `method:` of the generic HTTP backend's outbound requests.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
#[schemars(transform = or_interpolated)]
pub enum HttpMethod {
    /// A `POST` with the message as a JSON body.
    #[default]
    Post,
    /// A `GET` of the URL template alone.
    Get,
}

/// `params:` — the generic HTTP backend's inbound parameter names.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct HttpParams {
    /// The sender's phone number.
    pub identity: String,
    /// The message text.
    pub text: String,
    /// The provider's message id, used to drop repeats (optional in requests).
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
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct Sending {
    /// Messages per second, at most: a token bucket of one token, so requests
    /// are spaced evenly; messages wait, never dropped. The backend's rate,
    /// shared by its replicas (each takes its share of the partitions) and
    /// by both lanes (replies first, then campaigns). Default: no limit.
    pub rate: Option<f64>,
    /// SMS segments per second, at most (operators count parts), shared as
    /// `rate` is. Default: no limit.
    pub segment_rate: Option<f64>,
    /// Provider requests in flight at once.
    pub concurrency: usize,
    /// How long one provider request may take.
    #[serde(with = "humantime_serde_compat")]
    #[schemars(with = "HumanDuration")]
    pub timeout: Duration,
    /// Tries for a transient failure (timeout, no connection, 408, 429, 5xx).
    pub attempts: u32,
    /// Wait before the second try, doubled for each next one up to
    /// `max_backoff`, with equal jitter (half fixed, half random); a
    /// `Retry-After` (seconds or HTTP date) replaces it, up to `max_backoff`.
    #[serde(with = "humantime_serde_compat")]
    #[schemars(with = "HumanDuration")]
    pub backoff: Duration,
    /// The longest wait between tries (a `Retry-After` is honoured up to this).
    #[serde(with = "humantime_serde_compat")]
    #[schemars(with = "HumanDuration")]
    pub max_backoff: Duration,
    /// A PEM file of root certificates trusted for the provider's `https://`
    /// URL besides the system's (a private provider, a company CA). A path
    /// relative to the working directory. Default: the system's roots only.
    pub ca_file: Option<String>,
    /// Allow a plain `http://` provider URL to a host that is not loopback
    /// (credentials and texts then cross the network unencrypted).
    pub allow_insecure: bool,
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
            ca_file: None,
            allow_insecure: false,
        }
    }
}

/// `receive:` — how a backend's source takes messages in.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct Receiving {
    /// A country (ISO 3166 code, such as `TZ`, `KE` or `US`) whose national
    /// numbers, and international ones without `+`, are rewritten to E.164
    /// (`0712 345 678` → `+255712345678`, by libphonenumber's metadata); the
    /// number as received is kept in the field `raw_identity`. Short codes
    /// (5 digits or fewer) and numbers libphonenumber does not know as valid
    /// are kept as cleaned. Default: none (numbers only lose spaces, `-`,
    /// `.`, `()` and a leading `00`, which becomes `+`).
    pub country: Option<String>,
    /// A message whose provider id (Kannel `%I`, Twilio `MessageSid`,
    /// Clickatell `messageId`, Vumi `message_id`, generic `id`) was stored
    /// within this window is answered as accepted but not stored again.
    #[serde(with = "humantime_serde_compat")]
    #[schemars(with = "HumanDuration")]
    pub dedupe_window: Duration,
    /// A shared secret the provider sends with every webhook: in the URL's
    /// query as `secret=...` (what Kannel's `get-url` can carry; the
    /// `dlr-url` smsflow builds carries it too) or in an `X-Smsflow-Secret`
    /// header. At least 16 characters, letters, digits and `-._~` only (it
    /// goes into URLs as it is). Give it through `${VAR}`.
    pub secret: Option<String>,
    /// HTTP basic auth the provider sends with every webhook (Vumi's
    /// `https://user:pass@host/...` URLs, Clickatell's callback
    /// credentials): the user name; give `password` with it.
    pub username: Option<String>,
    /// The basic auth password. Give it through `${VAR}`.
    pub password: Option<String>,
    /// Accept webhooks that carry no secret, basic auth or provider key.
    /// Only for a listener no one else can reach (loopback, a private
    /// network): anyone who reaches it can inject messages and delivery
    /// reports. Only with a loopback `http.listen`. When false, a backend
    /// whose webhooks have no credentials fails validation.
    pub insecure: bool,
    /// The longest text accepted, in characters (longer: `413`).
    pub max_text: usize,
    /// The longest id accepted (the provider's message id, our message id
    /// in a delivery report), in bytes (longer: `400` naming the field).
    pub max_id: usize,
    /// The longest phone number accepted as given, formatting included, in
    /// bytes (longer: `400`).
    pub max_identity: usize,
    /// The longest value of any other field kept on a message or report (the
    /// provider's `to`, `smsc`, status text, ...), in bytes (longer: `400`
    /// naming the field).
    pub max_field: usize,
}

impl Default for Receiving {
    fn default() -> Self {
        Receiving {
            country: None,
            dedupe_window: Duration::from_secs(600),
            secret: None,
            username: None,
            password: None,
            insecure: false,
            max_text: 4000,
            max_id: 256,
            max_identity: 64,
            max_field: 1024,
        }
    }
}

impl Receiving {
    /// Whether any webhook credential (secret, username or password) is given.
    pub fn has_credentials(&self) -> bool {
        self.secret.is_some() || self.username.is_some() || self.password.is_some()
    }
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

/// A GSM modem on a serial port, spoken to with AT commands in PDU mode
/// (3GPP TS 27.005): one stage per device, as one process may open it.
/// Inbound messages are stored on `sms.inbound` before they are deleted
/// from the modem; long ones are reassembled; delivery reports become
/// events. See docs/backends/modem.md.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ModemBackend {
    /// Backend name, the `backend` of its connections.
    #[serde(default = "modem_name")]
    pub name: String,
    /// The serial device: `/dev/ttyUSB0`, or better a name that survives
    /// re-plugging, such as `/dev/serial/by-id/usb-HUAWEI_...-if00-port0`.
    pub port: String,
    /// The port's speed (bits per second).
    #[serde(default = "modem_baud")]
    pub baud: u32,
    /// The SIM's PIN, entered once when the SIM asks for it (give it as
    /// `${MODEM_PIN}`). A PIN the SIM refuses is never tried again on its
    /// own: a third wrong one locks the SIM. Empty: none.
    #[serde(default)]
    pub pin: Option<String>,
    /// The modem's vendor quirks: `generic`, `huawei`, `wavecom`, `siemens`.
    #[serde(default)]
    pub profile: super::modem::Profile,
    /// Where messages are stored (`AT+CPMS`): `SM` (SIM), `ME` (modem), `MT` (both).
    #[serde(default = "modem_storage")]
    pub storage: String,
    /// The service centre number to set (`AT+CSCA`); default: the SIM's.
    #[serde(default)]
    pub smsc: Option<String>,
    /// More AT commands sent at the end of the init, each must answer `OK`.
    #[serde(default)]
    pub init: Vec<String>,
    /// A country (ISO 3166 code) whose national numbers from the network
    /// are rewritten to E.164, as a webhook backend's `receive.country`.
    #[serde(default)]
    pub country: Option<String>,
    /// Ask the network for a delivery report of each message (TP-SRR).
    #[serde(default = "default_true")]
    pub reports: bool,
    /// How long one AT command may take.
    #[serde(default = "modem_command_timeout", with = "humantime_serde_compat")]
    #[schemars(with = "HumanDuration")]
    pub command_timeout: Duration,
    /// How often stored messages are listed (`AT+CMGL=4`), besides at
    /// start-up: a modem whose storage was full sends no `+CMTI` for them.
    #[serde(default = "modem_sweep", with = "humantime_serde_compat")]
    #[schemars(with = "HumanDuration")]
    pub sweep: Duration,
    /// How long the parts of a long inbound message are waited for; then
    /// what came is delivered with the field `incomplete: "true"`.
    #[serde(default = "modem_multipart", with = "humantime_serde_compat")]
    #[schemars(with = "HumanDuration")]
    pub multipart_timeout: Duration,
    /// How long a sent message's reference (0–255, reused) is matched with
    /// delivery reports.
    #[serde(default = "modem_multipart", with = "humantime_serde_compat")]
    #[schemars(with = "HumanDuration")]
    pub report_window: Duration,
    /// How the sink hands messages over: rate, tries (`send.timeout` is
    /// the wait for `+CMGS`; `concurrency` is 1, a modem sends one at a time).
    #[serde(default = "modem_send")]
    pub send: Sending,
}

fn modem_name() -> String {
    "modem".into()
}

fn modem_baud() -> u32 {
    115_200
}

fn modem_storage() -> String {
    "SM".into()
}

fn modem_command_timeout() -> Duration {
    Duration::from_secs(10)
}

fn modem_sweep() -> Duration {
    Duration::from_secs(60)
}

fn modem_multipart() -> Duration {
    Duration::from_secs(600)
}

/// Kannel's at2 waits 20 s for `+CMGS`; one message at a time.
fn modem_send() -> Sending {
    Sending {
        concurrency: 1,
        timeout: Duration::from_secs(20),
        ..Sending::default()
    }
}
