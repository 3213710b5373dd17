//! A started pipeline: its stages, HTTP server and tables, and the ordered
//! shutdown.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::bail;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tracing::{error, info};

use crate::backends::tester::Tester;
use crate::bus::{Bus, BusError, Producer, Rebalances};
use crate::stage::StageControl;
use crate::state::table::Follower;
use crate::state::Tables;

/// A stage's name and its consumer's assignment.
type Member = (String, Arc<Rebalances>);

/// What `/readyz` answers: ready once every stage started (its tables and
/// sent-logs read to their ends), while each stage's consumer holds an
/// assignment from its group (possibly empty: more replicas than
/// partitions) and the broker answers; not ready once a stage stopped on
/// an error.
#[derive(Clone, Default)]
pub(super) struct Health {
    pub(super) ready: Arc<AtomicBool>,
    pub(super) failed: Arc<AtomicBool>,
    /// Each stage's consumer, by stage name.
    members: Arc<Mutex<Vec<Member>>>,
    /// Why the broker is not reachable, as last checked.
    broker: Arc<Mutex<Option<String>>>,
    /// The modems' readiness.
    modems: Arc<Mutex<Vec<crate::backends::modem::Readiness>>>,
}

impl Health {
    /// Every stage started: ready, unless one stopped on an error while the
    /// others started.
    pub(super) fn started(&self) {
        self.ready.store(true, Ordering::SeqCst);
        if self.failed.load(Ordering::SeqCst) {
            self.ready.store(false, Ordering::SeqCst);
        }
    }

    /// `stage`'s consumer is a group member whose assignment is `rebalances`.
    pub(super) fn member(&self, stage: &str, rebalances: Arc<Rebalances>) {
        lock(&self.members).push((stage.to_owned(), rebalances));
    }

    /// Ready only while `modem` is.
    pub(super) fn check(&self, modem: crate::backends::modem::Readiness) {
        lock(&self.modems).push(modem);
    }

    /// Ready, or why not.
    pub(super) fn status(&self) -> Result<(), String> {
        if self.failed.load(Ordering::Acquire) {
            return Err("a stage stopped on an error (the log names it and the cause)".into());
        }
        if !self.ready.load(Ordering::Acquire) {
            return Err("starting: tables and sent-logs are being read".into());
        }
        // The cause (addresses, librdkafka's words) is in the log, not in
        // an answer strangers on the public listener can read.
        if lock(&self.broker).is_some() {
            return Err("the broker does not answer (the log says why)".into());
        }
        // A modem's reason names no secret (the PIN is never quoted).
        lock(&self.modems).iter().try_for_each(|m| m.status())?;
        let members = lock(&self.members);
        match members.iter().find(|(_, r)| !r.joined()) {
            Some((stage, _)) => Err(format!("{stage}: no partitions assigned by its group yet")),
            None => Ok(()),
        }
    }

    /// Ask the broker every few seconds whether it answers (Kafka only),
    /// until the returned task is aborted.
    pub(super) fn watch_broker(&self, producer: &Producer) -> Option<JoinHandle<()>> {
        let Producer::Kafka(k) = producer else {
            return None;
        };
        let (k, broker) = (k.clone(), self.broker.clone());
        Some(tokio::spawn(async move {
            loop {
                let answer = k.reachable(Duration::from_secs(5)).await.err();
                if let Some(why) = &answer {
                    tracing::warn!(error = %why, "the broker does not answer; not ready");
                }
                *lock(&broker) = answer.map(|e| e.to_string());
                tokio::time::sleep(Duration::from_secs(5)).await;
            }
        }))
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// Run a stage; once it stops on an error the process is no longer ready
/// (`/readyz` answers 503) and `failed` says so.
async fn watched(
    name: String,
    stage: impl std::future::Future<Output = Result<(), BusError>>,
    ready: Arc<AtomicBool>,
    failed: Arc<AtomicBool>,
) -> Result<(), BusError> {
    let result = stage.await;
    if let Err(e) = &result {
        failed.store(true, Ordering::SeqCst);
        ready.store(false, Ordering::SeqCst);
        error!(stage = %name, error = %e, "stage stopped on an error; not ready");
    }
    result
}

/// A stage's task and the signals it listens to.
pub(super) struct RunningStage {
    pub(super) name: String,
    pub(super) task: JoinHandle<Result<(), BusError>>,
    pub(super) control: StageControl,
}

impl RunningStage {
    /// Run the stage `name` (`run`, listening to `control`) in a task of
    /// its own, watched by `health`.
    pub(super) fn spawn(
        name: &str,
        run: impl std::future::Future<Output = Result<(), BusError>> + Send + 'static,
        control: StageControl,
        health: &Health,
    ) -> RunningStage {
        let task = tokio::spawn(watched(
            name.to_owned(),
            run,
            health.ready.clone(),
            health.failed.clone(),
        ));
        RunningStage {
            name: name.to_owned(),
            task,
            control,
        }
    }
}

/// A started pipeline.
pub struct Running {
    /// The pipeline it runs.
    pub(super) pipeline: Arc<crate::config::Pipeline>,
    pub(super) tables: Tables,
    /// Dropped after the stages (see `shutdown`).
    pub(super) followers: Vec<Follower>,
    pub(super) producer: crate::bus::Producer,
    pub(super) testers: HashMap<String, Arc<Tester>>,
    pub(super) stages: Vec<RunningStage>,
    pub(super) http_task: Option<JoinHandle<std::io::Result<()>>>,
    pub(super) http_shutdown: CancellationToken,
    /// Asks the broker whether it answers, for `/readyz`.
    pub(super) broker_watch: Option<JoinHandle<()>>,
    pub(super) http_addr: Option<SocketAddr>,
    pub(super) admin_addr: Option<SocketAddr>,
    pub(super) deadline: Duration,
    /// Last: fields drop in order, and the clients above must go before the
    /// bus (in mock mode the bus owns the cluster they talk to).
    pub(super) bus: Bus,
}

impl Running {
    /// The tester backend `name`, or the only one when `None`.
    /// What an operator's campaign commands need of this pipeline
    /// (conversation scripts start campaigns through it).
    pub fn control(&self) -> crate::campaign::control::Ctx<'_> {
        crate::campaign::control::Ctx {
            pipeline: &self.pipeline,
            tables: &self.tables,
            producer: &self.producer,
        }
    }

    pub fn tester(&self, name: Option<&str>) -> Option<Arc<Tester>> {
        match name {
            Some(n) => self.testers.get(n).cloned(),
            None => self.testers.values().next().cloned(),
        }
    }

    pub fn bus(&self) -> &Bus {
        &self.bus
    }

    /// The tables this process keeps (contacts, opt-outs, polls, log, status).
    pub fn tables(&self) -> &Tables {
        &self.tables
    }

    /// The public listener's address (webhooks, probes).
    pub fn http_addr(&self) -> Option<SocketAddr> {
        self.http_addr
    }

    /// The admin listener's address (operator pages, API, tester, metrics).
    pub fn admin_addr(&self) -> Option<SocketAddr> {
        self.admin_addr
    }

    /// Resolves when a stage stopped on its own (a fatal bus error).
    pub async fn failed(&mut self) -> String {
        loop {
            for s in &mut self.stages {
                if s.task.is_finished() {
                    return s.name.clone();
                }
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }

    /// Stop sources, drain every stage in data-flow order, flush, commit.
    /// Returns an error when the deadline passed or a stage failed.
    pub async fn shutdown(self) -> anyhow::Result<()> {
        let deadline = tokio::time::Instant::now() + self.deadline;
        if let Some(w) = &self.broker_watch {
            w.abort();
        }
        self.http_shutdown.cancel();
        if let Some(h) = self.http_task {
            let _ = tokio::time::timeout_at(deadline, h).await;
        }
        let mut failures = Vec::new();
        drop(self.testers);
        let mut stages = self.stages.into_iter();
        for s in stages.by_ref() {
            s.control.drain.cancel();
            let stop = s.control.stop.clone();
            match tokio::time::timeout_at(deadline, s.task).await {
                Ok(Ok(Ok(()))) => info!(stage = %s.name, "stage drained"),
                Ok(Ok(Err(e))) => failures.push(format!("{}: {e}", s.name)),
                Ok(Err(join)) => failures.push(format!("{}: {join}", s.name)),
                Err(_) => {
                    stop.cancel();
                    failures.push(format!(
                        "{}: not drained within {:?}",
                        s.name, self.deadline
                    ));
                    break;
                }
            }
        }
        for s in stages {
            s.control.stop.cancel();
            failures.push(format!(
                "{}: stopped without draining (deadline passed)",
                s.name
            ));
        }
        drop(self.followers);
        if let Err(e) = self.producer.flush(Duration::from_secs(5)).await {
            failures.push(format!("producer flush: {e}"));
        }
        if failures.is_empty() {
            info!("pipeline stopped cleanly");
            Ok(())
        } else {
            for f in &failures {
                error!(failure = %f, "shutdown");
            }
            bail!("shutdown was not clean: {}", failures.join("; "))
        }
    }
}
