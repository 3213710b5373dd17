//! The modem backend: one task owns the serial port and does everything
//! on it in turn — the sink's messages handed over with `AT+CMGS`, the
//! messages the modem stores (`+CMTI`, and a sweep with `AT+CMGL`) written
//! to `sms.inbound` and only then deleted, and status reports turned into
//! delivery events. The sink in front of it is the provider sink every
//! backend shares (sent-log, rate limits, tries, events): to it the modem
//! is a [`Provider`].
//!
//! When the port vanishes (a USB modem unplugged or reset) the task opens
//! it again with a back-off and runs the init again; what the modem had
//! stored is still there and is swept. A PIN the SIM refuses is never
//! entered again: the backend stays not ready until it is restarted.

mod session;

use session::Job;
pub use session::Parts;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::future::BoxFuture;
use futures::FutureExt;
use tokio::sync::{mpsc, oneshot, watch};

use crate::backends::provider::{Attempt, Provider};
use crate::config::ModemBackend as Config;
use crate::message::OutboundMessage;
use crate::metrics::metrics;
use crate::modem::device::{InitError, Modem, Setup};

/// The longest wait between two tries to open the port and set it up.
const MAX_RECONNECT: Duration = Duration::from_secs(30);

/// Whether the modem is ready, or why not, for `/readyz`.
#[derive(Clone)]
pub struct Readiness {
    name: String,
    state: Arc<Mutex<Option<String>>>,
    ready: watch::Sender<bool>,
}

impl Readiness {
    fn new(name: &str) -> Self {
        Readiness {
            name: name.to_owned(),
            state: Arc::new(Mutex::new(Some("starting: opening the serial port".into()))),
            ready: watch::Sender::new(false),
        }
    }

    /// Ready, or why not (`backend <name>: <reason>`).
    pub fn status(&self) -> Result<(), String> {
        match &*self.state.lock().unwrap_or_else(|p| p.into_inner()) {
            None => Ok(()),
            Some(why) => Err(format!("backend {}: {why}", self.name)),
        }
    }

    fn set(&self, why: Option<String>) {
        metrics()
            .modem_ready
            .with_label_values(&[&self.name])
            .set(i64::from(why.is_none()));
        if let Some(why) = &why {
            tracing::warn!(backend = %self.name, reason = %why, "modem not ready");
        }
        self.ready.send_replace(why.is_none());
        *self.state.lock().unwrap_or_else(|p| p.into_inner()) = why;
    }
}

/// The sink's view of the modem.
struct ModemProvider {
    jobs: mpsc::Sender<Job>,
    readiness: Readiness,
    /// How long a message waits for a modem that is not ready.
    wait: Duration,
}

impl Provider for ModemProvider {
    fn send_one<'a>(&'a self, msg: &'a OutboundMessage) -> BoxFuture<'a, Attempt> {
        async move {
            let mut ready = self.readiness.ready.subscribe();
            let waited = tokio::time::timeout(self.wait, ready.wait_for(|r| *r))
                .await
                .is_ok_and(|r| r.is_ok());
            if !waited {
                let why = self.readiness.status().err().unwrap_or_default();
                return Attempt::Retry {
                    error: format!("the modem is not ready: {why}"),
                    after: None,
                };
            }
            let (reply, answer) = oneshot::channel();
            let job = Job {
                msg: msg.clone(),
                reply,
            };
            if self.jobs.send(job).await.is_err() {
                return Attempt::Retry {
                    error: "the modem's task stopped".into(),
                    after: None,
                };
            }
            answer.await.unwrap_or(Attempt::Retry {
                error: "the modem's link broke while sending; not known to be sent".into(),
                after: None,
            })
        }
        .boxed()
    }
}

/// Start the port's task (needs a tokio runtime): the provider the sink
/// calls, and the modem's readiness.
pub fn start(cfg: &Config, parts: Parts) -> (Arc<dyn Provider>, Readiness) {
    let readiness = Readiness::new(&cfg.name);
    let (jobs, rx) = mpsc::channel(1);
    let provider = ModemProvider {
        jobs,
        readiness: readiness.clone(),
        wait: cfg.send.timeout,
    };
    tokio::spawn(run(cfg.clone(), parts, rx, readiness.clone()));
    (Arc::new(provider), readiness)
}

/// Open, set up, serve; again after the port vanishes, with a back-off.
async fn run(cfg: Config, parts: Parts, mut jobs: mpsc::Receiver<Job>, readiness: Readiness) {
    let setup = Setup {
        vendor: cfg.profile.before().iter().map(|c| c.to_string()).collect(),
        cnmi: cfg.profile.cnmi().to_owned(),
        pin: cfg.pin.clone().filter(|p| !p.is_empty()),
        storage: cfg.storage.clone(),
        smsc: cfg.smsc.clone(),
        init: cfg.init.clone(),
        timeout: cfg.command_timeout,
    };
    let mut state = session::State::new(&cfg, parts);
    let mut backoff = Duration::from_secs(1);
    loop {
        let port = match open(&cfg.port, cfg.baud) {
            Ok(port) => port,
            Err(e) => {
                state.error("link");
                readiness.set(Some(format!("cannot open {}: {e}", cfg.port)));
                if wait_or_stop(&mut jobs, &mut backoff).await {
                    return;
                }
                continue;
            }
        };
        let mut modem = Modem::new(port, cfg.command_timeout);
        match modem.init(&setup).await {
            Ok(status) => {
                tracing::info!(backend = %cfg.name, port = %cfg.port, ?status, "modem ready");
                state.status(&status);
                readiness.set(None);
                backoff = Duration::from_secs(1);
            }
            Err(e) => {
                state.error("init");
                readiness.set(Some(e.to_string()));
                if !e.retryable() {
                    // An operator must act (PIN, PUK): refuse messages until then.
                    hold(&mut jobs, &e).await;
                    return;
                }
                if wait_or_stop(&mut jobs, &mut backoff).await {
                    return;
                }
                continue;
            }
        }
        let why = state.serve(&mut modem, &mut jobs).await;
        match why {
            None => return,
            Some(e) => {
                state.error("link");
                readiness.set(Some(format!("setting the modem up again after: {e}")));
            }
        }
    }
}

/// Open the serial port, exclusively (another process opening it is refused).
fn open(port: &str, baud: u32) -> Result<tokio_serial::SerialStream, tokio_serial::Error> {
    use tokio_serial::SerialPortBuilderExt;
    #[allow(unused_mut)]
    let mut stream = tokio_serial::new(port, baud)
        .timeout(Duration::from_secs(1))
        .open_native_async()?;
    #[cfg(unix)]
    stream.set_exclusive(true)?;
    Ok(stream)
}

/// Answer the messages that come while the modem is down until `backoff`
/// passed (then double it, up to [`MAX_RECONNECT`]); true once the sink is gone.
async fn wait_or_stop(jobs: &mut mpsc::Receiver<Job>, backoff: &mut Duration) -> bool {
    let until = tokio::time::Instant::now() + *backoff;
    *backoff = (*backoff * 2).min(MAX_RECONNECT);
    loop {
        tokio::select! {
            _ = tokio::time::sleep_until(until) => return false,
            job = jobs.recv() => match job {
                None => return true,
                Some(job) => {
                    let _ = job.reply.send(Attempt::Retry {
                        error: "the modem is not ready".into(),
                        after: None,
                    });
                }
            },
        }
    }
}

/// The modem needs an operator: every message is refused as transient
/// (it stays on its topic for after the fix), until the sink is gone.
async fn hold(jobs: &mut mpsc::Receiver<Job>, why: &InitError) {
    while let Some(job) = jobs.recv().await {
        let _ = job.reply.send(Attempt::Retry {
            error: format!("the modem is not ready: {why}"),
            after: None,
        });
    }
}
