//! Router (in): `sms.inbound` → `sms.app.<app>`.
//!
//! RapidSMS's incoming phases as declared routing:
//! filter (blocked numbers, then opt-out keywords: STOP, START, HELP) →
//! parse (the sender's contact is attached; the message is logged) → the
//! route table, first match wins → the default app when nothing matched →
//! taps, which see every message that passed the filters.
//!
//! Apps *chained* into the router (`chain:` in the pipeline) are run right
//! here instead of on their own stage, and so is the outgoing phase of their
//! replies: the router writes `sms.send.<backend>` directly. The record's
//! offset is still stored only once those outputs are acknowledged, and
//! reply ids are still derived from the message, so the guarantees are the
//! same as with the extra hops.

use std::collections::{HashMap, HashSet};
use std::hash::BuildHasherDefault;
use std::sync::Arc;

use bytes::Bytes;
use tracing::error;

use super::index::Fnv;
use super::outbound::RouterOut;
use super::routes::{Captures, Matched, RouteTable};
use crate::apps::{runner::replies, App, Services};
use crate::bus::{Produce, Record};
use crate::config::Pipeline;
use crate::message::{
    derived_id, Contact, InboundMessage, InboundView, OutboundMessage, RoutedMessage,
};
use crate::metrics::metrics;
use crate::schema;
use crate::schema::splice::{encode_routed, Routing};
use crate::stage::{self, decode, encode, HandleError, Handler, Output};
use crate::state::messagelog;
use crate::state::optout::{Keywords, OptOuts, Request, REPLY_FIELD};

/// The incoming router's state, compiled once from the pipeline.
pub struct RouterIn {
    stage: Arc<str>,
    table: RouteTable,
    blocked: HashSet<String>,
    /// Each app's topic; FNV, as the route index, for a lookup per message.
    app_topics: HashMap<Arc<str>, Arc<str>, BuildHasherDefault<Fnv>>,
    /// The pipeline's backends; FNV, as the route index.
    backends: HashSet<Box<str>, BuildHasherDefault<Fnv>>,
    chain: Option<Chain>,
    services: Services,
    /// Where replies go (the filter's own answers, unchained).
    outbound: Arc<str>,
    optout: Option<(Keywords, Arc<OptOuts>)>,
    log: Option<Arc<str>>,
}

/// Apps chained into the router, and the outgoing phase for their replies.
pub struct Chain {
    apps: HashMap<Arc<str>, ChainedApp>,
    out: RouterOut,
    /// Where a reply would have gone unchained: dead letters' source topic.
    outbound: Arc<str>,
    dlq: Arc<str>,
}

struct ChainedApp {
    app: Arc<dyn App>,
    /// `app:<name>`: chained apps keep their stage's metrics.
    stage: String,
    received: prometheus::IntCounter,
}

impl Chain {
    /// `apps` by name; `out` is the outgoing phase (a [`RouterOut`]).
    pub fn new(
        apps: Vec<(String, Arc<dyn App>)>,
        out: RouterOut,
        outbound: Arc<str>,
        dlq: Arc<str>,
    ) -> Self {
        let apps = apps
            .into_iter()
            .map(|(name, app)| {
                let stage = format!("app:{name}");
                let received = metrics().received.with_label_values(&[&stage]);
                let chained = ChainedApp {
                    app,
                    stage,
                    received,
                };
                (Arc::from(name.as_str()), chained)
            })
            .collect();
        Chain {
            apps,
            out,
            outbound,
            dlq,
        }
    }

    /// Run the chained app on `routed`, its replies through the outgoing
    /// phase, and push them for their backends. An app failure is counted
    /// and logged as the app stage would, and the inbound record
    /// dead-lettered (no replies); a reply the outgoing
    /// phase rejects is dead-lettered as router (out) would.
    fn run(
        &self,
        chained: &ChainedApp,
        routed: &RoutedMessage,
        services: &Services,
        record: &Record,
        out: &mut Vec<Produce>,
    ) -> Result<(), HandleError> {
        chained.received.inc();
        let handled = match replies(chained.app.as_ref(), routed, services) {
            Ok(r) => r,
            Err(e) => {
                // Dead-letter the inbound record itself: no stage reads a
                // chained app's topic, so a replay goes through the router.
                let kind = e.kind();
                let message = match &e {
                    HandleError::Input { message, .. } | HandleError::Failed { message, .. } => {
                        message.clone()
                    }
                    HandleError::Unavailable(_) => return Err(e),
                };
                error!(stage = %chained.stage, topic = %record.topic, partition = record.partition, offset = record.offset, kind, %message, "record failed; dead-lettering it for replay");
                let m = metrics();
                m.errors.with_label_values(&[&chained.stage, kind]).inc();
                m.dead_lettered.with_label_values(&[&chained.stage]).inc();
                let source = stage::Origin {
                    topic: &record.topic,
                    position: Some((record.partition, record.offset)),
                };
                out.push(stage::dead_letter_value(
                    &self.dlq,
                    &chained.stage,
                    record.key.clone().unwrap_or_default(),
                    record.payload.clone(),
                    source,
                    kind,
                    &message,
                ));
                return Ok(());
            }
        };
        out.extend(handled.records);
        self.send(handled.replies, record, out)
    }

    /// Replies through the outgoing phase, straight to their backends; a
    /// reply the outgoing phase rejects is dead-lettered as router (out) would.
    fn send(
        &self,
        replies: Vec<OutboundMessage>,
        record: &Record,
        out: &mut Vec<Produce>,
    ) -> Result<(), HandleError> {
        for mut reply in replies {
            match self.out.route(&mut reply, out) {
                Ok(()) => {}
                Err(e) => {
                    let kind = e.kind();
                    let message = e.to_string();
                    error!(stage = "router-out", chained_in = %record.topic, kind, %message, "dead-lettering a chained reply");
                    let m = metrics();
                    m.errors.with_label_values(&["router-out", kind]).inc();
                    m.dead_lettered.with_label_values(&["router-out"]).inc();
                    let payload =
                        schema::outbound()
                            .encode(&reply)
                            .map_err(|e| HandleError::Failed {
                                kind: "encode",
                                message: e.to_string(),
                            })?;
                    let source = stage::Origin {
                        topic: &self.outbound,
                        position: None,
                    };
                    out.push(stage::dead_letter_value(
                        &self.dlq,
                        "router-out",
                        Bytes::from(reply.connection.key()),
                        Bytes::from(payload),
                        source,
                        kind,
                        &message,
                    ));
                }
            }
        }
        Ok(())
    }
}

impl RouterIn {
    pub fn new(stage: Arc<str>, p: &Pipeline, table: RouteTable, services: Services) -> Self {
        Self {
            services,
            outbound: Arc::from(p.topics.outbound.as_str()),
            optout: None,
            log: p
                .messagelog
                .as_ref()
                .map(|_| Arc::from(p.topics.log.as_str())),
            stage,
            table,
            blocked: p.filters.blocked.iter().cloned().collect(),
            app_topics: p
                .apps
                .iter()
                .map(|a| {
                    (
                        Arc::from(a.name()),
                        Arc::from(p.topics.app(a.name()).as_str()),
                    )
                })
                .collect(),
            backends: p.backends.iter().map(|b| b.name().into()).collect(),
            chain: None,
        }
    }

    /// Answer opt-out keywords and record them in `optouts`.
    pub fn with_optout(mut self, keywords: Keywords, optouts: Arc<OptOuts>) -> Self {
        self.optout = Some((keywords, optouts));
        self
    }

    /// The filter phase's opt-out: `Some` when the message was an opt-out
    /// keyword, answered here (it goes to no app).
    fn opt_out(
        &self,
        msg: &InboundView,
        contact: Option<&Contact>,
        record: &Record,
        out: &mut Vec<Produce>,
    ) -> Result<bool, HandleError> {
        let Some((keywords, optouts)) = &self.optout else {
            return Ok(false);
        };
        let Some(request) = keywords.request(msg.text) else {
            return Ok(false);
        };
        let identity = msg.connection.identity;
        let backend = msg.connection.backend;
        match request {
            Request::Stop => out.push(optouts.record(identity, true, msg.text, backend)),
            Request::Start => out.push(optouts.record(identity, false, msg.text, backend)),
            Request::Help => {}
        }
        let texts = &self.services.texts;
        let text = texts.render(
            texts.language_of(contact),
            &format!("optout.{}", request.key()),
            keywords.reply(request),
            &[],
        );
        let mut reply = OutboundMessage::reply_to(&msg.to_message(), text);
        reply.id = derived_id(msg.id, "optout", 0);
        reply.app = Some("optout".to_owned());
        reply
            .fields
            .insert(REPLY_FIELD.to_owned(), request.key().to_owned());
        self.drop(&format!("optout_{}", request.key()));
        match &self.chain {
            Some(chain) => chain.send(vec![reply], record, out)?,
            None => out.push(encode(
                schema::outbound(),
                &self.outbound,
                &reply.connection,
                &reply,
            )?),
        }
        Ok(true)
    }

    /// Run the chained apps here (see the module docs).
    pub fn with_chain(mut self, chain: Chain) -> Self {
        self.chain = Some(chain);
        self
    }

    /// Hand `routed` to its app: on its topic, or to the app itself when chained.
    /// Route `msg`, read from `record`, to `app`: to its topic, or through
    /// the chain when the app runs in this process.
    fn deliver(
        &self,
        record: &Record,
        msg: &InboundView,
        routing: &Routing,
        app: &Arc<str>,
        out: &mut Vec<Produce>,
    ) -> Result<(), HandleError> {
        if let Some((chain, chained)) = self
            .chain
            .as_ref()
            .and_then(|c| Some((c, c.apps.get(app)?)))
        {
            let routed = routing.to_routed(msg.to_message());
            return chain.run(chained, &routed, &self.services, record, out);
        }
        // Validation guarantees every routed app has a topic.
        let topic = self
            .app_topics
            .get(app)
            .cloned()
            .unwrap_or_else(|| app.clone());
        // The inbound record's datum as it came, and what the router added.
        let payload =
            encode_routed(&record.payload, msg, routing).map_err(|e| HandleError::Failed {
                kind: "encode",
                message: e.to_string(),
            })?;
        // Keyed by its connection, as the inbound record mostly is already.
        let key = match &record.key {
            Some(key) if msg.connection.is_key(key) => key.clone(),
            _ => Bytes::from(msg.connection.to_connection().key()),
        };
        out.push(Produce::new(topic, key, payload));
        Ok(())
    }

    fn drop(&self, reason: &str) {
        metrics()
            .dropped
            .with_label_values(&[&self.stage, reason])
            .inc();
    }
}

/// Content checks a decodable record must pass.
fn check_inbound(
    msg: &InboundView,
    backends: &HashSet<Box<str>, BuildHasherDefault<Fnv>>,
) -> Result<(), HandleError> {
    if msg.connection.identity.trim().is_empty() {
        return Err(HandleError::input(
            "invalid",
            "empty identity in connection",
        ));
    }
    if !backends.contains(msg.connection.backend) {
        return Err(HandleError::input(
            "invalid",
            format!(
                "unknown backend {:?}: no such backend in this pipeline",
                msg.connection.backend
            ),
        ));
    }
    Ok(())
}

impl Handler for RouterIn {
    async fn handle(&mut self, record: &Record, out: &mut Output) -> Result<(), HandleError> {
        // Borrowed from the record, unless an earlier schema version wrote it.
        let owned: InboundMessage;
        let msg = match schema::inbound().view(&record.payload) {
            Ok(Some(view)) => view,
            Ok(None) => {
                owned = decode(schema::inbound(), record)?;
                owned.view()
            }
            Err(e) => return Err(HandleError::input("decode", e.to_string())),
        };
        check_inbound(&msg, &self.backends)?;

        // filter: a filtered message goes nowhere, not even to taps.
        if self.blocked.contains(msg.connection.identity) {
            self.drop("blocked");
            return Ok(());
        }
        // parse: who sent it; the log sees every message that was not blocked.
        let contact = self.services.contacts.by_view(msg.connection);
        if let Some(log) = &self.log {
            let entry = messagelog::inbound(&msg, contact.as_deref());
            out.push(encode(schema::log(), log, &entry.connection, &entry)?);
        }
        if self.opt_out(&msg, contact.as_deref(), record, out)? {
            return Ok(());
        }

        // handle: first match wins; default: only when nothing matched.
        let target = match self.table.first_match(&msg) {
            Some((rule, matched)) => Some((&rule.app, &*rule.name, matched)),
            None => self
                .table
                .default_app
                .as_ref()
                .map(|app| (app, "default", Matched::default())),
        };
        let handled_by = target.as_ref().map(|&(app, _, _)| app);
        match &target {
            Some((app, route, matched)) => {
                let routing = Routing {
                    app,
                    route,
                    rest: matched.rest,
                    captures: &matched.captures,
                    contact: contact.as_deref(),
                };
                self.deliver(record, &msg, &routing, app, out)?;
            }
            None => self.drop("unrouted"),
        }
        // taps see everything that passed the filters, once each.
        let no_captures = Captures::default();
        for tap in &self.table.taps {
            if handled_by != Some(tap) {
                let routing = Routing {
                    app: tap,
                    route: "tap",
                    rest: None,
                    captures: &no_captures,
                    contact: contact.as_deref(),
                };
                self.deliver(record, &msg, &routing, tap, out)?;
            }
        }
        Ok(())
    }
}
