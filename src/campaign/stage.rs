//! The `campaign` stage: it reads campaigns' frozen audiences
//! (`sms.campaigns.audience`, a chunk of recipients per record) and
//! releases each recipient's message to its backend's bulk lane, when the
//! campaign, the clock and the backend let it:
//!
//! - only while the campaign is `running` (a `scheduled` one waits for its
//!   start, a `paused` one for its resume; `cancelled`, or past its end,
//!   drops what is left) — checked before every recipient, so a pause
//!   takes effect at once;
//! - never more than `campaigns.max_pending` messages ahead of what the
//!   backend has sent (the bulk lane stays short: a pause holds nearly
//!   everything, and a reply waits behind little);
//! - at the campaign's own pace (messages and segments per second), and
//!   within its daily cap;
//! - outside quiet hours in the recipient's time zone: a recipient in quiet
//!   hours waits, in order, while the others of the chunk go on;
//! - not to a number that opted out (a `suppressed` event instead).
//!
//! Each campaign has a worker task in the process that reads its chunks,
//! so a paused or scheduled campaign holds up no other; the chunks read and
//! not yet released are held within a budget ([`HELD_ROWS`] recipients).
//! A message's id derives from the campaign and the number, so a chunk
//! read again (after a crash, or by another replica after a rebalance)
//! releases the same messages, which the sink sends once. A chunk's offset
//! is committed once every recipient in it was dealt with. Rendering,
//! segment counting and Avro encoding of a chunk run in parallel (rayon)
//! before the walk.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use chrono::{DateTime, TimeZone, Utc};
use chrono_tz::Tz;
use tokio::sync::{mpsc, OwnedSemaphorePermit, Semaphore};

use super::control::Writer;
use super::expand::{prepare, Item, Pace};
use super::quiet::{next_day_start, parse_zone, sleep_until, Clock, QuietHours};
use super::render::ContactFields;
use crate::bus::{BusError, Produce, Rebalances, Record};
use crate::message::{
    campaign_message_id, AudienceChunk, Campaign, CampaignState, Connection, DeliveryEvent,
    DeliveryStatus, OutboundMessage,
};
use crate::schema;
use crate::stage::{decode, HandleError, Handler, Later, Output};
use crate::state::campaigns::CampaignBook;
use crate::state::optout::OptOuts;

/// How long a chunk waits for its campaign's definition to be read.
const DEFINITION_WAIT: Duration = Duration::from_secs(30);
/// How often a waiting campaign looks whether its chunk is still this
/// replica's.
const OWNER_CHECK: Duration = Duration::from_secs(1);
/// How often a campaign waiting on its backend looks again.
const BACKLOG_POLL: Duration = Duration::from_millis(50);

/// What the stage needs from the pipeline.
pub struct Settings {
    /// Backend → its bulk lane's topic.
    pub bulk_topics: HashMap<String, Arc<str>>,
    pub events: Arc<str>,
    pub max_pending: u64,
    pub default_zone: Tz,
    /// `filters.blocked`: numbers never sent to.
    pub blocked: std::collections::HashSet<String>,
}

/// A number's contact fields (name, language), if it is a contact.
pub type Contacts = Arc<dyn Fn(&str) -> Option<ContactFields> + Send + Sync>;

/// What every campaign's worker shares.
struct Shared {
    book: Arc<CampaignBook>,
    optouts: Arc<OptOuts>,
    contacts: Contacts,
    settings: Settings,
    clock: Arc<dyn Clock>,
    writer: Writer,
    /// The stage consumer's assignment: a worker stops a chunk whose
    /// partition went to another replica (which reads it again).
    assignment: std::sync::OnceLock<Arc<Rebalances>>,
}

/// Recipients of chunks read and not yet released that the stage holds at
/// most (about 100 bytes each); past it, it reads on only as chunks finish.
pub const HELD_ROWS: u32 = 10_000;

/// A chunk handed to its campaign's worker, with the hold on its record and
/// its part of the memory budget.
type Parked = (AudienceChunk, Later, OwnedSemaphorePermit, Owner);

/// The assignment a chunk was read under: its topic, partition and epoch.
type Owner = Option<(Arc<str>, i32, Option<u64>)>;

/// The `campaign` stage's handler. It hands each chunk to its campaign's
/// worker (a task per campaign, in this process) and reads on: a paused or
/// scheduled campaign holds up no other campaign. Each chunk's offset is
/// committed once its worker dealt with every recipient in it (in order,
/// per partition, as every stage).
pub struct CampaignStage {
    shared: Arc<Shared>,
    workers: HashMap<String, mpsc::UnboundedSender<Parked>>,
    held: Arc<Semaphore>,
}

impl CampaignStage {
    pub fn new(
        book: Arc<CampaignBook>,
        optouts: Arc<OptOuts>,
        contacts: Contacts,
        settings: Settings,
        clock: Arc<dyn Clock>,
        writer: Writer,
    ) -> Self {
        CampaignStage {
            shared: Arc::new(Shared {
                book,
                optouts,
                contacts,
                settings,
                clock,
                writer,
                assignment: std::sync::OnceLock::new(),
            }),
            workers: HashMap::new(),
            held: Arc::new(Semaphore::new(HELD_ROWS as usize)),
        }
    }
}

impl CampaignStage {
    /// Follow the stage consumer's assignment: a chunk whose partition is
    /// taken away is left to its next owner.
    pub fn follow_assignment(self, rebalances: Arc<Rebalances>) -> Self {
        let _ = self.shared.assignment.set(rebalances);
        self
    }
}

/// One campaign's releases in this process: its chunks in the order read.
struct Worker {
    shared: Arc<Shared>,
    /// The campaign's own pace.
    pace: Option<Pace>,
    /// The assignment the chunk being walked was read under.
    owner: Owner,
}

/// How a walk over a chunk ended.
enum Walk {
    /// Every recipient dealt with (or the campaign ended).
    Done,
    /// Shutdown: the chunk is read again after a restart.
    Stopping,
    /// The chunk's partition went to another replica, which reads it again.
    Revoked,
}

/// What the campaign's state lets happen now.
enum Gate {
    Go,
    /// Cancelled, completed, gone, or past its end: nothing more.
    End,
    Stopping,
    Revoked,
}

impl Handler for CampaignStage {
    async fn handle(&mut self, record: &Record, out: &mut Output) -> Result<(), HandleError> {
        let chunk = decode(schema::audience(), record)?;
        let rows = (chunk.rows.len() as u32).clamp(1, HELD_ROWS);
        let permit = self
            .held
            .clone()
            .acquire_many_owned(rows)
            .await
            .map_err(|_| HandleError::Failed {
                kind: "closed",
                message: "the campaign stage is stopping".into(),
            })?;
        let later = out.later(record, self.shared.writer.producer());
        let owner = self.shared.assignment.get().map(|r| {
            let epoch = r.epoch(&record.topic, record.partition);
            (record.topic.clone(), record.partition, epoch)
        });
        let id = chunk.campaign_id.clone();
        let shared = &self.shared;
        let worker = self.workers.entry(id).or_insert_with(|| {
            let (tx, rx) = mpsc::unbounded_channel();
            let worker = Worker {
                shared: shared.clone(),
                pace: None,
                owner: None,
            };
            tokio::spawn(worker.run(rx));
            tx
        });
        if let Err(mpsc::error::SendError((_, later, _, _))) =
            worker.send((chunk, later, permit, owner))
        {
            drop(later);
            return Err(HandleError::Failed {
                kind: "closed",
                message: "a campaign's worker stopped".into(),
            });
        }
        Ok(())
    }
}

impl Worker {
    async fn run(mut self, mut chunks: mpsc::UnboundedReceiver<Parked>) {
        while let Some((chunk, later, permit, owner)) = chunks.recv().await {
            self.owner = owner;
            self.chunk(chunk, later).await;
            drop(permit);
        }
    }

    /// Whether the chunk's partition is still this replica's, under the
    /// assignment it was read under.
    fn owned(&self) -> bool {
        match (&self.owner, self.shared.assignment.get()) {
            (Some((topic, partition, epoch)), Some(r)) => r.epoch(topic, *partition) == *epoch,
            _ => true,
        }
    }

    /// Release one chunk's recipients, then mark it done.
    async fn chunk(&mut self, chunk: AudienceChunk, later: Later) {
        let Some(campaign) = self.definition(&chunk.campaign_id, &later).await else {
            if matches!(
                tokio::time::timeout(Duration::ZERO, later.stopping()).await,
                Ok(())
            ) {
                return later
                    .abandon("shutdown before the campaign was read", Vec::new())
                    .await;
            }
            let message = format!(
                "no campaign {:?} on {} after {DEFINITION_WAIT:?}",
                chunk.campaign_id,
                self.shared.book.topic()
            );
            return later
                .dead_letter("unknown-campaign", &message, Vec::new())
                .await;
        };
        let Some(topic) = self
            .shared
            .settings
            .bulk_topics
            .get(&campaign.backend)
            .cloned()
        else {
            let message = format!(
                "campaign {:?}: backend {:?} has no bulk lane in this pipeline",
                campaign.id, campaign.backend
            );
            return later.dead_letter("invalid", &message, Vec::new()).await;
        };
        let zone = self.shared.settings.default_zone;
        let contacts = self.shared.contacts.as_ref();
        let items = prepare(&campaign, &topic, chunk.rows, zone, contacts);
        match self.walk(&campaign, items, &later).await {
            Ok(Walk::Done) => {
                if chunk.last {
                    if let Err(e) = self.completed(&campaign.id).await {
                        tracing::error!(campaign = %campaign.id, error = %e, "cannot mark the campaign completed");
                        // Unfinished: read again after a restart.
                        return drop(later);
                    }
                }
                later.finish(Vec::new()).await;
            }
            Ok(Walk::Stopping) => {
                later
                    .abandon(
                        "shutdown while releasing a campaign's recipients",
                        Vec::new(),
                    )
                    .await
            }
            Ok(Walk::Revoked) => {
                tracing::info!(campaign = %campaign.id, "its partition went to another replica: left to it");
                later.revoked().await
            }
            Err(e) => {
                // Dropping the hold fails the stage: the chunk is read again.
                tracing::error!(campaign = %campaign.id, error = %e, "cannot release the campaign's messages");
                drop(later);
            }
        }
    }
}

impl Worker {
    /// The campaign's definition; the table may not have it yet when its
    /// first chunk comes.
    async fn definition(&self, id: &str, later: &Later) -> Option<Campaign> {
        let mut changes = self.shared.book.changes();
        let wait = async {
            loop {
                if let Some(c) = self.shared.book.get(id) {
                    return Some(c);
                }
                if changes.changed().await.is_err() {
                    return None;
                }
            }
        };
        tokio::select! {
            found = tokio::time::timeout(DEFINITION_WAIT, wait) => found.ok().flatten(),
            _ = later.stopping() => None,
        }
    }

    /// Release the chunk's recipients as the campaign, the clock and the
    /// backend allow; those in quiet hours after the others, in order.
    async fn walk(
        &mut self,
        c: &Campaign,
        items: Vec<Item>,
        later: &Later,
    ) -> Result<Walk, BusError> {
        let quiet = match (&c.quiet_from, &c.quiet_until) {
            (Some(from), Some(until)) => QuietHours::parse(from, until).ok(),
            _ => None,
        };
        let mut todo: Vec<usize> = (0..items.len()).collect();
        let mut deferred: Vec<(DateTime<Utc>, usize)> = Vec::new();
        loop {
            for i in todo.drain(..) {
                match self.gate(c, later).await? {
                    Gate::Go => {}
                    Gate::End => return Ok(Walk::Done),
                    Gate::Stopping => return Ok(Walk::Stopping),
                    Gate::Revoked => return Ok(Walk::Revoked),
                }
                let item = &items[i];
                if let Some(q) = &quiet {
                    if let Some(open) = q.open_at(self.shared.clock.now(), item.zone) {
                        deferred.push((open, i));
                        continue;
                    }
                }
                self.release(c, item, later).await?;
            }
            let Some(&(first, _)) = deferred.iter().min_by_key(|(at, _)| *at) else {
                return Ok(Walk::Done);
            };
            tokio::select! {
                _ = sleep_until(self.shared.clock.as_ref(), first) => {}
                _ = later.stopping() => return Ok(Walk::Stopping),
                // Look at the assignment now and then.
                _ = tokio::time::sleep(OWNER_CHECK) => {
                    if !self.owned() {
                        return Ok(Walk::Revoked);
                    }
                    continue;
                }
            }
            let now = self.shared.clock.now();
            let (due, later_still): (Vec<_>, Vec<_>) =
                deferred.drain(..).partition(|(at, _)| *at <= now);
            deferred = later_still;
            todo = due.into_iter().map(|(_, i)| i).collect();
            todo.sort_unstable();
        }
    }

    /// One recipient: suppressed, or its message and `queued` event.
    async fn release(&mut self, c: &Campaign, item: &Item, later: &Later) -> Result<(), BusError> {
        let events = self.shared.settings.events.clone();
        let connection = Connection::new(&c.backend, &item.phone);
        let mut probe = OutboundMessage::new(connection.clone(), "");
        probe.id = campaign_message_id(&c.id, &item.phone);
        probe.campaign_id = Some(c.id.clone());
        if self.shared.book.past_queued(&probe.id) {
            // A chunk read again (a takeover, a restart): this one was sent
            // (or failed, or suppressed) already; only the sink would tell
            // so again, after waiting for the pace.
            return Ok(());
        }
        let (status, error, record) = match &item.ready {
            _ if self.shared.optouts.is_stopped(&item.phone) => (
                DeliveryStatus::Suppressed,
                Some(format!("{} opted out", item.phone)),
                None,
            ),
            _ if self.shared.settings.blocked.contains(&item.phone) => (
                DeliveryStatus::Suppressed,
                Some(format!("{} is blocked (filters.blocked)", item.phone)),
                None,
            ),
            Err(missing) => (DeliveryStatus::Failed, Some(missing.clone()), None),
            Ok((record, msg)) => {
                self.pace(c, msg.segments).await;
                probe.segments = msg.segments;
                (DeliveryStatus::Queued, None, Some(record.clone()))
            }
        };
        if let Some(record) = record {
            later.produce(record).await?;
        }
        let mut event = DeliveryEvent::now(&probe, status);
        event.error = error;
        // On the stage's clock: a daily cap counts the releases of its days.
        event.at = self.shared.clock.now().timestamp_millis();
        // Counted here at once: the backlog check must see it before the
        // event is read back (the book counts each message once).
        self.shared.book.event(&event);
        let payload = schema::event()
            .encode(&event)
            .map_err(|e| BusError::Interrupted(format!("cannot encode an event: {e}")))?;
        later
            .produce(Produce::new(events, Bytes::from(connection.key()), payload))
            .await
    }

    /// Wait while the campaign may not release its next recipient.
    async fn gate(&self, c: &Campaign, later: &Later) -> Result<Gate, BusError> {
        let mut changes = self.shared.book.changes();
        loop {
            if !self.owned() {
                return Ok(Gate::Revoked);
            }
            let Some(now) = self.shared.book.control(&c.id) else {
                return Ok(Gate::End);
            };
            let clock = self.shared.clock.now();
            let millis = clock.timestamp_millis();
            // What to wait for, if anything.
            let until: Option<DateTime<Utc>> = match now.state {
                CampaignState::Cancelled | CampaignState::Completed => return Ok(Gate::End),
                _ if now.end_at.is_some_and(|end| millis >= end) => {
                    let reason = "its end time passed before every recipient was reached";
                    self.shared
                        .writer
                        .set_state(&self.shared.book, &c.id, CampaignState::Cancelled, reason)
                        .await?;
                    return Ok(Gate::End);
                }
                CampaignState::Paused => Some(far_future()),
                CampaignState::Scheduled => match now.start_at {
                    Some(start) if millis < start => Some(at_millis(start)),
                    _ => {
                        self.shared
                            .writer
                            .set_state(&self.shared.book, &c.id, CampaignState::Running, "started")
                            .await?;
                        continue;
                    }
                },
                CampaignState::Running => {
                    if c.auto_pause_errors > 0
                        && now.failures_in_a_row >= c.auto_pause_errors as u32
                    {
                        let reason = format!(
                            "paused after {} provider errors in a row; the last: {}",
                            now.failures_in_a_row,
                            now.last_error.as_deref().unwrap_or("(none given)")
                        );
                        self.shared
                            .writer
                            .set_state(&self.shared.book, &c.id, CampaignState::Paused, &reason)
                            .await?;
                        continue;
                    }
                    if now.queued >= self.shared.settings.max_pending {
                        Some(clock + chrono::Duration::from_std(BACKLOG_POLL).unwrap_or_default())
                    } else if let Some(cap) = self.capped(c, clock) {
                        Some(cap)
                    } else {
                        return Ok(Gate::Go);
                    }
                }
            };
            let until = until.unwrap_or_else(far_future);
            let backlog = now.state == CampaignState::Running;
            tokio::select! {
                _ = changes.changed() => {}
                _ = sleep_until(self.shared.clock.as_ref(), until), if !backlog => {}
                _ = tokio::time::sleep(BACKLOG_POLL), if backlog => {}
                _ = tokio::time::sleep(OWNER_CHECK), if !backlog => {}
                _ = later.stopping() => return Ok(Gate::Stopping),
            }
        }
    }

    /// When the campaign's daily cap is reached: the start of its next day.
    fn capped(&self, c: &Campaign, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
        let cap = u64::try_from(c.daily_cap?).unwrap_or(0);
        let zone = parse_zone(&c.timezone).unwrap_or(self.shared.settings.default_zone);
        let next = next_day_start(now, zone);
        let today = next - chrono::Duration::days(1);
        let released = self
            .shared
            .book
            .released_since(&c.id, today.timestamp_millis());
        (released >= cap).then_some(next)
    }

    /// Wait for the campaign's own pace.
    async fn pace(&mut self, c: &Campaign, segments: i32) {
        let pace = self
            .pace
            .get_or_insert_with(|| Pace::new(c.messages_per_second, c.segments_per_second));
        if let Some(l) = &pace.messages {
            l.until_ready().await;
        }
        if let Some(l) = &pace.segments {
            for _ in 0..segments.max(1) {
                l.until_ready().await;
            }
        }
    }

    /// The campaign's last chunk is done: completed, unless it was
    /// cancelled or paused meanwhile.
    async fn completed(&self, id: &str) -> Result<(), BusError> {
        if self
            .shared
            .book
            .control(id)
            .is_some_and(|c| c.state == CampaignState::Running)
        {
            self.shared
                .writer
                .set_state(
                    &self.shared.book,
                    id,
                    CampaignState::Completed,
                    "every recipient was reached",
                )
                .await?;
        }
        Ok(())
    }
}

fn at_millis(ms: i64) -> DateTime<Utc> {
    Utc.timestamp_millis_opt(ms)
        .single()
        .unwrap_or_else(far_future)
}

/// A time that never comes: a wait that only a change ends.
fn far_future() -> DateTime<Utc> {
    DateTime::<Utc>::MAX_UTC
}
