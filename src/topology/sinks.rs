//! A backend's stage: its source (what writes `sms.inbound`, and the
//! webhooks the public listener serves for it) and its sink, which reads
//! `sms.send.<backend>`: the tester, discard, or a provider's.

use std::collections::HashMap;
use std::sync::Arc;

use anyhow::{bail, Context};

use crate::backends::discard::{DiscardSink, SendHook};
use crate::backends::provider::ProviderSink;
use crate::backends::sent::SentLog;
use crate::backends::tester::{Tester, TesterSink};
use crate::backends::{self, Reports, Source};
use crate::bus::{Bus, Producer, Rebalances};
use crate::config::{self, Pipeline, Topics};

use super::handler::StageHandler;

/// The sent-log topic of a backend: `<send topic>.sent`.
pub(super) fn sent_topic(t: &Topics, backend: &str) -> String {
    format!("{}.sent", t.send(backend))
}

/// The sent-log topic of a backend's bulk lane: `<bulk topic>.sent`.
pub(super) fn bulk_sent_topic(t: &Topics, backend: &str) -> String {
    format!("{}.sent", t.bulk(backend))
}

/// Whether `b` takes campaigns: every backend, with `campaigns:`.
pub(super) fn has_bulk_lane(p: &Pipeline, _: &config::Backend) -> bool {
    p.campaigns.is_some()
}

/// Builds the backends' stages, and keeps what the HTTP servers need of
/// them: the testers and every backend's webhooks.
pub(super) struct Sinks<'a> {
    p: &'a Pipeline,
    bus: &'a Bus,
    producer: &'a Producer,
    /// The base of the callback URLs providers are given.
    public: &'a str,
    /// What the `discard` backends call with each message.
    hooks: &'a HashMap<String, SendHook>,
    pub(super) testers: HashMap<String, Arc<Tester>>,
    /// Each backend's webhook routes.
    pub(super) webhooks: Vec<axum::Router>,
    /// Each modem backend's readiness, for `/readyz`.
    pub(super) modems: Vec<crate::backends::modem::Readiness>,
}

impl<'a> Sinks<'a> {
    pub(super) fn new(
        p: &'a Pipeline,
        bus: &'a Bus,
        producer: &'a Producer,
        public: &'a str,
        hooks: &'a HashMap<String, SendHook>,
    ) -> Self {
        Sinks {
            p,
            bus,
            producer,
            public,
            hooks,
            testers: HashMap::new(),
            webhooks: Vec::new(),
            modems: Vec::new(),
        }
    }

    /// The stage of the backend `backend`, whose consumer group is `group`,
    /// and the handler of its bulk lane when it has one; `None` when the
    /// pipeline has no such backend.
    pub(super) async fn stage(
        &mut self,
        backend: &str,
        group: &str,
        rebalances: Arc<Rebalances>,
    ) -> anyhow::Result<Option<(StageHandler, Option<StageHandler>)>> {
        let Some(cfg) = self.p.backends.iter().find(|b| b.name() == backend) else {
            return Ok(None);
        };
        let source = self.source(backend);
        let bulk = has_bulk_lane(self.p, cfg);
        Ok(Some(match cfg {
            config::Backend::Tester { name, history } => {
                let sink = self.tester(name, *history, source);
                let lane = bulk.then(|| StageHandler::Tester(sink.bulk_lane()));
                (StageHandler::Tester(sink), lane)
            }
            config::Backend::Discard { name, .. } => (
                StageHandler::Discard(self.discard(cfg, name, source)),
                bulk.then(|| {
                    let events = Arc::from(self.p.topics.events.as_str());
                    let hook = self.hooks.get(name.as_str()).cloned();
                    StageHandler::Discard(DiscardSink::new(name, hook).with_events(events))
                }),
            ),
            _ => {
                let send_topic = self.p.topics.send(backend);
                let mut sink = self
                    .provider(cfg, source, group)
                    .await?
                    .share_limits(rebalances.clone(), &send_topic, self.p.topics.partitions)
                    .follow_assignment(rebalances);
                let bulk = sink.bulk_lane().map(StageHandler::Provider);
                (StageHandler::Provider(sink), bulk)
            }
        }))
    }

    /// Follow the bulk lane consumer's assignment with its sent-log.
    pub(super) fn follow_bulk(handler: StageHandler, rebalances: Arc<Rebalances>) -> StageHandler {
        match handler {
            StageHandler::Provider(sink) => {
                StageHandler::Provider(sink.follow_assignment(rebalances))
            }
            other => other,
        }
    }

    /// What writes the messages `backend` receives to `sms.inbound`.
    fn source(&self, backend: &str) -> Source {
        Source::new(
            backend,
            self.producer.clone(),
            Arc::from(self.p.topics.inbound.as_str()),
            self.p.http.accept_timeout,
        )
    }

    /// The tester: messages typed on the operator pages, replies kept for them.
    fn tester(&mut self, name: &str, history: usize, source: Source) -> TesterSink {
        let tester = Arc::new(Tester::new(name, history, source));
        self.testers.insert(name.to_owned(), tester.clone());
        TesterSink::new(tester, Arc::from(self.p.topics.events.as_str()))
    }

    /// The discard backend: sends nothing (but to its hook, if any); its
    /// webhooks take messages and reports.
    fn discard(&mut self, cfg: &config::Backend, name: &str, source: Source) -> DiscardSink {
        let t = &self.p.topics;
        let reports = Reports::new(
            name,
            self.producer.clone(),
            Arc::from(t.events.as_str()),
            self.p.http.accept_timeout,
            SentLog::new(name, Arc::from(sent_topic(t, name).as_str()), t.sent_memory),
        );
        self.webhooks
            .extend(backends::build::discard(cfg, source, reports));
        DiscardSink::new(name, self.hooks.get(name).cloned())
    }

    /// A provider's sink: its sent-log restored, its HTTP client, its
    /// webhooks (messages and delivery reports).
    async fn provider(
        &mut self,
        cfg: &config::Backend,
        source: Source,
        group: &str,
    ) -> anyhow::Result<ProviderSink> {
        let t = &self.p.topics;
        let name = cfg.name();
        let sent_topic = Arc::from(sent_topic(t, name).as_str());
        let log = SentLog::new(name, sent_topic, t.sent_memory);
        let log = SentLog::restore(
            self.bus,
            self.producer,
            log,
            group,
            self.p.kafka.restore_timeout,
        )
        .await
        .with_context(|| format!("cannot read the sent-log of {name}"))?;
        let bulk_log = match has_bulk_lane(self.p, cfg) {
            true => {
                let topic = Arc::from(bulk_sent_topic(t, name).as_str());
                let bulk = SentLog::new(name, topic, t.sent_memory);
                let group = format!("{group}.bulk");
                let timeout = self.p.kafka.restore_timeout;
                Some(
                    SentLog::restore(self.bus, self.producer, bulk, &group, timeout)
                        .await
                        .with_context(|| {
                            format!("cannot read the bulk lane's sent-log of {name}")
                        })?,
                )
            }
            false => None,
        };
        let events: Arc<str> = Arc::from(t.events.as_str());
        let reports = Reports::new(
            name,
            self.producer.clone(),
            events.clone(),
            self.p.http.accept_timeout,
            log.clone(),
        )
        .with_bulk_log(bulk_log.clone());
        let default_sending = config::Sending::default();
        let sending = cfg.sending().unwrap_or(&default_sending);
        let client =
            backends::provider::client(sending).with_context(|| format!("backend {name:?}"))?;
        let provider = match cfg {
            config::Backend::Modem(modem) => {
                let parts = crate::backends::modem::Parts {
                    source,
                    reports,
                    log: log.clone(),
                    producer: self.producer.clone(),
                };
                let (provider, readiness) = crate::backends::modem::start(modem, parts);
                self.modems.push(readiness);
                provider
            }
            _ => {
                let Some((provider, router)) =
                    backends::build::provider(cfg, self.public, source, reports, client)
                else {
                    bail!("backend {name:?} calls no provider");
                };
                self.webhooks.push(router);
                provider
            }
        };
        Ok(ProviderSink::new(
            name,
            provider,
            cfg.sending().unwrap_or(&config::Sending::default()),
            log,
            bulk_log,
            self.producer.clone(),
            events,
        ))
    }
}
