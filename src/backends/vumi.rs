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
}

pub fn routes(_name: &str, hooks: Arc<Hooks>) -> Router {
    Router::new().with_state(hooks)
}

pub struct Vumi {
    pub client: reqwest::Client,
    pub sendsms_url: String,
    /// HTTP basic auth (user, password).
    pub auth: Option<(String, String)>,
    /// Extra keys of every payload (RapidSMS's `sendsms_params`).
    pub params: std::collections::BTreeMap<String, String>,
}

impl Provider for Vumi {
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
