//! The `campaign` stage, built from the pipeline's `campaigns:` section.

use std::sync::Arc;

use crate::bus::Producer;
use crate::campaign::control::Writer;
use crate::campaign::quiet::{parse_zone, Clock, SystemClock};
use crate::campaign::render::ContactFields;
use crate::campaign::stage::{CampaignStage, Settings};
use crate::config::Pipeline;
use crate::message::Connection;
use crate::state::Tables;

use super::sinks::has_bulk_lane;

/// Builds the campaign stage (one per process that runs it).
pub(super) struct Campaigns<'a> {
    p: &'a Pipeline,
    tables: &'a Tables,
    producer: &'a Producer,
    clock: Arc<dyn Clock>,
}

impl<'a> Campaigns<'a> {
    pub(super) fn new(
        p: &'a Pipeline,
        tables: &'a Tables,
        producer: &'a Producer,
        clock: Option<Arc<dyn Clock>>,
    ) -> Self {
        Campaigns {
            p,
            tables,
            producer,
            clock: clock.unwrap_or_else(|| Arc::new(SystemClock)),
        }
    }

    pub(super) fn stage(&self) -> CampaignStage {
        let p = self.p;
        let t = &p.topics;
        let settings = p.campaigns.clone().unwrap_or_default();
        let bulk_topics = p
            .backends
            .iter()
            .filter(|b| has_bulk_lane(p, b))
            .map(|b| (b.name().to_owned(), Arc::from(t.bulk(b.name()).as_str())))
            .collect();
        let contacts = self.tables.contacts.clone();
        // A number is looked up as a contact of any backend.
        let backends: Vec<String> = p.backends.iter().map(|b| b.name().to_owned()).collect();
        let lookup = move |phone: &str| {
            let c = backends
                .iter()
                .find_map(|b| contacts.by_connection(&Connection::new(b, phone)))?;
            Some(ContactFields {
                name: (!c.name.is_empty()).then(|| c.name.clone()),
                language: (!c.language.is_empty()).then(|| c.language.clone()),
            })
        };
        CampaignStage::new(
            self.tables.campaigns.clone(),
            self.tables.optouts.clone(),
            Arc::new(lookup),
            Settings {
                bulk_topics,
                events: Arc::from(t.events.as_str()),
                max_pending: settings.max_pending as u64,
                default_zone: parse_zone(&settings.timezone).unwrap_or(chrono_tz::UTC),
                blocked: p.filters.blocked.iter().cloned().collect(),
            },
            self.clock.clone(),
            Writer::new(self.producer.clone(), &t.campaigns),
        )
    }
}
