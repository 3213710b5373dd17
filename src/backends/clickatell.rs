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

pub struct Clickatell {
    pub client: reqwest::Client,
    /// Default `https://platform.clickatell.com`, without a trailing `/`.
    pub api_url: String,
    pub api_key: String,
    pub from: Option<String>,
    pub batch: usize,
}

impl Provider for Clickatell {
    fn batch(&self) -> usize {
        self.batch
    }

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
