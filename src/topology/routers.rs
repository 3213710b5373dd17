//! The router's two stages: the router (in), with its phases, the opt-out
//! filter and the chained apps; and the router (out), which hands each
//! outgoing message to its backend.

use std::collections::HashMap;
use std::sync::Arc;

use crate::apps::{App, Services};
use crate::config::Pipeline;
use crate::router::{inbound::Chain, RouteTable, RouterIn, RouterOut};
use crate::state::optout::Keywords;
use crate::state::Tables;

use super::app_stages::Apps;

/// What both of the router's stages are built from.
pub(super) struct Routers<'a> {
    p: &'a Pipeline,
    table: &'a RouteTable,
    tables: &'a Tables,
    services: &'a Services,
    /// Every app, in pipeline order.
    apps: Vec<Arc<dyn App>>,
    /// Those chained into the router (in).
    chained: Vec<(String, Arc<dyn App>)>,
    /// Backend name → its `sms.send.<backend>` topic.
    send_topics: HashMap<String, Arc<str>>,
}

impl<'a> Routers<'a> {
    pub(super) fn new(
        p: &'a Pipeline,
        table: &'a RouteTable,
        tables: &'a Tables,
        services: &'a Services,
        apps: &Apps,
    ) -> Self {
        let send_topics = p
            .backends
            .iter()
            .map(|b| {
                (
                    b.name().to_owned(),
                    Arc::from(p.topics.send(b.name()).as_str()),
                )
            })
            .collect();
        Routers {
            p,
            table,
            tables,
            services,
            apps: apps.all(),
            chained: apps.chained.clone(),
            send_topics,
        }
    }

    /// The router (in) of the stage `stage`: the incoming phases, the
    /// opt-out keywords, and the chained apps with an outgoing phase of
    /// their own.
    pub(super) fn incoming(&self, stage: &Arc<str>, dlq: &Arc<str>) -> RouterIn {
        let p = self.p;
        let mut router = RouterIn::new(stage.clone(), p, self.table.clone(), self.services.clone());
        if let Some(cfg) = &p.optout {
            router = router.with_optout(Keywords::new(cfg), self.tables.optouts.clone());
        }
        if !self.chained.is_empty() {
            router = router.with_chain(Chain::new(
                self.chained.clone(),
                self.outgoing(stage),
                Arc::from(p.topics.outbound.as_str()),
                dlq.clone(),
            ));
        }
        router
    }

    /// The router (out) of the stage `stage`: opted-out numbers dropped,
    /// every message logged when the pipeline keeps a message log.
    pub(super) fn outgoing(&self, stage: &str) -> RouterOut {
        let (p, t) = (self.p, &self.p.topics);
        let mut out = RouterOut::new(stage, self.apps.clone(), self.send_topics.clone());
        if p.optout.is_some() {
            out = out.with_optouts(self.tables.optouts.clone(), Arc::from(t.events.as_str()));
        }
        if p.messagelog.is_some() {
            out = out.with_log(Arc::from(t.log.as_str()), self.tables.contacts.clone());
        }
        out
    }
}
