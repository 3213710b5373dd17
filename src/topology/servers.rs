//! The HTTP servers: the public listener (webhooks, probes) and the admin
//! one (operator pages, API, tester, metrics), bound before the stages
//! start and served once they all have.

use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::Context;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::config::{self, Pipeline};
use crate::web::actions::HttpState;
use crate::web::server::{self as http, Listeners};

/// Bind the public and the admin listener; refuse an admin listener (or a
/// tester on it) that anyone could reach.
pub(super) async fn bind(p: &Pipeline) -> anyhow::Result<Listeners> {
    if let Some(why) = config::access::admin_exposure(&p.http) {
        anyhow::bail!(why);
    }
    if let Some(why) = config::access::remote_refusal(p) {
        anyhow::bail!(why);
    }
    for u in &p.http.admin.users {
        if let Err(why) = config::access::check_hash(u.password_hash.expose()) {
            anyhow::bail!("http.admin.users: the password hash of {:?} {why}", u.name);
        }
    }
    let public = tokio::net::TcpListener::bind(p.http.listen)
        .await
        .with_context(|| format!("cannot listen on {} (http.listen)", p.http.listen))?;
    let at = p.http.admin_listen();
    let admin = tokio::net::TcpListener::bind(at)
        .await
        .with_context(|| format!("cannot listen on {at} (http.admin.listen)"))?;
    Ok(Listeners { public, admin })
}

/// The base of the callback URLs providers are given: `http.public_url`,
/// else the address the public listener got.
pub(super) fn public_base(p: &Pipeline, http_addr: Option<SocketAddr>) -> String {
    match (&p.http.public_url, http_addr) {
        (None, Some(addr)) => format!("http://{addr}"),
        _ => p.http.public_base(),
    }
}

/// Serve both listeners until `shutdown` is cancelled.
pub(super) fn serve(
    listeners: Listeners,
    state: HttpState,
    shutdown: &CancellationToken,
) -> anyhow::Result<JoinHandle<std::io::Result<()>>> {
    let serving = http::serve(listeners, Arc::new(state), shutdown.clone())?;
    Ok(tokio::spawn(serving))
}
