//! Who may call a backend's webhooks. A webhook is reachable from the
//! internet, so a request is stored only when it proves it comes from the
//! provider: the backend's shared secret (`secret=` in the URL's query, or
//! an `X-Smsflow-Secret` header), its HTTP basic auth, or a key of the
//! provider's own format (Clickatell's `apiKey`). Every comparison takes the
//! same time whatever the bytes (`subtle`), so a forger cannot find the
//! secret byte by byte from answer times. No credential: `401`; a wrong
//! one: `403`; either way nothing is written to the bus. A backend with
//! `receive.insecure: true` and no credentials configured accepts anything.

use axum::http::{header, HeaderMap};
use base64::prelude::{Engine as _, BASE64_STANDARD};
use subtle::ConstantTimeEq;

use super::webhook::SourceError;
use crate::config::Receiving;
use crate::metrics::metrics;

/// The header that may carry the shared secret.
pub const SECRET_HEADER: &str = "x-smsflow-secret";
/// The query parameter that may carry the shared secret.
pub const SECRET_PARAM: &str = "secret";

/// What a request shows for one kind of credential.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Shown {
    /// The request carries none (or the backend expects none of this kind).
    Absent,
    Valid,
    Wrong,
}

impl Shown {
    /// `given` compared with `expected` in constant time (`None` given: absent).
    pub fn compare(given: Option<&[u8]>, expected: &[u8]) -> Shown {
        match given {
            None => Shown::Absent,
            Some(g) if bool::from(g.ct_eq(expected)) => Shown::Valid,
            Some(_) => Shown::Wrong,
        }
    }
}

/// A backend's webhook credentials, checked on every request.
pub struct WebhookAuth {
    backend: String,
    secret: Option<String>,
    basic: Option<(String, String)>,
    insecure: bool,
    refused: prometheus::IntCounter,
}

impl WebhookAuth {
    /// The credentials of `backend`'s `receive:` settings.
    pub fn new(backend: &str, r: &Receiving) -> Self {
        Self {
            backend: backend.to_owned(),
            secret: r.secret.clone(),
            basic: r.username.clone().zip(r.password.clone()),
            insecure: r.insecure,
            refused: metrics()
                .dropped
                .with_label_values(&[&format!("source:{backend}"), "unauthenticated"]),
        }
    }

    /// The shared secret, for URLs smsflow gives the provider (Kannel's `dlr-url`).
    pub fn secret(&self) -> Option<&str> {
        self.secret.as_deref()
    }

    /// Refuse a request (`query` is its raw query string) that carries no
    /// valid credential, or any wrong one.
    pub fn check(&self, headers: &HeaderMap, query: Option<&str>) -> Result<(), SourceError> {
        self.check_with(headers, query, Shown::Absent, "")
    }

    /// [`check`](Self::check), with `own`: what the provider's own key in
    /// the body showed (`own_name` names it, for example Clickatell's
    /// `apiKey`).
    pub fn check_with(
        &self,
        headers: &HeaderMap,
        query: Option<&str>,
        own: Shown,
        own_name: &str,
    ) -> Result<(), SourceError> {
        let shown = [
            ("secret", self.secret_shown(headers, query)),
            ("basic auth", self.basic_shown(headers)),
            (own_name, own),
        ];
        // A wrong credential is refused even next to a valid one: it is a
        // forgery or a misconfiguration, and either should be seen.
        if let Some((what, _)) = shown.iter().find(|(_, s)| *s == Shown::Wrong) {
            return Err(self.refuse(SourceError::Forbidden(format!(
                "wrong {what} for the webhooks of backend {:?}",
                self.backend
            ))));
        }
        if shown.iter().any(|(_, s)| *s == Shown::Valid) || self.insecure {
            return Ok(());
        }
        Err(self.refuse(SourceError::Unauthorized {
            message: format!(
                "the webhooks of backend {:?} need credentials: {}",
                self.backend,
                self.expected(own_name)
            ),
            basic: self.basic.is_some(),
        }))
    }

    /// What a request should carry, for the 401's message.
    fn expected(&self, own_name: &str) -> String {
        let mut ways = Vec::new();
        if self.secret.is_some() {
            ways.push(format!(
                "the shared secret as the `{SECRET_PARAM}` query parameter or the X-Smsflow-Secret header"
            ));
        }
        if self.basic.is_some() {
            ways.push("HTTP basic auth".to_owned());
        }
        if !own_name.is_empty() {
            ways.push(format!("the provider's `{own_name}`"));
        }
        if ways.is_empty() {
            // Validation refuses this; a backend built without it accepts nothing.
            return "none are configured (receive.secret)".into();
        }
        ways.join(", or ")
    }

    fn refuse(&self, e: SourceError) -> SourceError {
        self.refused.inc();
        tracing::warn!(backend = %self.backend, error = %e, "webhook refused");
        e
    }

    /// Every secret the request carries (in the query and the header) must
    /// be the backend's; none is absent.
    fn secret_shown(&self, headers: &HeaderMap, query: Option<&str>) -> Shown {
        let Some(expected) = &self.secret else {
            return Shown::Absent;
        };
        let from_query = crate::http::form_pairs(query.unwrap_or_default().as_bytes())
            .filter(|(k, _)| k == SECRET_PARAM.as_bytes())
            .map(|(_, v)| v);
        let from_header = headers
            .get_all(SECRET_HEADER)
            .iter()
            .map(|v| v.as_bytes().to_vec());
        let mut shown = Shown::Absent;
        for given in from_query.chain(from_header) {
            match Shown::compare(Some(given.as_slice()), expected.as_bytes()) {
                Shown::Wrong => return Shown::Wrong,
                s => shown = s,
            }
        }
        shown
    }

    /// The request's `Authorization: Basic ...`, when the backend takes basic auth.
    fn basic_shown(&self, headers: &HeaderMap) -> Shown {
        let Some((user, pass)) = &self.basic else {
            return Shown::Absent;
        };
        let Some(value) = headers.get(header::AUTHORIZATION) else {
            return Shown::Absent;
        };
        let value = value.as_bytes();
        let Some(encoded) = value
            .get(..6)
            .filter(|scheme| scheme.eq_ignore_ascii_case(b"basic "))
            .map(|_| value[6..].trim_ascii())
        else {
            // Another scheme (a bearer token): not basic auth, and not ours.
            return Shown::Wrong;
        };
        let Ok(decoded) = BASE64_STANDARD.decode(encoded) else {
            return Shown::Wrong;
        };
        let Some(colon) = decoded.iter().position(|&b| b == b':') else {
            return Shown::Wrong;
        };
        let (given_user, given_pass) = (&decoded[..colon], &decoded[colon + 1..]);
        // Both compared, always: the time does not tell which was wrong.
        let same = given_user.ct_eq(user.as_bytes()) & given_pass.ct_eq(pass.as_bytes());
        if bool::from(same) {
            Shown::Valid
        } else {
            Shown::Wrong
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn auth(secret: Option<&str>, basic: Option<(&str, &str)>, insecure: bool) -> WebhookAuth {
        WebhookAuth::new(
            "b",
            &Receiving {
                secret: secret.map(str::to_owned),
                username: basic.map(|b| b.0.to_owned()),
                password: basic.map(|b| b.1.to_owned()),
                insecure,
                ..Receiving::default()
            },
        )
    }

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(*k, HeaderValue::from_str(v).unwrap());
        }
        h
    }

    fn basic(user: &str, pass: &str) -> String {
        format!("Basic {}", BASE64_STANDARD.encode(format!("{user}:{pass}")))
    }

    const S: &str = "0123456789abcdef-secret";

    fn status(r: Result<(), SourceError>) -> &'static str {
        match r {
            Ok(()) => "ok",
            Err(SourceError::Unauthorized { .. }) => "401",
            Err(SourceError::Forbidden(_)) => "403",
            Err(e) => panic!("{e}"),
        }
    }

    #[test]
    fn the_secret_is_taken_from_the_query_or_the_header() {
        let a = auth(Some(S), None, false);
        let none = HeaderMap::new();
        assert_eq!(
            status(a.check(&none, Some(&format!("a=1&secret={S}")))),
            "ok"
        );
        assert_eq!(status(a.check(&headers(&[(SECRET_HEADER, S)]), None)), "ok");
        assert_eq!(status(a.check(&none, Some("a=1"))), "401");
        assert_eq!(status(a.check(&none, None)), "401");
        assert_eq!(status(a.check(&none, Some("secret=wrong"))), "403");
        assert_eq!(status(a.check(&none, Some("secret="))), "403");
        // A prefix of the secret, or the secret and more, is wrong.
        assert_eq!(
            status(a.check(&none, Some(&format!("secret={}", &S[..10])))),
            "403"
        );
        assert_eq!(status(a.check(&none, Some(&format!("secret={S}x")))), "403");
        // A right secret does not excuse a wrong one beside it.
        let both = headers(&[(SECRET_HEADER, "wrong")]);
        assert_eq!(status(a.check(&both, Some(&format!("secret={S}")))), "403");
        let twice = format!("secret={S}&secret=wrong");
        assert_eq!(status(a.check(&none, Some(&twice))), "403");
        // The 401 says how to authenticate, and never what the secret is.
        let Err(e) = a.check(&none, None) else {
            panic!()
        };
        assert!(e.to_string().contains("X-Smsflow-Secret"), "{e}");
        assert!(!e.to_string().contains(S), "{e}");
    }

    #[test]
    fn basic_auth_is_checked_user_and_password() {
        let a = auth(None, Some(("vumi", "pass-word")), false);
        let ok = headers(&[("authorization", &basic("vumi", "pass-word"))]);
        assert_eq!(status(a.check(&ok, None)), "ok");
        for wrong in [
            basic("vumi", "pass-wor"),
            basic("vumi", "pass-word "),
            basic("vum", "pass-word"),
            basic("", ""),
            "Basic !!!".to_owned(),
            "Basic dnVtaQ==".to_owned(), // "vumi", no colon
            "Bearer pass-word".to_owned(),
        ] {
            let h = headers(&[("authorization", &wrong)]);
            assert_eq!(status(a.check(&h, None)), "403", "{wrong}");
        }
        let Err(SourceError::Unauthorized { basic: true, .. }) = a.check(&HeaderMap::new(), None)
        else {
            panic!("a 401 that asks for basic auth")
        };
        // A secret is not one this backend has: it proves nothing.
        assert_eq!(status(a.check(&HeaderMap::new(), Some("secret=x"))), "401");
    }

    #[test]
    fn a_provider_key_counts_but_never_excuses_a_wrong_one() {
        let a = auth(Some(S), None, false);
        let none = HeaderMap::new();
        assert_eq!(
            status(a.check_with(&none, None, Shown::Valid, "apiKey")),
            "ok"
        );
        assert_eq!(
            status(a.check_with(&none, None, Shown::Wrong, "apiKey")),
            "403"
        );
        let q = format!("secret={S}");
        assert_eq!(
            status(a.check_with(&none, Some(&q), Shown::Wrong, "apiKey")),
            "403"
        );
        assert_eq!(
            status(a.check_with(&none, None, Shown::Absent, "apiKey")),
            "401"
        );
        assert_eq!(Shown::compare(Some(b"k"), b"k"), Shown::Valid);
        assert_eq!(Shown::compare(Some(b"k"), b"kk"), Shown::Wrong);
        assert_eq!(Shown::compare(None, b"k"), Shown::Absent);
    }

    #[test]
    fn insecure_accepts_what_carries_no_credential() {
        let a = auth(None, None, true);
        assert_eq!(status(a.check(&HeaderMap::new(), None)), "ok");
        assert_eq!(
            status(a.check_with(&HeaderMap::new(), None, Shown::Wrong, "apiKey")),
            "403"
        );
        // Without insecure and without credentials, nothing gets in.
        let closed = auth(None, None, false);
        assert_eq!(
            status(closed.check(&HeaderMap::new(), Some("secret=x"))),
            "401"
        );
    }
}
