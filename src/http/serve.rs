//! The accept loop of one listener: hyper's HTTP/1 server with a
//! header-read timeout, and a cap on open connections.
//!
//! A full listener makes room by closing the connection idle the longest:
//! one with no request in flight (never sent one, or answered and kept
//! alive), which holds nothing worth keeping. So thousands of idle
//! connections cannot keep `/healthz` out. When every connection is busy
//! with a request, the next one waits in the kernel's backlog until one ends.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::Router;
use hyper::body::{Frame, Incoming, SizeHint};
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tower::ServiceExt;
use tracing::{debug, info, warn};

use crate::config::Limits;

/// Connections with no request in flight, longest idle first: the ones a
/// full listener closes.
#[derive(Default)]
struct Idle {
    next: u64,
    /// id → (how to close it, whether it never sent a request).
    waiting: BTreeMap<u64, (CancellationToken, bool)>,
}

impl Idle {
    fn add(&mut self, close: CancellationToken, fresh: bool) -> u64 {
        self.next += 1;
        self.waiting.insert(self.next, (close, fresh));
        self.next
    }

    /// Close the longest idle; false when there is none.
    fn close_oldest(&mut self) -> bool {
        match self.waiting.pop_first() {
            Some((_, (close, _))) => {
                close.cancel();
                true
            }
            None => false,
        }
    }
}

/// One connection's place in [`Idle`], if it is idle now.
struct Place {
    idle: Arc<Mutex<Idle>>,
    close: CancellationToken,
    id: Mutex<Option<u64>>,
}

impl Place {
    /// A request came: not idle.
    fn busy(&self) {
        if let Some(id) = lock_id(&self.id).take() {
            lock(&self.idle).waiting.remove(&id);
        }
    }

    /// Its answer was handed to the connection: idle until the next request.
    fn idle(&self, fresh: bool) {
        let id = lock(&self.idle).add(self.close.clone(), fresh);
        if let Some(old) = lock_id(&self.id).replace(id) {
            lock(&self.idle).waiting.remove(&old);
        }
    }
}

/// An answer's body that marks its connection idle once hyper has taken
/// all of it (dropped it), not before: closing a connection to make room
/// never cuts an answer off.
struct Answered {
    inner: Body,
    place: Arc<Place>,
}

impl hyper::body::Body for Answered {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, axum::Error>>> {
        Pin::new(&mut self.inner).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

impl Drop for Answered {
    fn drop(&mut self) {
        self.place.idle(false);
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
        let place = Arc::new(Place {
            idle: idle.clone(),
            close: close.clone(),
            id: Mutex::new(None),
        });
        place.idle(true);
        let service = {
            let (router, place) = (router.clone(), place.clone());
            hyper::service::service_fn(move |req: hyper::Request<Incoming>| {
                place.busy();
                let place = place.clone();
                let answer = router.clone().oneshot(req);
                async move {
                    let res = answer.await?;
                    Ok::<_, std::convert::Infallible>(res.map(|inner| Answered { inner, place }))
                }
            })
        };
        let conn = graceful.watch(builder.serve_connection(TokioIo::new(stream), service));
        tokio::spawn(async move {
            // The connection first: what it has to write goes out before a
            // close is looked at.
            tokio::select! {
                biased;
                r = conn => if let Err(e) = r {
                    debug!(?peer, error = %e, "connection ended");
                },
                _ = close.cancelled() => debug!(?peer, "closed to make room"),
            }
            place.busy();
            drop(slot);
        });
    }
    drop(listener);
    // Connections that never sent a request have nothing to finish; the
    // others hyper closes once their answer is out.
    for (close, fresh) in std::mem::take(&mut lock(&idle).waiting).into_values() {
        if fresh {
            close.cancel();
        }
    }
    graceful.shutdown().await;
    Ok(())
}

fn lock(idle: &Mutex<Idle>) -> std::sync::MutexGuard<'_, Idle> {
    // Nothing panics while holding it.
    idle.lock().unwrap_or_else(|p| p.into_inner())
}

fn lock_id(id: &Mutex<Option<u64>>) -> std::sync::MutexGuard<'_, Option<u64>> {
    id.lock().unwrap_or_else(|p| p.into_inner())
}
