//! The pipeline file's `http:` section: the public and the admin listener,
//! who may use the admin one, and what one request may take.

use std::net::SocketAddr;
use std::time::Duration;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::value::{humantime_serde_compat, HumanDuration};

/// `http:` — two listeners: the public one (provider webhooks, `/healthz`,
/// `/readyz`) and the admin one (operator pages, the JSON API, the message
/// tester, `/metrics`).
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct Http {
    /// The public listener's address: provider webhooks under `/backend/<name>/`, `/healthz`, `/readyz`.
    /// Use `0.0.0.0:8080` in a container.
    pub listen: SocketAddr,
    /// How long a source waits for the bus to store an inbound message before
    /// answering 503 (so the provider retries).
    #[serde(with = "humantime_serde_compat")]
    #[schemars(with = "HumanDuration")]
    pub accept_timeout: Duration,
    /// The URL providers reach this server at, behind any proxy (delivery
    /// report and status callback URLs are built on it, and Twilio signs
    /// it). Default `http://<listen>`.
    pub public_url: Option<String>,
    /// Host names the public listener answers besides IP addresses, `localhost`
    /// and the host of `public_url` (any other `Host` header is answered 421:
    /// DNS rebinding).
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
#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct Admin {
    /// The admin listener's address. Default: loopback, on the port after
    /// `http.listen`'s (`127.0.0.1:8081` with the default `http.listen`; any
    /// free port when `http.listen`'s port is 0).
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
    /// number). When false, such a pipeline does not start.
    pub allow_remote_tester: bool,
}

impl Admin {
    /// Whether operators must authenticate (some token or user is declared).
    pub fn has_auth(&self) -> bool {
        !self.tokens.is_empty() || !self.users.is_empty()
    }
}

/// One basic-auth user of the admin listener.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct AdminUser {
    /// The user name given with basic auth.
    pub name: String,
    /// An argon2 hash in PHC form (`$argon2id$v=19$...`), never the password.
    pub password_hash: Secret,
}

/// A secret: never printed (logs, errors and dumps show `<redacted>`).
/// Give it through `${VAR}`.
#[derive(Clone, PartialEq, Eq, Deserialize, JsonSchema)]
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
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct Limits {
    /// Largest request body in bytes (1048576 is 1 MiB); a larger one is answered 413.
    pub max_body_bytes: usize,
    /// How long a client may take to send a request's headers before the
    /// connection is closed (slow or idle clients); a body that does not
    /// arrive within `request_timeout` is answered 408.
    #[serde(with = "humantime_serde_compat")]
    #[schemars(with = "HumanDuration")]
    pub header_read_timeout: Duration,
    /// How long one request may take to be answered before a 503.
    #[serde(with = "humantime_serde_compat")]
    #[schemars(with = "HumanDuration")]
    pub request_timeout: Duration,
    /// Open connections per listener. When full, the oldest connection that
    /// has not sent a request yet is closed to make room; if every one is
    /// busy, new connections wait.
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
