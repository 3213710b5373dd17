//! State kept from topics: every process that needs a table restores it
//! from its topic at start-up and keeps following it while it runs
//! ([`table`]). The contacts, the opt-out list, poll answers, message status,
//! the message log and the statistics; [`Tables`] holds a pipeline's set.

pub mod campaigns;
pub mod contacts;
pub mod messagelog;
pub mod optout;
pub mod polls;
pub mod stats;
pub mod status;
pub mod table;
pub mod totals;

use std::sync::{Arc, Mutex};

use crate::bus::{Bus, BusError, Producer};
use crate::config::{self, Pipeline};
use crate::i18n::Texts;
use campaigns::CampaignBook;
use contacts::ContactBook;
use messagelog::MessageLog;
use optout::OptOuts;
use polls::PollBook;
use stats::StatsBook;
use status::StatusBook;
use table::{table, Follower};

/// Every table a pipeline keeps, shared by the stages and the web server of
/// one process.
#[derive(Clone)]
pub struct Tables {
    pub contacts: Arc<ContactBook>,
    pub texts: Arc<Texts>,
    pub optouts: Arc<OptOuts>,
    pub polls: Arc<PollBook>,
    /// Campaigns and their progress (kept only when the pipeline has
    /// `campaigns:`).
    pub campaigns: Arc<CampaignBook>,
    /// `None` when the pipeline has no `messagelog:` section.
    log: Option<Arc<MessageLog>>,
    status: Arc<StatusBook>,
    /// The statistics from `sms.stats`, for the dashboard.
    stats: Arc<StatsBook>,
    views: Arc<Views>,
}

/// The tables only questions need (message status, the log, the
/// statistics): followed from
/// the first question on Kafka, so that stage processes nobody asks do not
/// read every event; from the start on the embedded bus, where a late reader
/// would not see what was written before it joined.
#[derive(Default)]
struct Views {
    followers: tokio::sync::OnceCell<Vec<Follower>>,
    stats: tokio::sync::OnceCell<Follower>,
    source: Mutex<Option<(Bus, Producer, Pipeline)>>,
}

impl Tables {
    /// Empty tables for `p`.
    pub fn new(p: &Pipeline) -> Tables {
        Tables {
            contacts: ContactBook::new(
                &p.topics.contacts,
                p.backends.iter().map(|b| b.name().to_owned()),
            ),
            texts: Arc::new(Texts::new(p)),
            optouts: OptOuts::new(&p.topics.optouts),
            polls: PollBook::new(&p.topics.polls),
            campaigns: CampaignBook::new(&p.topics.campaigns),
            log: p.messagelog.as_ref().map(|m| MessageLog::new(m.keep)),
            status: StatusBook::new(),
            stats: StatsBook::new(),
            views: Arc::default(),
        }
    }

    /// Message status, built from the events topic (the first call on Kafka
    /// reads it up to now).
    pub async fn status(&self) -> Result<&StatusBook, BusError> {
        self.views().await?;
        Ok(&self.status)
    }

    /// The message log, `None` when the pipeline has none (the first call
    /// on Kafka reads the log topic up to now).
    pub async fn log(&self) -> Result<Option<&MessageLog>, BusError> {
        self.views().await?;
        Ok(self.log.as_deref())
    }

    /// The statistics (the first call on Kafka reads `sms.stats` up to now).
    pub async fn stats(&self) -> Result<&StatsBook, BusError> {
        let source = self.source();
        self.views
            .stats
            .get_or_try_init(|| async {
                let Some((bus, producer, p)) = source else {
                    return Err(BusError::Closed);
                };
                let book = self.stats.clone();
                table(&bus, &producer, &p, &p.topics.stats, move |r| {
                    book.apply(&r.payload)
                        .map_err(|e| format!("not a statistics record: {e}"))
                })
                .await
            })
            .await?;
        Ok(&self.stats)
    }

    fn source(&self) -> Option<(Bus, Producer, Pipeline)> {
        self.views
            .source
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    async fn views(&self) -> Result<(), BusError> {
        let source = self.source();
        self.views
            .followers
            .get_or_try_init(|| async {
                let Some((bus, producer, p)) = source else {
                    return Err(BusError::Closed);
                };
                self.follow_views(&bus, &producer, &p).await
            })
            .await?;
        Ok(())
    }

    async fn follow_views(
        &self,
        bus: &Bus,
        producer: &Producer,
        p: &Pipeline,
    ) -> Result<Vec<Follower>, BusError> {
        let t = &p.topics;
        let mut followers = Vec::new();
        if let Some(log) = self.log.clone() {
            followers.push(
                table(bus, producer, p, &t.log, move |r| {
                    log.apply(&r.payload).map_err(|e| e.to_string())
                })
                .await?,
            );
        }
        let status = self.status.clone();
        followers.push(
            table(bus, producer, p, &t.events, move |r| {
                status.apply(&r.payload).map_err(|e| e.to_string())
            })
            .await?,
        );
        Ok(followers)
    }

    /// Restore every table from its topic and keep following them.
    pub async fn follow(
        &self,
        bus: &Bus,
        producer: &Producer,
        p: &Pipeline,
    ) -> Result<Vec<Follower>, BusError> {
        let t = &p.topics;
        let contacts = self.contacts.clone();
        let optouts = self.optouts.clone();
        let mut followers = vec![
            table(bus, producer, p, &t.contacts, move |r| {
                let key = r.key.as_deref().unwrap_or_default();
                contacts.apply(key, &r.payload).map_err(|e| e.to_string())
            })
            .await?,
            table(bus, producer, p, &t.optouts, move |r| {
                optouts
                    .apply(&r.payload)
                    .map_err(|e| format!("not an opt-out entry: {e}"))
            })
            .await?,
        ];
        if p.apps.iter().any(|a| matches!(a, config::App::Poll { .. })) {
            let polls = self.polls.clone();
            followers.push(
                table(bus, producer, p, &t.polls, move |r| {
                    polls
                        .apply(&r.payload)
                        .map_err(|e| format!("not a poll answer: {e}"))
                })
                .await?,
            );
        }
        if p.campaigns.is_some() {
            let campaigns = self.campaigns.clone();
            followers.push(
                table(bus, producer, p, &t.campaigns, move |r| {
                    let key = r.key.as_deref().unwrap_or_default();
                    campaigns
                        .apply(key, &r.payload)
                        .map_err(|e| format!("not a campaign: {e}"))
                })
                .await?,
            );
            let progress = self.campaigns.clone();
            followers.push(
                table(bus, producer, p, &t.events, move |r| {
                    progress.apply_event(&r.payload).map_err(|e| e.to_string())
                })
                .await?,
            );
        }
        // The views: now on the embedded bus, at the first question on Kafka.
        *self.views.source.lock().unwrap_or_else(|p| p.into_inner()) =
            Some((bus.clone(), producer.clone(), p.clone()));
        if let Bus::Embedded(_) = bus {
            self.views().await?;
            self.stats().await?;
        }
        Ok(followers)
    }
}
