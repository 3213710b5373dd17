//! Campaigns, kept from `sms.campaigns` (their definitions and states), and
//! each campaign's progress, counted from `sms.events`.
//!
//! Progress counts messages, not events: every message of a campaign is
//! remembered by its id with the furthest status it reached (queued → sent
//! → delivered, or failed, expired, suppressed), so an event read twice (a
//! sink that says again what it sent before, a restart that releases a
//! recipient again) changes nothing. About 20 bytes per message.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, RwLock, RwLockReadGuard, RwLockWriteGuard};

use serde::Serialize;
use tokio::sync::watch;

use crate::message::{Campaign, CampaignState, DeliveryEvent, DeliveryStatus};
use crate::schema::{self, DecodeError};

/// Minutes of sends per minute kept for the chart.
const MINUTES: usize = 180;
/// Quarter hours of releases kept for daily caps (two days and a bit).
const QUARTERS: usize = 200;

/// A campaign's progress.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Progress {
    /// Released to the backend, no outcome yet.
    pub queued: u64,
    /// Accepted by the provider, no delivery report yet.
    pub sent: u64,
    pub delivered: u64,
    pub failed: u64,
    pub expired: u64,
    /// Not sent: the number opted out.
    pub suppressed: u64,
    /// Segments of the messages sent (or delivered).
    pub segments: u64,
    /// Provider errors since the last message sent.
    pub failures_in_a_row: u32,
    pub last_error: Option<String>,
    /// Messages sent per minute (minute since the epoch → count), recent first out.
    pub per_minute: BTreeMap<i64, u64>,
    /// Messages released per quarter hour since the epoch.
    #[serde(skip)]
    pub released_per_quarter: BTreeMap<i64, u64>,
}

impl Progress {
    /// Recipients dealt with: every message released, and those suppressed.
    pub fn reached(&self) -> u64 {
        self.released() + self.suppressed
    }

    /// Messages handed to the backend.
    pub fn released(&self) -> u64 {
        self.queued + self.sent + self.delivered + self.failed + self.expired
    }

    /// Messages released since `from` (ms since the epoch), to the quarter hour.
    pub fn released_since(&self, from: i64) -> u64 {
        self.released_per_quarter
            .range(from.div_euclid(QUARTER_MS)..)
            .map(|(_, n)| n)
            .sum()
    }
}

const QUARTER_MS: i64 = 15 * 60 * 1000;

/// A campaign's state as the campaign stage checks it.
#[derive(Debug, Clone, PartialEq)]
pub struct Control {
    pub state: CampaignState,
    pub start_at: Option<i64>,
    pub end_at: Option<i64>,
    /// Released, no outcome yet.
    pub queued: u64,
    pub failures_in_a_row: u32,
    pub last_error: Option<String>,
}

/// One message: its campaign, how far it got, its segments.
#[derive(Clone, Copy)]
struct Message {
    campaign: u32,
    rank: Rank,
    segments: u16,
}

/// How far a message got; it never goes back.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Rank {
    Queued,
    Sent,
    Final,
}

#[derive(Default)]
struct Inner {
    campaigns: HashMap<String, Campaign>,
    /// Campaign ids by number, as messages refer to them.
    ids: Vec<String>,
    slots: HashMap<String, u32>,
    progress: Vec<Progress>,
    /// Each message by its id folded to 64 bits (the two halves of its
    /// UUID XORed: a collision among a million ids has odds of about 1 in
    /// 10^7), 16 bytes an entry.
    messages: HashMap<u64, (Message, DeliveryStatus)>,
}

impl Inner {
    fn slot(&mut self, id: &str) -> u32 {
        if let Some(&s) = self.slots.get(id) {
            return s;
        }
        let s = self.ids.len() as u32;
        self.ids.push(id.to_owned());
        self.slots.insert(id.to_owned(), s);
        self.progress.push(Progress::default());
        s
    }
}

/// Every campaign and its progress.
pub struct CampaignBook {
    topic: String,
    inner: RwLock<Inner>,
    /// Bumped on every definition or state read: waiters (a paused
    /// campaign's stage) look again.
    changes: watch::Sender<u64>,
}

impl CampaignBook {
    pub fn new(topic: &str) -> Arc<Self> {
        Arc::new(CampaignBook {
            topic: topic.to_owned(),
            inner: RwLock::default(),
            changes: watch::Sender::new(0),
        })
    }

    pub fn topic(&self) -> &str {
        &self.topic
    }

    fn read(&self) -> RwLockReadGuard<'_, Inner> {
        self.inner.read().unwrap_or_else(|p| p.into_inner())
    }

    fn write(&self) -> RwLockWriteGuard<'_, Inner> {
        self.inner.write().unwrap_or_else(|p| p.into_inner())
    }

    /// Apply a record of `sms.campaigns`: a definition, or a tombstone.
    pub fn apply(&self, key: &[u8], payload: &[u8]) -> Result<(), DecodeError> {
        if payload.is_empty() {
            let id = String::from_utf8_lossy(key);
            self.write().campaigns.remove(id.as_ref());
        } else {
            self.put(schema::campaign().decode(payload)?);
        }
        self.changes.send_modify(|n| *n += 1);
        Ok(())
    }

    /// Keep `c` (as read, or as just written by this process), unless
    /// what is held is newer.
    pub fn put(&self, c: Campaign) {
        let mut inner = self.write();
        let resumed = match inner.campaigns.get(&c.id) {
            Some(held) if held.updated_at > c.updated_at => return,
            Some(held) => held.state == CampaignState::Paused && c.state == CampaignState::Running,
            None => false,
        };
        let slot = inner.slot(&c.id) as usize;
        if resumed {
            // Errors before a resume do not count towards the next auto-pause.
            inner.progress[slot].failures_in_a_row = 0;
        }
        inner.campaigns.insert(c.id.clone(), c);
        drop(inner);
        self.changes.send_modify(|n| *n += 1);
    }

    /// Resolves at the next change of any campaign.
    pub fn changes(&self) -> watch::Receiver<u64> {
        self.changes.subscribe()
    }

    pub fn get(&self, id: &str) -> Option<Campaign> {
        self.read().campaigns.get(id).cloned()
    }

    /// Every campaign, newest first.
    pub fn list(&self) -> Vec<Campaign> {
        let mut all: Vec<Campaign> = self.read().campaigns.values().cloned().collect();
        all.sort_by(|a, b| b.created_at.cmp(&a.created_at).then(a.id.cmp(&b.id)));
        all
    }

    /// What the campaign stage checks before each recipient, cheaply: the
    /// campaign's state and times, and how far its messages are.
    pub fn control(&self, id: &str) -> Option<Control> {
        let inner = self.read();
        let c = inner.campaigns.get(id)?;
        let p = inner.slots.get(id).map(|&s| &inner.progress[s as usize]);
        Some(Control {
            state: c.state,
            start_at: c.start_at,
            end_at: c.end_at,
            queued: p.map_or(0, |p| p.queued),
            failures_in_a_row: p.map_or(0, |p| p.failures_in_a_row),
            last_error: p.and_then(|p| p.last_error.clone()),
        })
    }

    /// Messages of `id` released since `from` (ms), to the quarter hour.
    pub fn released_since(&self, id: &str, from: i64) -> u64 {
        let inner = self.read();
        inner
            .slots
            .get(id)
            .map_or(0, |&s| inner.progress[s as usize].released_since(from))
    }

    pub fn progress(&self, id: &str) -> Progress {
        let inner = self.read();
        inner
            .slots
            .get(id)
            .map(|&s| inner.progress[s as usize].clone())
            .unwrap_or_default()
    }

    /// Whether message `id` got further than `queued`: a sink sent it (or
    /// failed it), or it was suppressed. A message only `queued` may not
    /// have reached its topic (its event and itself go to different
    /// partitions), so it is released again; the sink sends it once.
    pub fn past_queued(&self, id: &str) -> bool {
        let Some(key) = key(id) else {
            return false;
        };
        self.read()
            .messages
            .get(&key)
            .is_some_and(|(m, _)| m.rank > Rank::Queued)
    }

    /// Apply a record of `sms.events`.
    pub fn apply_event(&self, payload: &[u8]) -> Result<(), DecodeError> {
        self.event(&schema::event().decode(payload)?);
        Ok(())
    }

    /// Count `e` for its campaign: the message's first event of a rank
    /// moves it; a delivery report names no campaign and is counted for
    /// the campaign its message was released for.
    pub fn event(&self, e: &DeliveryEvent) {
        let id = key(&e.message_id);
        let mut inner = self.write();
        let known = id.and_then(|id| inner.messages.get(&id).copied());
        let campaign = match (&e.campaign_id, known) {
            (_, Some((m, _))) => m.campaign,
            (Some(c), None) => inner.slot(c),
            (None, None) => return,
        };
        let rank = match e.status {
            DeliveryStatus::Queued => Rank::Queued,
            DeliveryStatus::Sent => Rank::Sent,
            _ => Rank::Final,
        };
        let segments = u16::try_from(e.segments.max(0)).unwrap_or(u16::MAX);
        let before = known.map(|(m, s)| (m.rank, s, m.segments));
        if let Some((r, _, _)) = before {
            if r >= rank {
                return;
            }
        }
        let segments = before.map_or(segments, |(_, _, s)| s.max(segments));
        if let Some(id) = id {
            inner.messages.insert(
                id,
                (
                    Message {
                        campaign,
                        rank,
                        segments,
                    },
                    e.status,
                ),
            );
        }
        let inner_id = inner.ids[campaign as usize].clone();
        let p = &mut inner.progress[campaign as usize];
        let billed =
            |s: DeliveryStatus| matches!(s, DeliveryStatus::Sent | DeliveryStatus::Delivered);
        if billed(e.status) && !before.is_some_and(|(_, s, _)| billed(s)) {
            p.segments += u64::from(segments);
        }
        match before {
            Some((_, status, _)) => *count(p, status) -= 1,
            None if e.status != DeliveryStatus::Suppressed => {
                *p.released_per_quarter
                    .entry(e.at.div_euclid(QUARTER_MS))
                    .or_default() += 1;
                trim(&mut p.released_per_quarter, QUARTERS);
            }
            None => {}
        }
        *count(p, e.status) += 1;
        let gauge = |status: DeliveryStatus, n: u64| {
            crate::metrics::metrics()
                .campaign_messages
                .with_label_values(&[&inner_id, status.name()])
                .set(n as i64);
        };
        if let Some((_, status, _)) = before {
            gauge(status, *count(p, status));
        }
        gauge(e.status, *count(p, e.status));
        match e.status {
            DeliveryStatus::Sent => {
                p.failures_in_a_row = 0;
                *p.per_minute.entry(e.at.div_euclid(60_000)).or_default() += 1;
                trim(&mut p.per_minute, MINUTES);
            }
            DeliveryStatus::Failed => {
                p.failures_in_a_row += 1;
                p.last_error.clone_from(&e.error);
            }
            _ => {}
        }
    }
}

/// A message id as the book keys it: its UUID's halves XORed.
fn key(id: &str) -> Option<u64> {
    let v = uuid::Uuid::parse_str(id).ok()?.as_u128();
    Some((v >> 64) as u64 ^ v as u64)
}

fn count(p: &mut Progress, status: DeliveryStatus) -> &mut u64 {
    match status {
        DeliveryStatus::Queued => &mut p.queued,
        DeliveryStatus::Sent => &mut p.sent,
        DeliveryStatus::Delivered => &mut p.delivered,
        DeliveryStatus::Failed => &mut p.failed,
        DeliveryStatus::Expired => &mut p.expired,
        DeliveryStatus::Suppressed => &mut p.suppressed,
    }
}

fn trim(m: &mut BTreeMap<i64, u64>, keep: usize) {
    while m.len() > keep {
        m.pop_first();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::message::{campaign_message_id, Connection, OutboundMessage};

    fn event(phone: &str, status: DeliveryStatus, campaign: bool) -> DeliveryEvent {
        let mut m = OutboundMessage::new(Connection::new("sim", phone), "hi");
        m.id = campaign_message_id("c1", phone);
        m.segments = 2;
        m.campaign_id = Some("c1".into());
        let mut e = DeliveryEvent::now(&m, status);
        if !campaign {
            e.campaign_id = None;
            e.segments = 0;
        }
        e
    }

    #[test]
    fn messages_are_counted_once_at_their_furthest_status() {
        let book = CampaignBook::new("sms.campaigns");
        for phone in ["+1", "+2", "+3"] {
            book.event(&event(phone, DeliveryStatus::Queued, true));
        }
        book.event(&event("+1", DeliveryStatus::Sent, true));
        book.event(&event("+1", DeliveryStatus::Sent, true));
        book.event(&event("+1", DeliveryStatus::Delivered, false));
        book.event(&event("+1", DeliveryStatus::Queued, true));
        // A delivery report before the sink's `sent`.
        book.event(&event("+2", DeliveryStatus::Delivered, false));
        book.event(&event("+2", DeliveryStatus::Sent, true));
        book.event(&event("+3", DeliveryStatus::Failed, true));
        book.event(&event("+4", DeliveryStatus::Suppressed, true));
        // Not a campaign's.
        book.event(&event("+5", DeliveryStatus::Delivered, false));
        let p = book.progress("c1");
        assert_eq!(
            (p.queued, p.sent, p.delivered, p.failed, p.suppressed),
            (0, 0, 2, 1, 1)
        );
        assert_eq!(
            p.segments, 4,
            "two messages of 2 segments reached the phone"
        );
        assert_eq!(p.reached(), 4);
        assert_eq!(p.released(), 3);
        assert_eq!(p.failures_in_a_row, 1);
        assert_eq!(p.per_minute.values().sum::<u64>(), 1);
        // Released again after a takeover: only what got no further.
        let id = |phone: &str| campaign_message_id("c1", phone);
        assert!(book.past_queued(&id("+1")), "delivered");
        assert!(book.past_queued(&id("+3")), "failed");
        assert!(book.past_queued(&id("+4")), "suppressed");
        book.event(&event("+6", DeliveryStatus::Queued, true));
        assert!(
            !book.past_queued(&id("+6")),
            "only queued: its record may be lost"
        );
        assert!(!book.past_queued(&id("+7")), "never seen");
        assert!(!book.past_queued("not-a-uuid"));
    }
}
