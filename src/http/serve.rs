//! The accept loop of one listener: hyper's HTTP/1 server with a
//! header-read timeout, and a cap on open connections.
//!
//! A full listener makes room by closing the oldest connection that has not
//! sent a request yet (an idle or slow client holds nothing worth keeping),
//! so thousands of idle connections cannot keep `/healthz` out. When every
//! connection is busy with a request, the next one waits in the kernel's
//! backlog until one ends.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tower::ServiceExt;
use tracing::{debug, info, warn};

use crate::config::Limits;

/// Connections that have not sent a request yet, oldest first: the ones a
/// full listener closes.
#[derive(Default)]
struct Idle {
    next: u64,
    waiting: BTreeMap<u64, CancellationToken>,
}

impl Idle {
    fn add(&mut self, close: CancellationToken) -> u64 {
        self.next += 1;
        self.waiting.insert(self.next, close);
        self.next
    }

    /// Close the oldest; false when there is none.
    fn close_oldest(&mut self) -> bool {
        match self.waiting.pop_first() {
            Some((_, close)) => {
                close.cancel();
                true
            }
            None => false,
        }
    }
}

/// Serve `router` on `listener` until `shutdown`; in-flight requests finish first.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    limits: Limits,
    name: &'static str,
    shutdown: CancellationToken,
) -> std::io::Result<()> {
    let addr: Option<SocketAddr> = listener.local_addr().ok();
    info!(?addr, listener = %name, "http listening");
    let slots = Arc::new(Semaphore::new(limits.max_connections.max(1)));
    let idle = Arc::new(Mutex::new(Idle::default()));
    let graceful = GracefulShutdown::new();
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout);
    loop {
        let accepted = tokio::select! {
            _ = shutdown.cancelled() => break,
            a = listener.accept() => a,
        };
        let (stream, peer) = match accepted {
            Ok(a) => a,
            Err(e) => {
                // Out of file descriptors, or a connection reset before it
                // was accepted: the listener itself is fine.
                warn!(listener = name, error = %e, "accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let slot = match slots.clone().try_acquire_owned() {
            Ok(s) => s,
            Err(_) => {
                let made_room = lock(&idle).close_oldest();
                if made_room {
                    debug!(listener = name, "full: closed the oldest idle connection");
                } else {
                    debug!(listener = name, "full: every connection is busy, waiting");
                }
                tokio::select! {
                    _ = shutdown.cancelled() => break,
                    s = slots.clone().acquire_owned() => match s {
                        Ok(s) => s,
                        Err(_) => break,
                    },
                }
            }
        };
        let close = CancellationToken::new();
        let id = lock(&idle).add(close.clone());
        let started = Arc::new(AtomicBool::new(false));
        let service = {
            let (router, idle, started) = (router.clone(), idle.clone(), started.clone());
            hyper::service::service_fn(move |req: hyper::Request<Incoming>| {
                if !started.swap(true, Ordering::AcqRel) {
                    lock(&idle).waiting.remove(&id);
                }
                router.clone().oneshot(req)
            })
        };
        let conn = graceful.watch(builder.serve_connection(TokioIo::new(stream), service));
        let idle = idle.clone();
        tokio::spawn(async move {
            tokio::select! {
                r = conn => if let Err(e) = r {
                    debug!(?peer, error = %e, "connection ended");
                },
                _ = close.cancelled() => debug!(?peer, "closed to make room"),
            }
            lock(&idle).waiting.remove(&id);
            drop(slot);
        });
    }
    drop(listener);
    // Connections that never sent a request have nothing to finish.
    for (_, close) in std::mem::take(&mut lock(&idle).waiting) {
        close.cancel();
    }
    graceful.shutdown().await;
    Ok(())
}

fn lock(idle: &Mutex<Idle>) -> std::sync::MutexGuard<'_, Idle> {
    // Nothing panics while holding it.
    idle.lock().unwrap_or_else(|p| p.into_inner())
}
