//! A pipeline turned into running stages.
//!
//! [`Topology::stages`] is the graph the file implies (what `smsflow graph`
//! prints); [`Topology::start`] runs it, or one stage of it; and
//! [`Running::shutdown`] stops it in order: sources first, then each stage
//! drained downstream from the router, within the pipeline's deadline.

use std::collections::HashMap;
use std::sync::Arc;

use anyhow::{bail, Context};
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use crate::apps::{App, Services};
use crate::backends::discard::SendHook;
use crate::bus::{Bus, TopicSpec};
use crate::config::{self, KafkaMode, Pipeline};
use crate::router::RouteTable;
use crate::stage::{self, StageContext, StageControl};
use crate::web::actions::HttpState;

mod analytics;
mod app_stages;
mod campaigns;
mod export;
mod handler;
mod load;
mod routers;
mod running;
mod servers;
mod sinks;
mod tables;

use app_stages::Apps;
use campaigns::Campaigns;
use handler::StageHandler;
pub use load::{load_file, load_str, load_str_in, CHECKS};
use routers::Routers;
pub use running::Running;
use running::{Health, RunningStage};
use sinks::{bulk_sent_topic, has_bulk_lane, sent_topic, Sinks};

/// What a stage is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StageKind {
    RouterIn,
    App {
        app: String,
        builtin: bool,
    },
    RouterOut,
    /// Campaigns: their frozen audiences → each backend's bulk lane.
    Campaign,
    /// A backend: its source (HTTP) and its sink; with campaigns, its sink
    /// reads the bulk lane too (the second topic of `reads`), with a
    /// consumer of its own.
    Backend {
        backend: String,
    },
    /// Statistics: `sms.inbound`, the app topics and `sms.events` counted
    /// in windows, written to `topics.stats`.
    Analytics,
    /// Topics to Parquet or Avro files (`export:`).
    Export,
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
    /// The campaign stage's clock (a test's fake one); the system's by default.
    clock: Option<Arc<dyn crate::campaign::quiet::Clock>>,
    /// Whether the backends' sinks and the campaign stage run (not in a replay).
    sinks: bool,
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
            clock: None,
            sinks: true,
        })
    }

    /// Run the campaign stage on `clock` (tests: a fake one).
    pub fn with_clock(mut self, clock: Arc<dyn crate::campaign::quiet::Clock>) -> Self {
        self.clock = Some(clock);
        self
    }

    /// Start no backend sink and no campaign stage: nothing leaves for a
    /// provider (`smsflow replay` runs the router and the apps only).
    pub fn without_sinks(mut self) -> Self {
        self.sinks = false;
        self
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
        if p.campaigns.is_some() {
            let mut writes: Vec<String> = p
                .backends
                .iter()
                .filter(|b| has_bulk_lane(p, b))
                .map(|b| t.bulk(b.name()))
                .collect();
            writes.extend([t.events.clone(), t.campaigns.clone(), t.dlq.clone()]);
            stages.push(StageInfo {
                name: "campaign".into(),
                kind: StageKind::Campaign,
                reads: vec![t.audience.clone()],
                writes,
            });
        }
        for b in &p.backends {
            let mut reads = vec![t.send(b.name())];
            if has_bulk_lane(p, b) {
                reads.push(t.bulk(b.name()));
            }
            stages.push(StageInfo {
                name: format!("backend:{}", b.name()),
                kind: StageKind::Backend {
                    backend: b.name().to_owned(),
                },
                reads,
                writes: vec![t.inbound.clone(), t.events.clone(), t.dlq.clone()],
            });
        }
        if p.export.is_some() {
            stages.push(StageInfo {
                name: export::NAME.into(),
                kind: StageKind::Export,
                reads: export::reads(p),
                writes: vec![t.dlq.clone()],
            });
        }
        // Last: it reads what every other stage writes, and drains after them.
        if p.analytics.is_some() {
            stages.push(StageInfo {
                name: "analytics".into(),
                kind: StageKind::Analytics,
                reads: analytics::reads(p),
                writes: vec![t.stats.clone()],
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
                retention: None,
            })
            .collect();
        let p = &self.pipeline;
        let plain = |name: String| TopicSpec {
            name,
            partitions: t.partitions,
            replication: t.replication,
            compacted: false,
            retention: None,
        };
        let sent_log = |name: String| TopicSpec {
            compacted: true,
            retention: Some(t.sent_retention),
            ..plain(name)
        };
        for b in &p.backends {
            // Sinks that call a provider keep a sent-log, one per lane.
            if b.sending().is_some() {
                specs.push(sent_log(sent_topic(t, b.name())));
                if has_bulk_lane(p, b) {
                    specs.push(sent_log(bulk_sent_topic(t, b.name())));
                }
            }
            if has_bulk_lane(p, b) {
                specs.push(plain(t.bulk(b.name())));
            }
        }
        // sms.stats: written by the analytics stage (with `analytics:`),
        // read by the dashboard in every pipeline.
        let mut tables = vec![&t.contacts, &t.optouts, &t.polls, &t.stats];
        if p.campaigns.is_some() {
            tables.push(&t.campaigns);
            specs.push(plain(t.audience.clone()));
        }
        // Tables: the latest record per key is what counts.
        for name in tables {
            specs.push(TopicSpec {
                name: name.clone(),
                partitions: t.partitions,
                replication: t.replication,
                compacted: true,
                retention: None,
            });
        }
        specs.push(TopicSpec {
            name: t.log.clone(),
            partitions: t.partitions,
            replication: t.replication,
            compacted: false,
            retention: None,
        });
        specs
    }

    /// The stages this process runs: every one, or only `only` (on a Kafka
    /// bus: the embedded one lives inside one process).
    fn selected(&self, only: Option<&str>) -> anyhow::Result<Vec<StageInfo>> {
        let Some(name) = only else {
            return Ok(self.stages());
        };
        if self.pipeline.kafka.mode == KafkaMode::Embedded {
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
        Ok(one)
    }

    /// Refuse to chain an external app no implementation was registered for.
    fn check_chain(&self) -> anyhow::Result<()> {
        let p = &self.pipeline;
        if let config::Chain::Apps(names) = &p.chain {
            for name in names {
                if let Some(a) = p.apps.iter().find(|a| a.name() == name) {
                    if !self.runs_here(a) {
                        bail!("cannot chain app {name:?}: it is external and no implementation was registered in this process (Topology::with_app)");
                    }
                }
            }
        }
        Ok(())
    }

    /// Start every stage (or only `only`), and the HTTP server when `http`.
    pub async fn start(self, only: Option<&str>, http: bool) -> anyhow::Result<Running> {
        let p = &self.pipeline;
        let t = &p.topics;
        let mut stages = self.selected(only)?;
        if !self.sinks {
            stages.retain(|s| !matches!(s.kind, StageKind::Backend { .. } | StageKind::Campaign));
        }
        let bus = connect(p, &self.topics()).await?;
        let producer = bus.producer()?;
        // Tables before stages: on the embedded bus they must join before
        // anything is written.
        // A process running only the export stage reads no table (its
        // files, not the tables, are its state): it does not wait for
        // `sms.events` to be read to its end first.
        let (tables, followers) = match stages.iter().all(|s| s.kind == StageKind::Export) {
            true => (crate::state::Tables::new(p), Vec::new()),
            false => tables::follow(&bus, &producer, p).await?,
        };
        let services = Services::of(&tables);
        self.check_chain()?;
        let apps = Apps::build(p, &self.custom, &tables, &self.chained_names());
        let routers = Routers::new(p, &self.table, &tables, &services, &apps);
        let campaigns = Campaigns::new(p, &tables, &producer, self.clock.clone());

        // Listen first: callback URLs are built on the address.
        let listeners = match http {
            true => Some(servers::bind(p).await?),
            false => None,
        };
        let http_addr = listeners.as_ref().and_then(|l| l.public.local_addr().ok());
        let admin_addr = listeners.as_ref().and_then(|l| l.admin.local_addr().ok());
        let public = servers::public_base(p, http_addr);
        let mut sinks = Sinks::new(p, &bus, &producer, &public, &self.hooks);

        let health = Health::default();
        let dlq: Arc<str> = Arc::from(t.dlq.as_str());
        let mut started = Vec::new();
        // Consumers join before any source accepts a message, so the embedded
        // bus knows every group and holds records for it.
        for s in &stages {
            let ctx = StageContext {
                name: Arc::from(s.name.as_str()),
                dlq: dlq.clone(),
            };
            let group = format!("{}.{}", p.kafka.group, s.name);
            let mut reads: Vec<&str> = s.reads.iter().map(String::as_str).collect();
            // A backend's bulk lane has a consumer of its own.
            let bulk_topic = match s.kind {
                StageKind::Backend { .. } if reads.len() > 1 => reads.pop(),
                _ => None,
            };
            let consumer = bus.consumer(&group, &reads)?;
            if s.kind == StageKind::Export {
                let control = StageControl {
                    drain_until_idle: only.is_none(),
                    ..StageControl::default()
                };
                let ctx = ctx.clone();
                if let Some(stage) = export::spawn(p, ctx, consumer, &producer, control, &health) {
                    info!(stage = %s.name, reads = ?s.reads, "stage started");
                    started.push(stage);
                }
                continue;
            }
            let mut bulk = None;
            let handler = match &s.kind {
                StageKind::RouterIn => StageHandler::RouterIn(routers.incoming(&ctx.name, &dlq)),
                StageKind::RouterOut => StageHandler::RouterOut(routers.outgoing(&s.name)),
                StageKind::App { app, .. } => match apps.stage(app, &services, &t.outbound) {
                    Some(stage) => StageHandler::App(stage),
                    None => continue,
                },
                StageKind::Campaign => StageHandler::Campaign(
                    campaigns.stage().follow_assignment(consumer.rebalances()),
                ),
                StageKind::Analytics => StageHandler::Analytics(
                    analytics::stage(p, &bus, &producer, &group, consumer.rebalances())
                        .await
                        .context("cannot start the analytics stage")?,
                ),
                StageKind::Export => continue,
                StageKind::Backend { backend } => {
                    match sinks.stage(backend, &group, consumer.rebalances()).await? {
                        Some((handler, lane)) => {
                            bulk = lane.zip(bulk_topic);
                            handler
                        }
                        None => continue,
                    }
                }
            };
            let control = StageControl {
                drain_until_idle: only.is_none(),
                ..StageControl::default()
            };
            health.member(&s.name, consumer.rebalances());
            let run = stage::run(ctx, consumer, producer.clone(), handler, control.clone());
            let stage = RunningStage::spawn(&s.name, run, control, &health);
            info!(stage = %s.name, reads = ?s.reads, "stage started");
            started.push(stage);
            if let Some((handler, topic)) = bulk {
                let name = format!("{}:bulk", s.name);
                let consumer = bus.consumer(&format!("{group}.bulk"), &[topic])?;
                let handler = Sinks::follow_bulk(handler, consumer.rebalances());
                let ctx = StageContext {
                    name: Arc::from(name.as_str()),
                    dlq: dlq.clone(),
                };
                let control = StageControl {
                    drain_until_idle: only.is_none(),
                    ..StageControl::default()
                };
                health.member(&name, consumer.rebalances());
                let run = stage::run(ctx, consumer, producer.clone(), handler, control.clone());
                started.push(RunningStage::spawn(&name, run, control, &health));
                info!(stage = %name, reads = ?[topic], "bulk lane started");
            }
        }
        let Sinks {
            testers,
            webhooks,
            modems,
            ..
        } = sinks;
        for modem in modems {
            health.check(modem);
        }

        let http_shutdown = CancellationToken::new();
        let http_task = match listeners {
            Some(listeners) => {
                let state = HttpState {
                    testers: testers.clone(),
                    backends: webhooks,
                    ready: {
                        let health = health.clone();
                        Arc::new(move || health.status())
                    },
                    tables: tables.clone(),
                    producer: producer.clone(),
                    pipeline: Arc::new(p.clone()),
                };
                Some(servers::serve(listeners, state, &http_shutdown)?)
            }
            None => None,
        };
        health.started();
        let broker_watch = health.watch_broker(&producer);
        Ok(Running {
            broker_watch,
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
            pipeline: Arc::new(p.clone()),
        })
    }
}

/// Connect to the pipeline's bus, creating `topics`; warn when it is not durable.
async fn connect(p: &Pipeline, topics: &[TopicSpec]) -> anyhow::Result<Bus> {
    let bus = Bus::connect(&p.kafka, topics)
        .await
        .context("cannot connect to the bus")?;
    if !bus.durable() {
        warn!(
            "the {:?} bus is not durable: records in flight are lost when the process stops",
            p.kafka.mode
        );
    }
    // Before any record is written: Confluent-framed records carry the
    // registry's ids.
    if let Some(registry) = &p.kafka.schema_registry {
        crate::schema::registry::register(p, registry)
            .await
            .context("cannot register the schemas")?;
    }
    Ok(bus)
}
