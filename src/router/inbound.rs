//! Router (in): `sms.inbound` → `sms.app.<app>`.
//!
//! RapidSMS's incoming phases as declared routing:
//! filter (blocked numbers) → parse (contact) → the route table, first match
//! wins → the default app when nothing matched → taps, which see every
//! message that passed the filters.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use super::table::{Matched, RouteTable};
use crate::bus::{Produce, Record};
use crate::config::Pipeline;
use crate::message::{InboundMessage, RoutedMessage};
use crate::metrics::metrics;
use crate::schema;
use crate::stage::{decode, encode, HandleError, Handler};

/// The incoming router's state, compiled once from the pipeline.
pub struct RouterIn {
    stage: Arc<str>,
    table: RouteTable,
    blocked: HashSet<String>,
    app_topics: HashMap<Arc<str>, Arc<str>>,
    backends: HashSet<String>,
}

impl RouterIn {
    pub fn new(stage: Arc<str>, p: &Pipeline, table: RouteTable) -> Self {
        Self {
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
            backends: p.backends.iter().map(|b| b.name().to_owned()).collect(),
        }
    }

    fn routed(
        &self,
        msg: &InboundMessage,
        app: &Arc<str>,
        route: &str,
        matched: Matched,
    ) -> Result<Produce, HandleError> {
        let routed = RoutedMessage {
            message: msg.clone(),
            app: app.to_string(),
            route: route.to_owned(),
            rest: matched.rest,
            captures: matched.captures,
            contact: None,
        };
        // Validation guarantees every routed app has a topic.
        let topic = self
            .app_topics
            .get(app)
            .cloned()
            .unwrap_or_else(|| app.clone());
        encode(schema::routed(), &topic, &msg.connection, &routed)
    }

    fn drop(&self, reason: &str) {
        metrics()
            .dropped
            .with_label_values(&[&self.stage, reason])
            .inc();
    }
}

/// Content checks a decodable record must pass.
pub fn check_inbound(msg: &InboundMessage, backends: &HashSet<String>) -> Result<(), HandleError> {
    if msg.connection.identity.trim().is_empty() {
        return Err(HandleError::input(
            "invalid",
            "empty identity in connection",
        ));
    }
    if !backends.contains(&msg.connection.backend) {
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
    async fn handle(&mut self, record: &Record, out: &mut Vec<Produce>) -> Result<(), HandleError> {
        let msg = decode(schema::inbound(), record)?;
        check_inbound(&msg, &self.backends)?;

        // filter: a filtered message goes nowhere, not even to taps.
        if self.blocked.contains(&msg.connection.identity) {
            self.drop("blocked");
            return Ok(());
        }

        // handle: first match wins; default: only when nothing matched.
        let target = match self.table.first_match(&msg) {
            Some((rule, matched)) => Some((rule.app.clone(), rule.name.to_string(), matched)),
            None => self
                .table
                .default_app
                .clone()
                .map(|app| (app, "default".to_owned(), Matched::default())),
        };
        let handled_by = target.as_ref().map(|(app, _, _)| app.clone());
        match target {
            Some((app, route, matched)) => out.push(self.routed(&msg, &app, &route, matched)?),
            None => self.drop("unrouted"),
        }
        // taps see everything that passed the filters, once each.
        for tap in &self.table.taps {
            if handled_by.as_ref() != Some(tap) {
                out.push(self.routed(&msg, tap, "tap", Matched::default())?);
            }
        }
        Ok(())
    }
}
