//! (being written)

use std::sync::Arc;

use axum::Router;
use futures::future::BoxFuture;
use futures::FutureExt;

use super::provider::{Attempt, Provider};
use super::{Reports, Source};
use crate::message::OutboundMessage;

pub struct Hooks {
    pub source: Source,
    pub reports: Reports,
    /// Signs webhooks.
    pub auth_token: String,
    /// Check `X-Twilio-Signature` (403 when missing or wrong).
    pub validate: bool,
    /// The public base URL (no trailing `/`) Twilio calls: signatures are
    /// computed over it plus the request's path and query.
    pub public: String,
}

pub fn routes(_name: &str, hooks: Arc<Hooks>) -> Router {
    Router::new().with_state(hooks)
}

pub struct Twilio {
    pub client: reqwest::Client,
    /// Default `https://api.twilio.com`, without a trailing `/`.
    pub api_url: String,
    pub account_sid: String,
    pub auth_token: String,
    pub from: Option<String>,
    pub messaging_service_sid: Option<String>,
    /// `<public url>/backend/<name>/status`.
    pub status_callback: String,
}

impl Provider for Twilio {
    fn send<'a>(&'a self, msgs: &'a [&'a OutboundMessage]) -> BoxFuture<'a, Vec<Attempt>> {
        async move {
            msgs.iter()
                .map(|_| Attempt::Retry {
                    error: "not written yet".into(),
                    after: None,
                })
                .collect()
        }
        .boxed()
    }
}
