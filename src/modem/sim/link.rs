//! The simulated modem's state shared between its handles, its connection
//! and its timers, and the loop that serves one connection: bytes in, the
//! modem's answers and unsolicited lines out.

use std::sync::{Arc, Mutex, PoisonError};

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::Notify;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::state::{Modem, Timer};

/// The modem, and a wake-up for the connection when it has output.
#[derive(Debug, Clone)]
pub(super) struct Shared {
    modem: Arc<Mutex<Modem>>,
    wake: Arc<Notify>,
}

impl Shared {
    pub fn new(modem: Modem) -> Self {
        Shared {
            modem: Arc::new(Mutex::new(modem)),
            wake: Arc::new(Notify::new()),
        }
    }

    /// Runs `f` on the modem; then starts the timers it set and wakes the
    /// connection if there is output.
    pub fn with<R>(&self, f: impl FnOnce(&mut Modem) -> R) -> R {
        // A panic elsewhere while holding the lock leaves a modem still
        // worth answering with: tests want its transcript.
        let mut modem = self.modem.lock().unwrap_or_else(PoisonError::into_inner);
        let result = f(&mut modem);
        let timers = std::mem::take(&mut modem.timers);
        let output = !modem.out.is_empty();
        drop(modem);
        for timer in timers {
            self.start(timer);
        }
        if output {
            self.wake.notify_one();
        }
        result
    }

    /// A timer as a task; outside a tokio runtime (no task can wait) it is
    /// dropped, and the transcript says so.
    fn start(&self, (delay, timer): (std::time::Duration, Timer)) {
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            self.with(|m| m.log(format!("-- no runtime: {timer:?} dropped")));
            return;
        };
        let shared = self.clone();
        runtime.spawn(async move {
            tokio::time::sleep(delay).await;
            shared.with(|m| m.fire(timer));
        });
    }

    /// Serves one connection until it ends (EOF), fails, or `stop`.
    pub async fn serve<S>(&self, stream: S, stop: CancellationToken) -> std::io::Result<()>
    where
        S: AsyncRead + AsyncWrite + Unpin + Send,
    {
        let (mut reader, mut writer) = tokio::io::split(stream);
        let mut buffer = vec![0u8; 4096];
        loop {
            let out = self.with(|m| std::mem::take(&mut m.out));
            if !out.is_empty() {
                tokio::select! {
                    _ = stop.cancelled() => return Ok(()),
                    written = async {
                        writer.write_all(&out).await?;
                        writer.flush().await
                    } => written?,
                }
            }
            tokio::select! {
                _ = stop.cancelled() => return Ok(()),
                read = reader.read(&mut buffer) => {
                    let n = read?;
                    let Some(bytes) = buffer.get(..n).filter(|b| !b.is_empty()) else {
                        return Ok(());
                    };
                    let now = Instant::now();
                    self.with(|m| m.feed(bytes, now));
                }
                _ = self.wake.notified() => {}
            }
        }
    }
}
