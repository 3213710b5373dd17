//! The domain types that travel on the topics: a [`Connection`], the
//! [`InboundMessage`] a phone sent, the [`RoutedMessage`] the router hands an
//! app, the [`OutboundMessage`] that goes back, the [`DeliveryEvent`] that says
//! what happened to it, and the [`Contact`].
//!
//! Field for field they mirror `schemas/*.avsc`: serde derives are the whole
//! mapping, and `schema::tests` proves each one round-trips through Avro.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

pub use crate::sms::Encoding;

mod ids;
mod inbound;
mod view;
pub use ids::{campaign_message_id, derived_id, inbound_id, new_id, now_millis};
pub use inbound::{Connection, Fields, InboundMessage};
pub use view::{ConnectionKey, ConnectionView, FieldsView, InboundView};

/// An inbound message plus what the router decided (`sms.app.<app>`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RoutedMessage {
    pub message: InboundMessage,
    pub app: String,
    /// The matched route's name, `default`, or `tap`.
    pub route: String,
    /// Keyword routes: the text after the keyword, `None` when nothing follows.
    pub rest: Option<String>,
    /// Pattern routes: named captures, and numbered ones as `"1"`, `"2"`, ...
    pub captures: Fields,
    pub contact: Option<Contact>,
}

/// Who wrote an outbound message and how urgent it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Priority {
    Bulk,
    #[default]
    Normal,
    High,
}

/// A message to one phone (`sms.outbound`, then `sms.send.<backend>`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OutboundMessage {
    pub id: String,
    pub connection: Connection,
    pub text: String,
    pub created_at: i64,
    pub in_response_to: Option<String>,
    pub app: Option<String>,
    pub campaign_id: Option<String>,
    pub priority: Priority,
    /// RapidSMS `ErrorMessage`: an error reply, routed like any other.
    pub is_error: bool,
    pub encoding: Option<Encoding>,
    pub segments: i32,
    pub fields: Fields,
}

impl OutboundMessage {
    /// A new message to `connection`, with a fresh id.
    pub fn new(connection: Connection, text: impl Into<String>) -> Self {
        Self {
            id: new_id(),
            connection,
            text: text.into(),
            created_at: now_millis(),
            in_response_to: None,
            app: None,
            campaign_id: None,
            priority: Priority::Normal,
            is_error: false,
            encoding: None,
            segments: 0,
            fields: Fields::new(),
        }
    }

    /// A reply to `inbound`, over the connection it came in on (RapidSMS `msg.respond`).
    pub fn reply_to(inbound: &InboundMessage, text: impl Into<String>) -> Self {
        let mut reply = Self::new(inbound.connection.clone(), text);
        reply.in_response_to = Some(inbound.id.clone());
        // RapidSMS's extra_backend_context(): providers thread replies with it.
        if let Some(external_id) = &inbound.external_id {
            reply
                .fields
                .insert("external_id".to_owned(), external_id.clone());
        }
        reply
    }
}

/// The states an outbound message goes through at its provider.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DeliveryStatus {
    Queued,
    Sent,
    Delivered,
    Failed,
    Expired,
    /// Not sent: the number opted out (STOP).
    Suppressed,
}

impl DeliveryStatus {
    /// The status as it is written in the schema and shown to operators.
    pub fn name(self) -> &'static str {
        match self {
            DeliveryStatus::Queued => "queued",
            DeliveryStatus::Sent => "sent",
            DeliveryStatus::Delivered => "delivered",
            DeliveryStatus::Failed => "failed",
            DeliveryStatus::Expired => "expired",
            DeliveryStatus::Suppressed => "suppressed",
        }
    }
}

/// What happened to an outbound message (`sms.events`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DeliveryEvent {
    pub message_id: String,
    pub connection: Connection,
    pub status: DeliveryStatus,
    pub at: i64,
    pub provider_id: Option<String>,
    pub error: Option<String>,
    /// The provider's own status, as it gave it (raw).
    pub provider_status: Option<String>,
    pub campaign_id: Option<String>,
    /// The message's segments; 0 when not known (delivery reports).
    pub segments: i32,
    /// The app that wrote the message (reports: from the sent-log, if known).
    pub app: Option<String>,
    /// The message's `created_at` (ms); 0 when not known (reports).
    pub accepted_at: i64,
    /// When the provider accepted it (ms): a `sent` event's own time; on
    /// reports, from the sink's sent-log; 0 when not known.
    pub sent_at: i64,
    /// Said by a provider's delivery report, not by a stage of smsflow.
    pub report: bool,
}

impl DeliveryEvent {
    /// `msg` reached `status` now.
    pub fn now(msg: &OutboundMessage, status: DeliveryStatus) -> Self {
        Self {
            message_id: msg.id.clone(),
            connection: msg.connection.clone(),
            status,
            at: now_millis(),
            provider_id: None,
            error: None,
            provider_status: None,
            campaign_id: msg.campaign_id.clone(),
            segments: msg.segments,
            app: msg.app.clone(),
            accepted_at: msg.created_at,
            sent_at: 0,
            report: false,
        }
    }
}

/// A person and the connections they use (`sms.contacts`, key = id).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Contact {
    pub id: String,
    pub name: String,
    /// A language tag; empty means the pipeline's default language.
    pub language: String,
    pub connections: Vec<Connection>,
    /// Group names, for sending to a group.
    pub groups: Vec<String>,
    pub created_at: i64,
    pub modified_at: i64,
}

/// Which way a logged message went.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Direction {
    In,
    Out,
}

/// One message in the message log (`sms.log`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LogEntry {
    pub message_id: String,
    pub direction: Direction,
    pub connection: Connection,
    pub contact_id: Option<String>,
    pub contact_name: String,
    pub text: String,
    pub at: i64,
    pub app: Option<String>,
    pub in_response_to: Option<String>,
}

/// Where a campaign is in its life. `scheduled` until its start, then
/// `running` ⇄ `paused`, and `completed` once every recipient was reached
/// (or `cancelled`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CampaignState {
    #[default]
    Scheduled,
    Running,
    Paused,
    Completed,
    Cancelled,
}

impl CampaignState {
    pub fn name(self) -> &'static str {
        match self {
            CampaignState::Scheduled => "scheduled",
            CampaignState::Running => "running",
            CampaignState::Paused => "paused",
            CampaignState::Completed => "completed",
            CampaignState::Cancelled => "cancelled",
        }
    }

    /// Nothing more is sent: completed or cancelled.
    pub fn is_final(self) -> bool {
        matches!(self, CampaignState::Completed | CampaignState::Cancelled)
    }
}

/// Where a campaign's recipients came from, and what was frozen of them.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct Audience {
    pub file: Option<String>,
    pub groups: Vec<String>,
    pub region: Option<String>,
    pub recipients: i64,
    pub chunks: i32,
    pub segments: i64,
    pub cost: f64,
}

/// A bulk campaign (`sms.campaigns`, key = id): its definition and state.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Campaign {
    pub id: String,
    pub name: String,
    pub backend: String,
    /// Language tag → template.
    pub texts: BTreeMap<String, String>,
    pub default_language: String,
    pub defaults: BTreeMap<String, String>,
    pub audience: Audience,
    pub start_at: Option<i64>,
    pub end_at: Option<i64>,
    pub messages_per_second: Option<f64>,
    pub segments_per_second: Option<f64>,
    pub daily_cap: Option<i64>,
    pub quiet_from: Option<String>,
    pub quiet_until: Option<String>,
    pub timezone: String,
    pub auto_pause_errors: i32,
    pub state: CampaignState,
    pub state_reason: Option<String>,
    pub created_at: i64,
    pub updated_at: i64,
}

/// One recipient of a frozen audience.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AudienceRow {
    /// The CSV line; 0 for a contact of a group.
    pub line: i64,
    /// E.164.
    pub phone: String,
    pub name: Option<String>,
    pub language: Option<String>,
    pub timezone: Option<String>,
    pub vars: Fields,
}

/// Part of a campaign's frozen audience (`sms.campaigns.audience`, key =
/// campaign id: one partition holds a campaign's chunks, in order).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AudienceChunk {
    pub campaign_id: String,
    pub index: i32,
    pub last: bool,
    pub rows: Vec<AudienceRow>,
}

/// A statistics window's length (`sms.stats`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum StatsWindow {
    Minute,
    Hour,
    Day,
}

impl StatsWindow {
    /// The window's length in milliseconds.
    pub fn millis(self) -> i64 {
        match self {
            StatsWindow::Minute => 60_000,
            StatsWindow::Hour => 3_600_000,
            StatsWindow::Day => 86_400_000,
        }
    }

    /// The window as the schema writes it.
    pub fn name(self) -> &'static str {
        match self {
            StatsWindow::Minute => "minute",
            StatsWindow::Hour => "hour",
            StatsWindow::Day => "day",
        }
    }

    /// The start of the window holding `at` (ms since the epoch, UTC).
    pub fn start_of(self, at: i64) -> i64 {
        at - at.rem_euclid(self.millis())
    }
}

/// What statistics are grouped by (`sms.stats`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum StatsDimension {
    Total,
    Backend,
    App,
    Keyword,
    Campaign,
}

impl StatsDimension {
    /// The dimension as the schema writes it.
    pub fn name(self) -> &'static str {
        match self {
            StatsDimension::Total => "total",
            StatsDimension::Backend => "backend",
            StatsDimension::App => "app",
            StatsDimension::Keyword => "keyword",
            StatsDimension::Campaign => "campaign",
        }
    }
}

/// Upper bounds (ms) of the latency histogram's buckets: 1-2-3-5-7 per
/// decade up to a day; one more bucket holds everything above.
pub const LATENCY_BOUNDS_MS: [i64; 40] = [
    1, 2, 3, 5, 7, 10, 20, 30, 50, 70, 100, 200, 300, 500, 700, 1_000, 2_000, 3_000, 5_000, 7_000,
    10_000, 20_000, 30_000, 50_000, 70_000, 100_000, 200_000, 300_000, 500_000, 700_000, 1_000_000,
    2_000_000, 3_000_000, 5_000_000, 7_000_000, 10_000_000, 20_000_000, 30_000_000, 50_000_000,
    86_400_000,
];

/// A latency histogram over [`LATENCY_BOUNDS_MS`], mergeable across partitions.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Latency {
    pub count: i64,
    pub sum_ms: i64,
    pub max_ms: i64,
    /// `buckets[i]` counts latencies in `(bound[i-1], bound[i]]`; the last
    /// one (index 40) everything above a day.
    pub buckets: Vec<i64>,
}

impl Default for Latency {
    fn default() -> Self {
        Self {
            count: 0,
            sum_ms: 0,
            max_ms: 0,
            buckets: vec![0; LATENCY_BOUNDS_MS.len() + 1],
        }
    }
}

impl Latency {
    /// Count one latency (negative ones, from skewed clocks, count as 0).
    pub fn record(&mut self, ms: i64) {
        let ms = ms.max(0);
        let i = LATENCY_BOUNDS_MS.partition_point(|&b| b < ms);
        self.buckets.resize(LATENCY_BOUNDS_MS.len() + 1, 0);
        self.buckets[i] += 1;
        self.count += 1;
        self.sum_ms += ms;
        self.max_ms = self.max_ms.max(ms);
    }

    /// Add `other`'s counts to these.
    pub fn merge(&mut self, other: &Latency) {
        self.buckets.resize(LATENCY_BOUNDS_MS.len() + 1, 0);
        for (i, n) in other.buckets.iter().enumerate().take(self.buckets.len()) {
            self.buckets[i] += n;
        }
        self.count += other.count;
        self.sum_ms += other.sum_ms;
        self.max_ms = self.max_ms.max(other.max_ms);
    }

    /// The `q`-quantile (0.0..=1.0) as its bucket's upper bound (the
    /// largest latency seen for the top bucket), or `None` when empty.
    pub fn quantile(&self, q: f64) -> Option<i64> {
        if self.count <= 0 {
            return None;
        }
        let rank = ((q.clamp(0.0, 1.0) * self.count as f64).ceil() as i64).max(1);
        let mut seen = 0;
        for (i, n) in self.buckets.iter().enumerate() {
            seen += n;
            if seen >= rank {
                let bound = LATENCY_BOUNDS_MS.get(i).copied().unwrap_or(self.max_ms);
                return Some(bound.min(self.max_ms));
            }
        }
        Some(self.max_ms)
    }
}

/// The counts of one window for one dimension value, as far as one source
/// partition goes (`sms.stats`, compacted). Readers sum over partitions.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Stats {
    pub window: StatsWindow,
    pub start: i64,
    pub dimension: StatsDimension,
    pub value: String,
    pub topic: String,
    pub partition: i32,
    pub through_offset: i64,
    pub inbound: i64,
    pub outbound: i64,
    pub queued: i64,
    pub sent: i64,
    pub delivered: i64,
    pub failed: i64,
    pub expired: i64,
    pub suppressed: i64,
    pub segments: i64,
    pub accepted_to_sent: Latency,
    pub sent_to_delivered: Latency,
    pub closed: bool,
    pub updated_at: i64,
}

impl Stats {
    /// A record of one window, dimension value and source partition with
    /// nothing counted yet (`through_offset` -1: no record read).
    pub fn empty(
        window: StatsWindow,
        start: i64,
        dimension: StatsDimension,
        value: &str,
        topic: &str,
        partition: i32,
    ) -> Stats {
        Stats {
            window,
            start,
            dimension,
            value: value.to_owned(),
            topic: topic.to_owned(),
            partition,
            through_offset: -1,
            inbound: 0,
            outbound: 0,
            queued: 0,
            sent: 0,
            delivered: 0,
            failed: 0,
            expired: 0,
            suppressed: 0,
            segments: 0,
            accepted_to_sent: Latency::default(),
            sent_to_delivered: Latency::default(),
            closed: false,
            updated_at: 0,
        }
    }

    /// The compacted topic's key of this record.
    pub fn key(&self) -> String {
        format!(
            "{}/{}/{}/{}/{}/{}",
            self.window.name(),
            self.start,
            self.dimension.name(),
            self.value,
            self.topic,
            self.partition
        )
    }
}
