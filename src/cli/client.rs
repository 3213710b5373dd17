//! The running pipeline's HTTP API, as the CLI uses it: `smsflow status`,
//! `message`, `poll`, `contacts import` (and `send` on the embedded bus)
//! talk to the `smsflow run` process at `http.admin.listen`, which holds the
//! tables (on any bus) and the embedded bus itself. The operator token, if
//! the admin listener asks for one, comes from `SMSFLOW_TOKEN`.

use anyhow::{bail, Context};
use serde_json::Value;

use crate::config::Pipeline;

/// A client of one pipeline's HTTP API.
pub struct Api {
    base: String,
    http: reqwest::Client,
    token: Option<String>,
}

/// Where the running pipeline is (the commands' `--url` and `--token`).
#[derive(clap::Args)]
pub struct Server {
    /// The running pipeline's admin address (default: its `http.admin.listen`).
    #[arg(long)]
    url: Option<String>,
    /// The admin listener's bearer token (one of `http.admin.tokens`).
    #[arg(long, env = "SMSFLOW_TOKEN", hide_env_values = true)]
    token: Option<String>,
}

impl Server {
    /// The API of the pipeline `p`, as these arguments reach it.
    pub fn api(self, p: &Pipeline) -> Api {
        Api::new(p, self.url.as_deref()).with_token(self.token)
    }
}

/// The environment variable holding the admin listener's bearer token.
pub const TOKEN_VAR: &str = "SMSFLOW_TOKEN";

impl Api {
    /// The API of the process running `p` on this machine (`http.admin.listen`;
    /// an unspecified address is reached on loopback), or at `url`; with
    /// the token of `SMSFLOW_TOKEN` if set.
    pub fn new(p: &Pipeline, url: Option<&str>) -> Api {
        let base = match url {
            Some(u) => u.trim_end_matches('/').to_owned(),
            None => {
                let mut addr = p.http.admin_listen();
                if addr.ip().is_unspecified() {
                    addr.set_ip(std::net::Ipv4Addr::LOCALHOST.into());
                }
                format!("http://{addr}")
            }
        };
        Api {
            base,
            http: reqwest::Client::new(),
            token: std::env::var(TOKEN_VAR).ok().filter(|t| !t.is_empty()),
        }
    }

    /// Send `token` as `Authorization: Bearer` (instead of `SMSFLOW_TOKEN`'s).
    pub fn with_token(mut self, token: Option<String>) -> Api {
        if token.is_some() {
            self.token = token;
        }
        self
    }

    pub async fn get(&self, path: &str) -> anyhow::Result<Value> {
        self.call(self.http.get(self.url(path)), path).await
    }

    pub async fn post_json(&self, path: &str, body: &Value) -> anyhow::Result<Value> {
        self.call(self.http.post(self.url(path)).json(body), path)
            .await
    }

    pub async fn post_text(
        &self,
        path: &str,
        content_type: &str,
        body: String,
    ) -> anyhow::Result<Value> {
        let req = self
            .http
            .post(self.url(path))
            .header(reqwest::header::CONTENT_TYPE, content_type)
            .body(body);
        self.call(req, path).await
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    async fn call(&self, req: reqwest::RequestBuilder, path: &str) -> anyhow::Result<Value> {
        let url = self.url(path);
        let req = match &self.token {
            Some(t) => req.bearer_auth(t),
            None => req,
        };
        let res = req.send().await.with_context(|| {
            format!("cannot reach {url}: is `smsflow run` running with this pipeline?")
        })?;
        let status = res.status();
        let body: Value = res.json().await.unwrap_or_default();
        if !status.is_success() {
            let why = body["error"].as_str().unwrap_or("no reason given");
            match body["field"].as_str() {
                Some(field) => bail!("{url} answered {status}: {field}: {why}"),
                None => bail!("{url} answered {status}: {why}"),
            }
        }
        Ok(body)
    }
}
