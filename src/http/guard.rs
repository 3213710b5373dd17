//! What every request to a listener goes through before its handler:
//! the Host allow-list (DNS rebinding), operator authentication (admin),
//! the body limit, CSRF checks (admin), the request timeout, and security
//! headers on every answer.

use std::collections::HashSet;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use argon2::password_hash::{PasswordHash, PasswordVerifier};
use argon2::Argon2;
use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use axum::middleware::Next;
use axum::response::Response;
use base64::prelude::{Engine as _, BASE64_STANDARD};
use hmac::{Hmac, KeyInit, Mac};
use http_body_util::{BodyExt, LengthLimitError, Limited};
use sha1::Sha1;
use subtle::ConstantTimeEq;

use super::error;
use crate::config::{Admin, Pipeline, Secret};

/// The Content-Security-Policy of every answer: scripts and styles only
/// from this server's own files, no framing, forms post only here.
pub const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; \
                       connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

/// The form field carrying [`form_token`].
pub const CSRF_FIELD: &str = "csrf";

/// The cookie holding the same token (double submit): a form is accepted
/// when its field equals the browser's cookie, which another site can
/// neither read nor set. Nothing is kept on the server, so a form from one
/// replica is accepted by any other.
pub const CSRF_COOKIE: &str = "smsflow_csrf";

tokio::task_local! {
    /// The token of the request being answered, for the pages' forms.
    static FORM_TOKEN: String;
}

/// One listener's checks.
pub struct Guard {
    /// Host names answered besides IP addresses and `localhost`.
    hosts: HashSet<String>,
    /// Where to allow a foreign host (for the refusal's message).
    hosts_key: &'static str,
    auth: Option<Auth>,
    /// CSRF checks (the admin listener's pages and API).
    csrf: bool,
    max_body: usize,
    request_timeout: Duration,
    /// Campaign uploads (`/api/campaigns…`, `/campaigns…`): their own body
    /// limit, and a deadline long enough to freeze a large audience.
    uploads: Option<(usize, Duration)>,
}

/// How long a campaign's start may take (reading and freezing its audience).
const UPLOAD_TIMEOUT: Duration = Duration::from_secs(300);

impl Guard {
    /// The body limit and the deadline of a request to `path`.
    fn limits(&self, path: &str) -> (usize, Duration, &'static str) {
        match self.uploads {
            Some((max, timeout))
                if path.starts_with("/api/campaigns") || path.starts_with("/campaigns") =>
            {
                (
                    max,
                    timeout.max(self.request_timeout),
                    "campaigns.max_upload_bytes",
                )
            }
            _ => (
                self.max_body,
                self.request_timeout,
                "http.limits.max_body_bytes",
            ),
        }
    }

    /// The public listener's: webhooks come from providers, not browsers.
    pub fn public(p: &Pipeline) -> Guard {
        let mut hosts: HashSet<String> = p.http.hosts.iter().map(|h| host_name(h)).collect();
        if let Some(h) = p.http.public_url.as_deref().and_then(url_host) {
            hosts.insert(h);
        }
        Guard {
            hosts,
            hosts_key: "http.hosts",
            auth: None,
            csrf: false,
            max_body: p.http.limits.max_body_bytes,
            request_timeout: p.http.limits.request_timeout,
            uploads: None,
        }
    }

    /// The admin listener's; an error when its users' hashes are not argon2.
    pub fn admin(p: &Pipeline) -> anyhow::Result<Guard> {
        if let Some(why) = crate::config::access::admin_exposure(&p.http) {
            anyhow::bail!(why);
        }
        Ok(Guard {
            hosts: p.http.admin.hosts.iter().map(|h| host_name(h)).collect(),
            hosts_key: "http.admin.hosts",
            auth: Auth::new(&p.http.admin)?,
            csrf: true,
            max_body: p.http.limits.max_body_bytes,
            request_timeout: p.http.limits.request_timeout,
            uploads: p
                .campaigns
                .as_ref()
                .map(|c| (c.max_upload_bytes, UPLOAD_TIMEOUT)),
        })
    }

    async fn check(&self, req: Request, next: Next) -> Response {
        if let Err(r) = self.host(req.headers()) {
            return *r;
        }
        let probe = matches!(req.uri().path(), "/healthz" | "/readyz");
        if let (Some(auth), false) = (&self.auth, probe) {
            if !auth.allows(req.headers()).await {
                return auth.challenge();
            }
        }
        // One deadline for the body to arrive and the answer to be made.
        let (max_body, timeout, _) = self.limits(req.uri().path());
        let deadline = tokio::time::Instant::now() + timeout;
        let limit = humantime::format_duration(timeout);
        let req = match tokio::time::timeout_at(deadline, self.read_body(req, max_body)).await {
            Ok(Ok(r)) => r,
            Ok(Err(r)) => return *r,
            Err(_) => {
                let why = format!(
                    "the request body did not arrive within http.limits.request_timeout ({limit})"
                );
                return error(StatusCode::REQUEST_TIMEOUT, Some("body"), why);
            }
        };
        let cookie = cookie_token(req.headers());
        if self.csrf {
            if let Err(r) = csrf(&req, cookie.as_deref()) {
                return *r;
            }
        }
        let token = cookie.clone().unwrap_or_else(random_hex);
        let answer = FORM_TOKEN.scope(token.clone(), next.run(req));
        let mut res = match tokio::time::timeout_at(deadline, answer).await {
            Ok(res) => res,
            Err(_) => error(
                StatusCode::SERVICE_UNAVAILABLE,
                None,
                format!("the answer took longer than http.limits.request_timeout ({limit})"),
            ),
        };
        if self.csrf && cookie.is_none() {
            let set = format!("{CSRF_COOKIE}={token}; Path=/; SameSite=Strict; HttpOnly");
            if let Ok(v) = HeaderValue::from_str(&set) {
                res.headers_mut().append(header::SET_COOKIE, v);
            }
        }
        res
    }

    /// Refuse a `Host` this server is not (a DNS-rebinding page reaching a
    /// server on loopback or a private network through the victim's browser).
    fn host(&self, headers: &HeaderMap) -> Result<(), Box<Response>> {
        // HTTP/1.0 clients may send none; browsers always do.
        let Some(raw) = headers.get(header::HOST) else {
            return Ok(());
        };
        let host = raw.to_str().map(host_name).unwrap_or_default();
        let ok = host.parse::<IpAddr>().is_ok()
            || host == "localhost"
            || host.ends_with(".localhost")
            || self.hosts.contains(&host);
        if ok {
            return Ok(());
        }
        Err(Box::new(error(
            StatusCode::MISDIRECTED_REQUEST,
            Some("host"),
            format!(
                "this server does not answer for host {:?}: if it is yours, add it to {}",
                String::from_utf8_lossy(raw.as_bytes()),
                self.hosts_key
            ),
        )))
    }

    /// The whole body, read here so that no handler can read more than
    /// `max_body` (a body with no length is cut off at the limit too).
    async fn read_body(&self, req: Request, max_body: usize) -> Result<Request, Box<Response>> {
        let (_, _, key) = self.limits(req.uri().path());
        let too_large = || {
            Box::new(error(
                StatusCode::PAYLOAD_TOO_LARGE,
                Some("body"),
                format!("the request body is larger than {key} ({max_body} bytes)"),
            ))
        };
        let declared = req
            .headers()
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok()?.parse::<u64>().ok());
        if declared.is_some_and(|n| n > max_body as u64) {
            return Err(too_large());
        }
        let (mut parts, body) = req.into_parts();
        let bytes = match Limited::new(body, max_body).collect().await {
            Ok(c) => c.to_bytes(),
            Err(e) if e.downcast_ref::<LengthLimitError>().is_some() => return Err(too_large()),
            Err(e) => {
                return Err(Box::new(error(
                    StatusCode::BAD_REQUEST,
                    Some("body"),
                    format!("the request body could not be read: {e}"),
                )))
            }
        };
        parts.extensions.insert(ReadBody(bytes.clone()));
        Ok(Request::from_parts(parts, Body::from(bytes)))
    }
}

/// The middleware: [`Guard`]'s checks, then the security headers on
/// whatever the answer is.
pub async fn guard(State(g): State<Arc<Guard>>, req: Request, next: Next) -> Response {
    let mut res = g.check(req, next).await;
    let h = res.headers_mut();
    let set = [
        (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        (header::X_FRAME_OPTIONS, "DENY"),
        (header::CONTENT_SECURITY_POLICY, CSP),
        (header::REFERRER_POLICY, "same-origin"),
    ];
    for (name, value) in set {
        h.insert(name, HeaderValue::from_static(value));
    }
    if g.csrf {
        // Personal data: no copy in shared or browser caches.
        h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
    res
}

/// `host[:port]` as a lowercase name without port or trailing dot; an
/// IPv6 address without its brackets.
fn host_name(raw: &str) -> String {
    let raw = raw.trim();
    let name = match raw.strip_prefix('[') {
        Some(v6) => v6.split(']').next().unwrap_or_default(),
        None => match raw.rsplit_once(':') {
            Some((name, port)) if port.chars().all(|c| c.is_ascii_digit()) => name,
            _ => raw,
        },
    };
    name.trim_end_matches('.').to_ascii_lowercase()
}

/// The host of `scheme://host[:port]/...`.
fn url_host(url: &str) -> Option<String> {
    let rest = url.split_once("://")?.1;
    let authority = rest.split(['/', '?', '#']).next()?;
    let authority = authority.rsplit('@').next()?;
    (!authority.is_empty()).then(|| host_name(authority))
}

/// Refuse what a page on another site could make a logged-in operator's
/// browser send: a cross-site unsafe request, a JSON endpoint called with
/// a content type a plain HTML form can send, a form without its token.
fn csrf(req: &Request, cookie: Option<&str>) -> Result<(), Box<Response>> {
    if matches!(*req.method(), Method::GET | Method::HEAD | Method::OPTIONS) {
        return Ok(());
    }
    // The schema registry is read-only: it answers every write 405 itself,
    // in the error shape registry clients read.
    let path = req.uri().path();
    if path == "/config" || path.starts_with("/subjects") || path.starts_with("/schemas/") {
        return Ok(());
    }
    let h = req.headers();
    let forbidden = |m: String| Err(Box::new(error(StatusCode::FORBIDDEN, Some("origin"), m)));
    // Sent by every current browser: `none` is the user typing the URL.
    if let Some(site) = h.get("sec-fetch-site") {
        let site = site.to_str().unwrap_or_default();
        if !matches!(site, "same-origin" | "none") {
            return forbidden(format!(
                "a {site} request to an operator page or API is refused (cross-site request forgery)"
            ));
        }
    }
    // Sent by browsers on every cross-origin request with an unsafe method.
    if let Some(origin) = h.get(header::ORIGIN) {
        let origin = origin.to_str().unwrap_or_default();
        let host = h
            .get(header::HOST)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default();
        let authority = origin.split_once("://").map(|(_, a)| a);
        if !authority.is_some_and(|a| a.eq_ignore_ascii_case(host)) {
            return forbidden(format!(
                "a request from origin {origin:?} to this server ({host}) is refused (cross-site request forgery)"
            ));
        }
    }
    let media = h
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(|v| {
            v.split(';')
                .next()
                .unwrap_or_default()
                .trim()
                .to_ascii_lowercase()
        })
        .unwrap_or_default();
    if path.starts_with("/api/") {
        let has_body = matches!(*req.method(), Method::POST | Method::PUT | Method::PATCH);
        let csv = path == "/api/contacts/import" && media == "text/csv";
        if has_body && media != "application/json" && !csv {
            return Err(Box::new(error(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                Some("content-type"),
                format!(
                    "expected Content-Type: application/json{}, got {:?}",
                    if path == "/api/contacts/import" {
                        " or text/csv"
                    } else {
                        ""
                    },
                    if media.is_empty() {
                        "none"
                    } else {
                        media.as_str()
                    }
                ),
            )));
        }
        return Ok(());
    }
    // A page's form: it carries the token only this server's pages know.
    let token = match body_of(req) {
        Some(body) if media == "application/x-www-form-urlencoded" => super::form_pairs(body)
            .find(|(k, _)| k == CSRF_FIELD.as_bytes())
            .map(|(_, v)| v),
        _ => None,
    };
    let ok = match (token, cookie) {
        (Some(t), Some(c)) => bool::from(t.ct_eq(c.as_bytes())),
        _ => false,
    };
    if ok {
        Ok(())
    } else {
        Err(Box::new(error(
            StatusCode::FORBIDDEN,
            Some(CSRF_FIELD),
            "the form's CSRF token is missing or wrong: reload the page and send the form again",
        )))
    }
}

/// The body [`Guard::read_body`] already read.
fn body_of(req: &Request) -> Option<&[u8]> {
    req.extensions().get::<ReadBody>().map(|b| b.0.as_ref())
}

/// The request's body as the guard read it (a cheap clone of the bytes
/// the handler gets), for checks that need it before the handler.
#[derive(Clone)]
struct ReadBody(Bytes);

/// The token a page's forms carry in [`CSRF_FIELD`]: the browser's
/// [`CSRF_COOKIE`], or the new one set with this answer. Readable only by
/// who can read the pages (the same-origin policy keeps it from other sites).
pub fn form_token() -> String {
    FORM_TOKEN.try_with(String::clone).unwrap_or_default()
}

/// The request's [`CSRF_COOKIE`], when it looks like one this server made.
fn cookie_token(headers: &HeaderMap) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, _)| *name == CSRF_COOKIE)
        .map(|(_, value)| value.to_owned())
        .filter(|v| v.len() == 64 && v.bytes().all(|b| b.is_ascii_hexdigit()))
}

/// 244 bits from the OS's random source (uuid v4 draws on it), as hex.
fn random_hex() -> String {
    format!(
        "{}{}",
        uuid::Uuid::new_v4().simple(),
        uuid::Uuid::new_v4().simple()
    )
}

type HmacSha1 = Hmac<Sha1>;

/// Operator authentication: bearer tokens and basic-auth users.
struct Auth {
    tokens: Vec<Secret>,
    /// (name, argon2 PHC hash), each hash checked at start.
    users: Vec<(String, Secret)>,
    /// MACs of basic credentials already verified: argon2 is slow on
    /// purpose, and browsers send the credentials with every request.
    verified: Mutex<HashSet<Vec<u8>>>,
    key: String,
}

/// Verified credentials remembered at most (then forgotten all at once).
const VERIFIED_MAX: usize = 1024;

impl Auth {
    fn new(a: &Admin) -> anyhow::Result<Option<Auth>> {
        if !a.has_auth() {
            return Ok(None);
        }
        for u in &a.users {
            if let Err(why) = crate::config::access::check_hash(u.password_hash.expose()) {
                anyhow::bail!("http.admin.users: the password hash of {:?} {why}", u.name);
            }
        }
        Ok(Some(Auth {
            tokens: a.tokens.clone(),
            users: a
                .users
                .iter()
                .map(|u| (u.name.clone(), u.password_hash.clone()))
                .collect(),
            verified: Mutex::new(HashSet::new()),
            key: random_hex(),
        }))
    }

    async fn allows(&self, headers: &HeaderMap) -> bool {
        let Some(value) = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
        else {
            return false;
        };
        let (scheme, rest) = value.trim().split_once(' ').unwrap_or((value, ""));
        match scheme.to_ascii_lowercase().as_str() {
            "bearer" => self.token_ok(rest.trim()),
            "basic" => self.basic_ok(rest.trim()).await,
            _ => false,
        }
    }

    /// Every token compared, each in constant time.
    fn token_ok(&self, given: &str) -> bool {
        let mut ok = subtle::Choice::from(0);
        for t in &self.tokens {
            ok |= given.as_bytes().ct_eq(t.expose().as_bytes());
        }
        bool::from(ok)
    }

    async fn basic_ok(&self, encoded: &str) -> bool {
        if self.users.is_empty() {
            return false;
        }
        let Some((name, password)) = BASE64_STANDARD
            .decode(encoded)
            .ok()
            .and_then(|b| String::from_utf8(b).ok())
            .and_then(|s| s.split_once(':').map(|(n, p)| (n.to_owned(), p.to_owned())))
        else {
            return false;
        };
        let mut mac = HmacSha1::new_from_slice(self.key.as_bytes()).expect("any key length");
        mac.update(encoded.as_bytes());
        let seen = mac.finalize().into_bytes().to_vec();
        if self.remembered().contains(&seen) {
            return true;
        }
        // An unknown name costs a verification too, so that names cannot
        // be told from passwords by the time taken.
        let (known, hash) = match self.users.iter().find(|(n, _)| *n == name) {
            Some((_, h)) => (true, h.clone()),
            None => (false, self.users[0].1.clone()),
        };
        let verified = tokio::task::spawn_blocking(move || {
            PasswordHash::new(hash.expose()).is_ok_and(|h| {
                Argon2::default()
                    .verify_password(password.as_bytes(), &h)
                    .is_ok()
            })
        })
        .await
        .unwrap_or(false);
        let ok = known && verified;
        if ok {
            let mut remembered = self.remembered();
            if remembered.len() >= VERIFIED_MAX {
                remembered.clear();
            }
            remembered.insert(seen);
        }
        ok
    }

    fn remembered(&self) -> std::sync::MutexGuard<'_, HashSet<Vec<u8>>> {
        // Nothing panics while holding it.
        self.verified.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// 401 naming the schemes this listener takes.
    fn challenge(&self) -> Response {
        let mut res = error(
            StatusCode::UNAUTHORIZED,
            Some("authorization"),
            "authentication required: send `Authorization: Bearer <token>` or basic auth as an operator of http.admin",
        );
        let h = res.headers_mut();
        if !self.tokens.is_empty() {
            h.append(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer realm=\"smsflow admin\""),
            );
        }
        if !self.users.is_empty() {
            h.append(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Basic realm=\"smsflow admin\", charset=\"UTF-8\""),
            );
        }
        res
    }
}

/// An argon2id hash of `password` (default parameters, random salt) in
/// PHC form, for `http.admin.users`.
pub fn hash_password(password: &str) -> anyhow::Result<String> {
    use argon2::password_hash::{PasswordHasher, SaltString};
    let salt = SaltString::encode_b64(uuid::Uuid::new_v4().as_bytes())
        .map_err(|e| anyhow::anyhow!("cannot make a salt: {e}"))?;
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| anyhow::anyhow!("cannot hash the password: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_names_lose_port_and_case() {
        assert_eq!(host_name("Example.ORG:8080"), "example.org");
        assert_eq!(host_name("[::1]:8081"), "::1");
        assert_eq!(host_name("127.0.0.1"), "127.0.0.1");
        assert_eq!(host_name("sms.example.org."), "sms.example.org");
        assert_eq!(
            url_host("https://u@Sms.Example.org:443/x?y").unwrap(),
            "sms.example.org"
        );
        assert_eq!(url_host("nothing"), None);
    }

    #[test]
    fn hashes_are_checked_without_quoting_them() {
        let h = hash_password("correct horse").unwrap();
        assert!(crate::config::access::check_hash(&h).is_ok());
        let bad = crate::config::access::check_hash("hunter2-plaintext").unwrap_err();
        assert!(!bad.contains("hunter2"), "{bad}");
    }
}
