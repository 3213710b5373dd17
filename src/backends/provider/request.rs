//! One try: the [`Provider`] trait, what a try came to ([`Attempt`]), an
//! HTTP request and its answer read as an attempt, and the HTTP client.

use std::time::{Duration, SystemTime};

use futures::future::BoxFuture;
use futures::FutureExt;
use reqwest::header::{HeaderMap, RETRY_AFTER};
use reqwest::StatusCode;

use crate::config::Sending;
use crate::message::OutboundMessage;

/// What one try to hand a message to the provider came to.
#[derive(Debug, Clone, PartialEq)]
pub enum Attempt {
    /// The provider took it: its id for the message, and its status as it said it.
    Accepted {
        provider_id: Option<String>,
        status: String,
    },
    /// The provider refused it for good (a 4xx): not tried again.
    Rejected { error: String, status: String },
    /// A transient failure (timeout, no connection, 5xx, 429): try again,
    /// after `after` when the provider said so (`Retry-After`).
    Retry {
        error: String,
        after: Option<Duration>,
    },
}

/// How to hand messages to one provider.
pub trait Provider: Send + Sync + 'static {
    /// Messages with the same text one request may carry. Default 1.
    fn batch(&self) -> usize {
        1
    }

    /// Try once to hand `msg` to the provider.
    fn send_one<'a>(&'a self, msg: &'a OutboundMessage) -> BoxFuture<'a, Attempt>;

    /// Try once to hand `msgs` (one, or up to [`Provider::batch`] with the
    /// same text) to the provider: one [`Attempt`] per message, in order.
    /// Default: one request each, in turn.
    fn send<'a>(&'a self, msgs: &'a [&'a OutboundMessage]) -> BoxFuture<'a, Vec<Attempt>> {
        async move {
            let mut out = Vec::with_capacity(msgs.len());
            for m in msgs {
                out.push(self.send_one(m).await);
            }
            out
        }
        .boxed()
    }
}

/// A provider's answer to one request.
pub struct Answer {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: String,
}

impl Answer {
    /// The failure a non-2xx answer is, transient or permanent (see [`http_failure`]).
    pub fn failure(&self) -> Attempt {
        http_failure(self.status, &self.headers, &self.body)
    }
}

/// Make `request`: the provider's answer (whatever its status), or the
/// attempt it came to without one: a request that cannot be built (a bad
/// URL or key) is permanent; a timeout or connection failure is transient.
pub async fn call(request: reqwest::RequestBuilder) -> Result<Answer, Attempt> {
    // Errors without the URL: Kannel's carries the sendsms password, and
    // the error goes to the logs and into the `failed` event.
    match request.send().await.map_err(reqwest::Error::without_url) {
        Err(e) if e.is_builder() => Err(Attempt::Rejected {
            error: format!(
                "cannot build the request (check the backend's URL and credentials): {e}"
            ),
            status: "invalid request".into(),
        }),
        Err(e) => Err(transport_failure(&e)),
        Ok(res) => Ok(Answer {
            status: res.status(),
            headers: res.headers().clone(),
            // A body cut off mid-way reads as what arrived of it.
            body: res.text().await.unwrap_or_default(),
        }),
    }
}

/// A failed HTTP answer as an attempt: 408, 429 and 5xx are transient
/// (429 and 503 honour `Retry-After`), any other status is permanent.
pub fn http_failure(status: StatusCode, headers: &HeaderMap, body: &str) -> Attempt {
    let body: String = body.trim().chars().take(300).collect();
    let error = if body.is_empty() {
        format!("HTTP {status}")
    } else {
        format!("HTTP {status}: {body}")
    };
    if status.is_server_error()
        || status == StatusCode::REQUEST_TIMEOUT
        || status == StatusCode::TOO_MANY_REQUESTS
    {
        Attempt::Retry {
            error,
            after: retry_after(headers),
        }
    } else {
        Attempt::Rejected {
            error,
            status: status.as_u16().to_string(),
        }
    }
}

/// A request that got no answer (timeout, refused or broken connection): transient.
fn transport_failure(e: &reqwest::Error) -> Attempt {
    let kind = if e.is_timeout() {
        "timed out"
    } else if e.is_connect() {
        "cannot connect"
    } else {
        "request failed"
    };
    let mut error = format!("{kind}: {e}");
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        error.push_str(&format!(": {s}"));
        source = s.source();
    }
    Attempt::Retry { error, after: None }
}

/// `Retry-After` as seconds or as an HTTP date.
fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    let value = headers.get(RETRY_AFTER)?.to_str().ok()?.trim();
    if let Ok(secs) = value.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let at = httpdate::parse_http_date(value).ok()?;
    Some(at.duration_since(SystemTime::now()).unwrap_or_default())
}

/// The HTTP client a provider uses: TLS with the system's roots plus
/// `send.ca_file`'s, and the sink's per-request timeout.
pub fn client(settings: &Sending) -> anyhow::Result<reqwest::Client> {
    let mut builder = reqwest::Client::builder()
        .timeout(settings.timeout)
        .pool_max_idle_per_host(settings.concurrency.max(1));
    if let Some(path) = &settings.ca_file {
        builder = builder.tls_certs_merge(crate::config::files::ca_certificates(path)?);
    }
    builder
        .build()
        .map_err(|e| anyhow::anyhow!("cannot set up the HTTPS client: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use reqwest::header::HeaderValue;

    #[test]
    fn http_statuses_are_transient_or_permanent() {
        let mut h = HeaderMap::new();
        h.insert(RETRY_AFTER, HeaderValue::from_static("7"));
        assert_eq!(
            http_failure(StatusCode::TOO_MANY_REQUESTS, &h, "slow down"),
            Attempt::Retry {
                error: "HTTP 429 Too Many Requests: slow down".into(),
                after: Some(Duration::from_secs(7))
            }
        );
        assert!(matches!(
            http_failure(StatusCode::SERVICE_UNAVAILABLE, &HeaderMap::new(), ""),
            Attempt::Retry { after: None, .. }
        ));
        assert_eq!(
            http_failure(StatusCode::FORBIDDEN, &HeaderMap::new(), "Not routable."),
            Attempt::Rejected {
                error: "HTTP 403 Forbidden: Not routable.".into(),
                status: "403".into()
            }
        );
        let mut h = HeaderMap::new();
        let soon = httpdate::fmt_http_date(SystemTime::now() + Duration::from_secs(30));
        h.insert(RETRY_AFTER, HeaderValue::from_str(&soon).unwrap());
        let after = retry_after(&h).unwrap();
        assert!(after > Duration::from_secs(25) && after <= Duration::from_secs(30));
    }
}
