//! A pipeline turned into running stages.
//!
//! [`Topology::stages`] is the graph the file implies (what `smsflow graph`
//! prints); [`Topology::start`] runs it, or one stage of it; and
//! [`Running::shutdown`] stops it in order: sources first, then each stage
//! drained downstream from the router, within the pipeline's deadline.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use anyhow::{bail, Context};
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use crate::apps::{self, runner::AppStage, App, Services};
use crate::backends::discard::{DiscardSink, SendHook};
use crate::backends::provider::ProviderSink;
use crate::backends::sent::SentLog;
use crate::backends::tester::{Tester, TesterSink};
use crate::backends::{self, Reports, Source};
use crate::bus::{Bus, TopicSpec};
use crate::config::{self, KafkaMode, Pipeline};
use crate::router::{inbound::Chain, RouteTable, RouterIn, RouterOut};
use crate::stage::{self, Handler, StageContext, StageControl};
use crate::state::optout::Keywords;
use crate::state::Tables;
use crate::web::actions::HttpState;
use crate::web::server as http;

mod load;
mod running;

pub use load::{load_file, load_str, load_str_in, CHECKS};
pub use running::Running;
use running::RunningStage;

/// What a stage is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StageKind {
    RouterIn,
    App {
        app: String,
        builtin: bool,
    },
    RouterOut,
    /// A backend: its source (HTTP) and its sink.
    Backend {
        backend: String,
    },
}

/// A stage, with the topics it reads and writes.
#[derive(Debug, Clone)]
pub struct StageInfo {
    /// `router-in`, `app:<name>`, `router-out`, `backend:<name>`.
    pub name: String,
    pub kind: StageKind,
    pub reads: Vec<String>,
    pub writes: Vec<String>,
}

/// A validated pipeline, ready to start.
pub struct Topology {
    pipeline: Pipeline,
    table: RouteTable,
    custom: HashMap<String, Arc<dyn App>>,
    hooks: HashMap<String, SendHook>,
}

impl Topology {
    /// A topology for a pipeline that passed [`crate::topology::load_file`].
    pub fn new(pipeline: Pipeline) -> anyhow::Result<Topology> {
        let table = RouteTable::build(&pipeline).map_err(|errs| {
            anyhow::anyhow!(
                "invalid routes: {}",
                errs.into_iter()
                    .map(|(p, m)| format!("{p}: {m}"))
                    .collect::<Vec<_>>()
                    .join("; ")
            )
        })?;
        Ok(Topology {
            pipeline,
            table,
            custom: HashMap::new(),
            hooks: HashMap::new(),
        })
    }

    /// Call `hook` with each message the `discard` backend `name` would send.
    pub fn with_send_hook(mut self, name: &str, hook: SendHook) -> Self {
        self.hooks.insert(name.to_owned(), hook);
        self
    }

    /// Whether the app `name` runs in this process (a built-in, or an
    /// external app registered with [`Topology::with_app`]).
    fn runs_here(&self, app: &config::App) -> bool {
        !matches!(app, config::App::External { .. }) || self.custom.contains_key(app.name())
    }

    /// The names of the apps chained into the router (in).
    pub fn chained_names(&self) -> Vec<&str> {
        self.chained().into_iter().map(config::App::name).collect()
    }

    /// The apps chained into the router (in), in pipeline order.
    fn chained(&self) -> Vec<&config::App> {
        self.pipeline
            .apps
            .iter()
            .filter(|a| self.pipeline.chain.includes(a.name()) && self.runs_here(a))
            .collect()
    }

    /// Run `app` for the pipeline's `external` app `name` in this process.
    pub fn with_app(mut self, name: &str, app: Arc<dyn App>) -> Self {
        self.custom.insert(name.to_owned(), app);
        self
    }

    pub fn pipeline(&self) -> &Pipeline {
        &self.pipeline
    }

    /// Every stage, in data-flow order.
    pub fn stages(&self) -> Vec<StageInfo> {
        let p = &self.pipeline;
        let t = &p.topics;
        let chained = self.chained();
        let is_chained = |a: &config::App| chained.iter().any(|c| c.name() == a.name());
        let mut writes: Vec<String> = p
            .apps
            .iter()
            .filter(|a| !is_chained(a))
            .map(|a| t.app(a.name()))
            .collect();
        if !chained.is_empty() {
            writes.extend(p.backends.iter().map(|b| t.send(b.name())));
        }
        if p.optout.is_some() {
            // The filter's own answers, and the opt-out list.
            writes.extend([t.outbound.clone(), t.optouts.clone()]);
        }
        if p.messagelog.is_some() {
            writes.push(t.log.clone());
        }
        writes.push(t.dlq.clone());
        let mut stages = vec![StageInfo {
            name: "router-in".into(),
            kind: StageKind::RouterIn,
            reads: vec![t.inbound.clone()],
            writes,
        }];
        for a in &p.apps {
            let builtin = !matches!(a, config::App::External { .. });
            if self.runs_here(a) && !is_chained(a) {
                let mut writes = vec![t.outbound.clone()];
                match a {
                    config::App::Registration { .. } => writes.push(t.contacts.clone()),
                    config::App::Poll { .. } => writes.push(t.polls.clone()),
                    _ => {}
                }
                writes.push(t.dlq.clone());
                stages.push(StageInfo {
                    name: format!("app:{}", a.name()),
                    kind: StageKind::App {
                        app: a.name().to_owned(),
                        builtin,
                    },
                    reads: vec![t.app(a.name())],
                    writes,
                });
            }
        }
        stages.push(StageInfo {
            name: "router-out".into(),
            kind: StageKind::RouterOut,
            reads: vec![t.outbound.clone()],
            writes: p
                .backends
                .iter()
                .map(|b| t.send(b.name()))
                .chain(p.optout.as_ref().map(|_| t.events.clone()))
                .chain(p.messagelog.as_ref().map(|_| t.log.clone()))
                .chain([t.dlq.clone()])
                .collect(),
        });
        for b in &p.backends {
            stages.push(StageInfo {
                name: format!("backend:{}", b.name()),
                kind: StageKind::Backend {
                    backend: b.name().to_owned(),
                },
                reads: vec![t.send(b.name())],
                writes: vec![t.inbound.clone(), t.events.clone(), t.dlq.clone()],
            });
        }
        stages
    }

    /// Every topic the pipeline uses.
    pub fn topics(&self) -> Vec<TopicSpec> {
        let t = &self.pipeline.topics;
        let mut names = vec![
            t.inbound.clone(),
            t.outbound.clone(),
            t.events.clone(),
            t.dlq.clone(),
        ];
        names.extend(self.pipeline.apps.iter().map(|a| t.app(a.name())));
        names.extend(self.pipeline.backends.iter().map(|b| t.send(b.name())));
        let mut specs: Vec<TopicSpec> = names
            .into_iter()
            .map(|name| TopicSpec {
                name,
                partitions: t.partitions,
                replication: t.replication,
                compacted: false,
            })
            .collect();
        for b in &self.pipeline.backends {
            // Sinks that call a provider keep a sent-log.
            if b.sending().is_some() {
                specs.push(TopicSpec {
                    name: sent_topic(t, b.name()),
                    partitions: t.partitions,
                    replication: t.replication,
                    compacted: true,
                });
            }
        }
        // Tables: the latest record per key is what counts.
        for name in [&t.contacts, &t.optouts, &t.polls] {
            specs.push(TopicSpec {
                name: name.clone(),
                partitions: t.partitions,
                replication: t.replication,
                compacted: true,
            });
        }
        specs.push(TopicSpec {
            name: t.log.clone(),
            partitions: t.partitions,
            replication: t.replication,
            compacted: false,
        });
        specs
    }

    /// Start every stage (or only `only`), and the HTTP server when `http`.
    pub async fn start(self, only: Option<&str>, http: bool) -> anyhow::Result<Running> {
        let p = &self.pipeline;
        let stages: Vec<StageInfo> = match only {
            None => self.stages(),
            Some(name) => {
                if p.kafka.mode == KafkaMode::Embedded {
                    bail!("--stage needs a Kafka bus: the embedded bus lives inside one process, so run the whole pipeline there");
                }
                let all = self.stages();
                let names: Vec<String> = all.iter().map(|s| s.name.clone()).collect();
                let one: Vec<StageInfo> = all.into_iter().filter(|s| s.name == name).collect();
                if one.is_empty() {
                    bail!(
                        "no stage {name:?} in this pipeline; its stages are: {}",
                        names.join(", ")
                    );
                }
                one
            }
        };
        let bus = Bus::connect(&p.kafka, &self.topics())
            .await
            .context("cannot connect to the bus")?;
        if !bus.durable() {
            warn!(
                "the {:?} bus is not durable: records in flight are lost when the process stops",
                p.kafka.mode
            );
        }
        let producer = bus.producer()?;
        let t = &p.topics;
        let dlq: Arc<str> = Arc::from(t.dlq.as_str());
        // Tables before stages: on the embedded bus they must join before
        // anything is written.
        let tables = Tables::new(p);
        let followers = tables.follow(&bus, &producer, p).await.context(
            "cannot read the pipeline's tables (contacts, opt-outs, polls, log, events)",
        )?;
        let services = Services::of(&tables);
        if let config::Chain::Apps(names) = &p.chain {
            for name in names {
                if let Some(a) = p.apps.iter().find(|a| a.name() == name) {
                    if !self.runs_here(a) {
                        bail!("cannot chain app {name:?}: it is external and no implementation was registered in this process (Topology::with_app)");
                    }
                }
            }
        }
        let apps_in_order: Vec<(String, Arc<dyn App>)> = p
            .apps
            .iter()
            .filter_map(|a| {
                let app = self
                    .custom
                    .get(a.name())
                    .cloned()
                    .or_else(|| apps::build(a, &tables.polls))?;
                Some((a.name().to_owned(), app))
            })
            .collect();

        let send_topics: HashMap<String, Arc<str>> = p
            .backends
            .iter()
            .map(|b| (b.name().to_owned(), Arc::from(t.send(b.name()).as_str())))
            .collect();
        let all_apps: Vec<Arc<dyn App>> = apps_in_order.iter().map(|(_, a)| a.clone()).collect();
        let router_out = |stage: &str| {
            let mut out = RouterOut::new(stage, all_apps.clone(), send_topics.clone());
            if p.optout.is_some() {
                out = out.with_optouts(tables.optouts.clone(), Arc::from(t.events.as_str()));
            }
            if p.messagelog.is_some() {
                out = out.with_log(Arc::from(t.log.as_str()), tables.contacts.clone());
            }
            out
        };
        let chained: Vec<(String, Arc<dyn App>)> = apps_in_order
            .iter()
            .filter(|(name, _)| self.chained().iter().any(|c| c.name() == name))
            .cloned()
            .collect();

        // Listen first: callback URLs are built on the address.
        let listener = match http {
            true => Some(bind(p).await?),
            false => None,
        };
        let http_addr = listener.as_ref().and_then(|l| l.public.local_addr().ok());
        let admin_addr = listener.as_ref().and_then(|l| l.admin.local_addr().ok());
        let public = match (&p.http.public_url, http_addr) {
            (None, Some(addr)) => format!("http://{addr}"),
            _ => p.http.public_base(),
        };

        let mut testers: HashMap<String, Arc<Tester>> = HashMap::new();
        let mut routes: Vec<axum::Router> = Vec::new();
        let mut started = Vec::new();
        // `/readyz`: false until every stage started, and again once one
        // stopped on an error (`failed` keeps it so across the start).
        let ready = Arc::new(AtomicBool::new(false));
        let failed = Arc::new(AtomicBool::new(false));
        // Consumers join before any source accepts a message, so the embedded
        // bus knows every group and holds records for it.
        for s in &stages {
            let ctx = StageContext {
                name: Arc::from(s.name.as_str()),
                dlq: dlq.clone(),
            };
            let group = format!("{}.{}", p.kafka.group, s.name);
            let reads: Vec<&str> = s.reads.iter().map(String::as_str).collect();
            let consumer = bus.consumer(&group, &reads)?;
            let handler: StageHandler = match &s.kind {
                StageKind::RouterIn => {
                    let mut router =
                        RouterIn::new(ctx.name.clone(), p, self.table.clone(), services.clone());
                    if let Some(cfg) = &p.optout {
                        router = router.with_optout(Keywords::new(cfg), tables.optouts.clone());
                    }
                    if !chained.is_empty() {
                        router = router.with_chain(Chain::new(
                            chained.clone(),
                            router_out(&s.name),
                            Arc::from(t.outbound.as_str()),
                            dlq.clone(),
                        ));
                    }
                    StageHandler::RouterIn(router)
                }
                StageKind::RouterOut => StageHandler::RouterOut(router_out(&s.name)),
                StageKind::App { app, .. } => {
                    let Some((_, a)) = apps_in_order.iter().find(|(n, _)| n == app) else {
                        continue;
                    };
                    StageHandler::App(AppStage::new(
                        a.clone(),
                        services.clone(),
                        Arc::from(t.outbound.as_str()),
                    ))
                }
                StageKind::Backend { backend } => {
                    let Some(cfg) = p.backends.iter().find(|b| b.name() == backend) else {
                        continue;
                    };
                    let source = Source::new(
                        backend,
                        producer.clone(),
                        Arc::from(t.inbound.as_str()),
                        p.http.accept_timeout,
                    );
                    match cfg {
                        config::Backend::Tester { name, history } => {
                            let tester = Arc::new(Tester::new(name, *history, source));
                            testers.insert(name.clone(), tester.clone());
                            StageHandler::Tester(TesterSink::new(
                                tester,
                                Arc::from(t.events.as_str()),
                            ))
                        }
                        config::Backend::Discard { name, .. } => {
                            let reports = Reports::new(
                                name,
                                producer.clone(),
                                Arc::from(t.events.as_str()),
                                p.http.accept_timeout,
                                SentLog::new(Arc::from(sent_topic(t, name).as_str())),
                            );
                            routes.extend(backends::build::discard(cfg, source, reports));
                            StageHandler::Discard(DiscardSink::new(
                                name,
                                self.hooks.get(name).cloned(),
                            ))
                        }
                        _ => {
                            let name = cfg.name();
                            let sent_topic = Arc::from(sent_topic(t, name).as_str());
                            let log = SentLog::restore(&bus, sent_topic, &group)
                                .await
                                .with_context(|| format!("cannot read the sent-log of {name}"))?;
                            let events: Arc<str> = Arc::from(t.events.as_str());
                            let reports = Reports::new(
                                name,
                                producer.clone(),
                                events.clone(),
                                p.http.accept_timeout,
                                log.clone(),
                            );
                            let default_sending = config::Sending::default();
                            let sending = cfg.sending().unwrap_or(&default_sending);
                            let client = backends::provider::client(sending)
                                .with_context(|| format!("backend {name:?}"))?;
                            let Some((provider, router)) =
                                backends::build::provider(cfg, &public, source, reports, client)
                            else {
                                bail!("backend {name:?} calls no provider");
                            };
                            routes.push(router);
                            StageHandler::Provider(ProviderSink::new(
                                name,
                                provider,
                                cfg.sending().unwrap_or(&config::Sending::default()),
                                log,
                                producer.clone(),
                                events,
                            ))
                        }
                    }
                }
            };
            let control = StageControl {
                drain_until_idle: only.is_none(),
                ..StageControl::default()
            };
            let task = tokio::spawn(running::watched(
                s.name.clone(),
                stage::run(ctx, consumer, producer.clone(), handler, control.clone()),
                ready.clone(),
                failed.clone(),
            ));
            info!(stage = %s.name, reads = ?s.reads, "stage started");
            started.push(RunningStage {
                name: s.name.clone(),
                task,
                control,
            });
        }

        let http_shutdown = CancellationToken::new();
        let mut http_task = None;
        if let Some(listener) = listener {
            let state = Arc::new(HttpState {
                testers: testers.clone(),
                backends: routes,
                ready: ready.clone(),
                failed: failed.clone(),
                tables: tables.clone(),
                producer: producer.clone(),
                pipeline: Arc::new(p.clone()),
            });
            let serving = http::serve(listener, state, http_shutdown.clone())?;
            http_task = Some(tokio::spawn(serving));
        }
        ready.store(true, Ordering::SeqCst);
        // A stage that stopped on an error while the others started keeps
        // the process unready.
        if failed.load(Ordering::SeqCst) {
            ready.store(false, Ordering::SeqCst);
        }
        Ok(Running {
            bus,
            tables,
            followers,
            producer,
            testers,
            stages: started,
            http_task,
            http_shutdown,
            http_addr,
            admin_addr,
            deadline: p.shutdown_timeout,
        })
    }
}

/// Bind the public and the admin listener; refuse an admin listener (or a
/// tester on it) that anyone could reach.
async fn bind(p: &Pipeline) -> anyhow::Result<http::Listeners> {
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
    Ok(http::Listeners { public, admin })
}

/// The sent-log topic of a backend: `<send topic>.sent`.
fn sent_topic(t: &config::Topics, backend: &str) -> String {
    format!("{}.sent", t.send(backend))
}

/// The handler of each kind of stage: a closed set, dispatched in one place.
// One per stage, built once: its size does not matter.
#[allow(clippy::large_enum_variant)]
enum StageHandler {
    RouterIn(RouterIn),
    RouterOut(RouterOut),
    App(AppStage),
    Tester(TesterSink),
    Provider(ProviderSink),
    Discard(DiscardSink),
}

impl Handler for StageHandler {
    async fn handle(
        &mut self,
        record: &crate::bus::Record,
        out: &mut stage::Output,
    ) -> Result<(), stage::HandleError> {
        match self {
            StageHandler::RouterIn(h) => h.handle(record, out).await,
            StageHandler::RouterOut(h) => h.handle(record, out).await,
            StageHandler::App(h) => h.handle(record, out).await,
            StageHandler::Tester(h) => h.handle(record, out).await,
            StageHandler::Provider(h) => h.handle(record, out).await,
            StageHandler::Discard(h) => h.handle(record, out).await,
        }
    }
}
