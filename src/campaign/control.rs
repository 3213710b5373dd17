//! A campaign's life as operators drive it (the API, the CLI and the page
//! share these): preview, start (the audience frozen onto
//! `sms.campaigns.audience`), pause, resume, cancel.

use std::collections::BTreeMap;
use std::sync::Arc;

use bytes::Bytes;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::audience::CsvAudience;
use super::freeze::freeze;
use super::preview::{preview as count, Preview, PreviewError, PreviewOptions, Prices};
use super::quiet::{parse_zone, QuietHours};
use super::render::{ContactFields, Texts};
use crate::bus::{BusError, Produce, Producer};
use crate::config::Pipeline;
use crate::message::{Audience, Campaign, CampaignState, Connection};
use crate::schema;
use crate::sms::numbers::Country;
use crate::state::campaigns::CampaignBook;
use crate::state::table::next_version;
use crate::state::Tables;

/// A campaign as an operator describes it (JSON of the API, the page's form).
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct NewCampaign {
    /// Letters, digits, `-` and `_`; a new one when left out.
    #[serde(default)]
    pub id: Option<String>,
    #[serde(default)]
    pub name: String,
    pub backend: String,
    /// Language tag → template (`{name}` placeholders).
    pub texts: BTreeMap<String, String>,
    /// Default: the pipeline's default language.
    #[serde(default)]
    pub default_language: Option<String>,
    #[serde(default)]
    pub defaults: BTreeMap<String, String>,
    /// Contact groups whose members are recipients too.
    #[serde(default)]
    pub groups: Vec<String>,
    /// RFC 3339; none: at once.
    #[serde(default)]
    pub start_at: Option<DateTime<Utc>>,
    #[serde(default)]
    pub end_at: Option<DateTime<Utc>>,
    #[serde(default)]
    pub messages_per_second: Option<f64>,
    #[serde(default)]
    pub segments_per_second: Option<f64>,
    #[serde(default)]
    pub daily_cap: Option<i64>,
    /// Quiet hours, `HH:MM`, in each recipient's zone.
    #[serde(default)]
    pub quiet_from: Option<String>,
    #[serde(default)]
    pub quiet_until: Option<String>,
    /// Default: `campaigns.timezone`.
    #[serde(default)]
    pub timezone: Option<String>,
    /// Default 10; 0: never.
    #[serde(default)]
    pub auto_pause_errors: Option<i32>,
}

/// Why a campaign was refused: the field and what is wrong.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{field}: {message}")]
pub struct CampaignError {
    pub field: &'static str,
    pub message: String,
}

fn refuse(field: &'static str, message: impl Into<String>) -> CampaignError {
    CampaignError {
        field,
        message: message.into(),
    }
}

/// What an operator asks of a started campaign.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Command {
    Pause,
    Resume,
    Cancel,
}

/// What the operations need of a running pipeline.
pub struct Ctx<'a> {
    pub pipeline: &'a Pipeline,
    pub tables: &'a Tables,
    pub producer: &'a Producer,
}

/// Writes campaigns' definitions and states to `sms.campaigns`.
#[derive(Clone)]
pub struct Writer {
    producer: Producer,
    topic: Arc<str>,
}

impl Writer {
    pub fn new(producer: Producer, topic: &str) -> Writer {
        Writer {
            producer,
            topic: Arc::from(topic),
        }
    }

    pub fn producer(&self) -> &Producer {
        &self.producer
    }

    /// Store `c` and keep it in `book` at once.
    pub async fn write(&self, book: &CampaignBook, c: Campaign) -> Result<(), BusError> {
        let payload = schema::campaign().encode(&c).map_err(|e| {
            BusError::Interrupted(format!("cannot encode campaign {:?}: {e}", c.id))
        })?;
        let record = Produce::new(self.topic.clone(), Bytes::from(c.id.clone()), payload);
        self.producer.send_and_wait(record).await?;
        book.put(c);
        Ok(())
    }

    /// Move campaign `id` to `state` (nothing when it is there already).
    pub async fn set_state(
        &self,
        book: &CampaignBook,
        id: &str,
        state: CampaignState,
        reason: &str,
    ) -> Result<(), BusError> {
        let Some(mut c) = book.get(id) else {
            return Ok(());
        };
        if c.state == state {
            return Ok(());
        }
        tracing::info!(campaign = %id, from = c.state.name(), to = state.name(), reason, "campaign state");
        c.state = state;
        c.state_reason = Some(reason.to_owned());
        c.updated_at = next_version(Some(c.updated_at));
        self.write(book, c).await
    }
}

/// What [`preview`] and [`start`] read: the texts, the audience (the CSV
/// with the groups' members after its lines) and how numbers are read.
struct Plan {
    texts: Texts,
    csv: Vec<u8>,
    region: Option<Country>,
    prices: Prices,
}

/// What `new` would send to the audience in `csv` and its groups.
pub fn preview(ctx: &Ctx, new: &NewCampaign, csv: Option<&[u8]>) -> Result<Preview, CampaignError> {
    let plan = plan(ctx, new, csv)?;
    run_preview(ctx, new, &plan)
}

fn run_preview(ctx: &Ctx, new: &NewCampaign, plan: &Plan) -> Result<Preview, CampaignError> {
    let optouts = &ctx.tables.optouts;
    let blocked = &ctx.pipeline.filters.blocked;
    let suppressed = |phone: &str| optouts.is_stopped(phone) || blocked.iter().any(|b| b == phone);
    let contact = contact_lookup(ctx, &new.backend);
    let opts = PreviewOptions {
        region: plan.region,
        texts: &plan.texts,
        prices: &plan.prices,
        suppressed: &suppressed,
        contact: &contact,
    };
    count(plan.csv.as_slice(), &opts).map_err(|e| match e {
        PreviewError::Audience(e) => refuse("audience", e.to_string()),
        PreviewError::Template(e) => refuse("texts", e.to_string()),
    })
}

/// A number's contact on `backend`: its name and language for the texts.
fn contact_lookup(ctx: &Ctx, backend: &str) -> impl Fn(&str) -> Option<ContactFields> + Sync {
    let contacts = ctx.tables.contacts.clone();
    let backend = backend.to_owned();
    move |phone: &str| {
        let c = contacts.by_connection(&Connection::new(&backend, phone))?;
        Some(ContactFields {
            name: (!c.name.is_empty()).then(|| c.name.clone()),
            language: (!c.language.is_empty()).then(|| c.language.clone()),
        })
    }
}

/// Check `new` against the pipeline and put its audience together.
fn plan(ctx: &Ctx, new: &NewCampaign, csv: Option<&[u8]>) -> Result<Plan, CampaignError> {
    let p = ctx.pipeline;
    let Some(settings) = &p.campaigns else {
        return Err(refuse(
            "campaigns",
            "this pipeline has no `campaigns:` section",
        ));
    };
    if !p.backends.iter().any(|b| b.name() == new.backend) {
        let names: Vec<&str> = p.backends.iter().map(|b| b.name()).collect();
        return Err(refuse(
            "backend",
            format!(
                "no backend {:?} in this pipeline; its backends are: {}",
                new.backend,
                names.join(", ")
            ),
        ));
    }
    if new.texts.is_empty() {
        return Err(refuse(
            "texts",
            "no text: give at least one, in the default language",
        ));
    }
    let texts = Texts {
        texts: new.texts.clone(),
        default_language: new
            .default_language
            .clone()
            .unwrap_or_else(|| p.languages.default.clone()),
        defaults: new.defaults.clone(),
    };
    let region = settings.region.as_deref().and_then(Country::parse);
    let price = settings
        .prices
        .get(&new.backend)
        .cloned()
        .unwrap_or_default();
    let prices = Prices {
        per_segment: price.segment,
        prefixes: price.prefixes,
    };
    let csv = audience_csv(ctx, new, csv)?;
    Ok(Plan {
        texts,
        csv,
        region,
        prices,
    })
}

/// The CSV with the groups' members as lines after its own (their
/// other columns empty: the texts' defaults, or the contact's name and
/// language, fill them in).
fn audience_csv(
    ctx: &Ctx,
    new: &NewCampaign,
    csv: Option<&[u8]>,
) -> Result<Vec<u8>, CampaignError> {
    let mut out: Vec<u8> = match csv {
        Some(bytes) if !bytes.is_empty() => bytes.to_vec(),
        _ => b"phone\n".to_vec(),
    };
    let groups: Vec<&str> = new
        .groups
        .iter()
        .map(|g| g.trim())
        .filter(|g| !g.is_empty())
        .collect();
    if groups.is_empty() {
        return Ok(out);
    }
    let columns = {
        let audience = CsvAudience::new(out.as_slice(), None)
            .map_err(|e| refuse("audience", e.to_string()))?;
        // phone + the variables (+ language): the header's width.
        audience.columns().len() + 1 + usize::from(audience.has_language())
    };
    let phone_column = header_position(&out).unwrap_or(0);
    if !out.ends_with(b"\n") {
        out.push(b'\n');
    }
    let mut writer = csv::Writer::from_writer(Vec::new());
    for group in groups {
        let members = ctx.tables.contacts.in_group(group);
        if members.is_empty() {
            return Err(refuse(
                "groups",
                format!("no contact is in group {group:?}"),
            ));
        }
        for contact in members {
            let Some(c) = contact
                .connections
                .iter()
                .find(|c| c.backend == new.backend)
            else {
                continue;
            };
            let mut row = vec![String::new(); columns];
            row[phone_column] = c.identity.clone();
            writer
                .write_record(&row)
                .map_err(|e| refuse("groups", e.to_string()))?;
        }
    }
    let rows = writer
        .into_inner()
        .map_err(|e| refuse("groups", e.to_string()))?;
    out.extend_from_slice(&rows);
    Ok(out)
}

/// Where the `phone` column is in a CSV's header.
fn header_position(csv: &[u8]) -> Option<usize> {
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(false)
        .flexible(true)
        .from_reader(csv);
    let header = reader.byte_records().next()?.ok()?;
    header.iter().position(|cell| {
        let cell = cell.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(cell);
        String::from_utf8_lossy(cell)
            .trim()
            .eq_ignore_ascii_case("phone")
    })
}

/// Check the schedule, limits and zone of `new`.
fn check_settings(ctx: &Ctx, new: &NewCampaign, now: DateTime<Utc>) -> Result<(), CampaignError> {
    if let Some(id) = &new.id {
        let valid = !id.is_empty()
            && id.len() <= 64
            && id
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
        if !valid {
            return Err(refuse(
                "id",
                format!("{id:?}: expected 1 to 64 letters, digits, - and _"),
            ));
        }
        if id == "new" || id == "preview" {
            return Err(refuse(
                "id",
                format!("{id:?} names a page and an API call (/campaigns/{id}): choose another id"),
            ));
        }
        if ctx.tables.campaigns.get(id).is_some() {
            return Err(refuse(
                "id",
                format!("campaign {id:?} exists: a campaign starts once (give another id)"),
            ));
        }
    }
    // A minute's grace for clocks and slow forms.
    if let Some(start) = new.start_at {
        if start < now - chrono::Duration::minutes(1) {
            return Err(refuse(
                "start_at",
                format!("{start} is in the past (now {now})"),
            ));
        }
    }
    if let Some(end) = new.end_at {
        let start = new.start_at.unwrap_or(now);
        if end <= start {
            return Err(refuse(
                "end_at",
                format!("{end} is not after the start ({start})"),
            ));
        }
    }
    for (field, rate) in [
        ("messages_per_second", new.messages_per_second),
        ("segments_per_second", new.segments_per_second),
    ] {
        if rate.is_some_and(|r| !r.is_finite() || r <= 0.0) {
            return Err(refuse(field, "expected a number above 0"));
        }
    }
    if new.daily_cap.is_some_and(|c| c < 1) {
        return Err(refuse("daily_cap", "expected at least 1"));
    }
    if new.auto_pause_errors.is_some_and(|n| n < 0) {
        return Err(refuse("auto_pause_errors", "expected 0 (never) or more"));
    }
    match (&new.quiet_from, &new.quiet_until) {
        (None, None) => {}
        (Some(from), Some(until)) => {
            QuietHours::parse(from, until).map_err(|e| refuse("quiet_from", e))?;
        }
        _ => {
            return Err(refuse(
                "quiet_from",
                "quiet hours need both quiet_from and quiet_until",
            ))
        }
    }
    if let Some(zone) = &new.timezone {
        parse_zone(zone).map_err(|e| refuse("timezone", e))?;
    }
    Ok(())
}

/// Start `new`: check it, preview it (a preview with problems refuses it),
/// store its definition, then freeze its audience onto the audience topic.
pub async fn start(
    ctx: &Ctx<'_>,
    new: NewCampaign,
    file: Option<String>,
    csv: Option<&[u8]>,
    now: DateTime<Utc>,
) -> Result<(Campaign, Preview), CampaignError> {
    check_settings(ctx, &new, now)?;
    let plan = plan(ctx, &new, csv)?;
    let preview = run_preview(ctx, &new, &plan)?;
    if !preview.ok() {
        return Err(refuse("audience", preview.problems.join("; ")));
    }
    let p = ctx.pipeline;
    let settings = p.campaigns.clone().unwrap_or_default();
    let id = new
        .id
        .clone()
        .unwrap_or_else(|| format!("c-{}", &crate::message::new_id()[..8]));
    let millis = now.timestamp_millis();
    let start_at = new.start_at.map(|s| s.timestamp_millis());
    let state = match start_at {
        Some(s) if s > millis => CampaignState::Scheduled,
        _ => CampaignState::Running,
    };
    let recipients = preview.to_send + preview.suppressed;
    let chunk = settings.chunk.max(1);
    let mut campaign = Campaign {
        id: id.clone(),
        name: new.name.clone(),
        backend: new.backend.clone(),
        texts: plan.texts.texts.clone(),
        default_language: plan.texts.default_language.clone(),
        defaults: plan.texts.defaults.clone(),
        audience: Audience {
            file,
            groups: new.groups.clone(),
            region: settings.region.clone(),
            recipients: recipients as i64,
            chunks: recipients.div_ceil(chunk as u64) as i32,
            segments: preview.segments as i64,
            cost: preview.cost,
        },
        start_at,
        end_at: new.end_at.map(|e| e.timestamp_millis()),
        messages_per_second: new.messages_per_second,
        segments_per_second: new.segments_per_second,
        daily_cap: new.daily_cap,
        quiet_from: new.quiet_from.clone(),
        quiet_until: new.quiet_until.clone(),
        timezone: new.timezone.clone().unwrap_or(settings.timezone.clone()),
        auto_pause_errors: new.auto_pause_errors.unwrap_or(10),
        state,
        state_reason: Some("started".into()),
        created_at: millis,
        updated_at: millis,
    };
    let writer = Writer::new(ctx.producer.clone(), &p.topics.campaigns);
    writer
        .write(&ctx.tables.campaigns, campaign.clone())
        .await
        .map_err(|e| refuse("bus", e.to_string()))?;
    let topic = &p.topics.audience;
    let frozen = freeze(ctx.producer, topic, &id, &plan.csv, plan.region, chunk)
        .await
        .map_err(|e| refuse("bus", e.to_string()))?;
    if frozen != recipients {
        // The opt-out list or the contacts moved between the two reads;
        // the definition says what was frozen.
        campaign.audience.recipients = frozen as i64;
        campaign.audience.chunks = frozen.div_ceil(chunk as u64) as i32;
        campaign.updated_at = next_version(Some(campaign.updated_at));
        writer
            .write(&ctx.tables.campaigns, campaign.clone())
            .await
            .map_err(|e| refuse("bus", e.to_string()))?;
    }
    Ok((campaign, preview))
}

/// Pause, resume or cancel campaign `id`; the campaign as it is now.
pub async fn command(ctx: &Ctx<'_>, id: &str, command: Command) -> Result<Campaign, CampaignError> {
    let book = &ctx.tables.campaigns;
    let Some(c) = book.get(id) else {
        return Err(refuse("id", format!("no campaign {id:?}")));
    };
    let now = crate::message::now_millis();
    use CampaignState::*;
    let (state, reason) = match (command, c.state) {
        (_, Completed | Cancelled) => {
            return Err(refuse(
                "state",
                format!(
                    "campaign {id:?} is {}: nothing to {}",
                    c.state.name(),
                    name(command)
                ),
            ))
        }
        (Command::Pause, Running | Scheduled) => (Paused, "paused by an operator"),
        (Command::Resume, Paused) => match c.start_at {
            Some(s) if s > now => (Scheduled, "resumed by an operator (before its start)"),
            _ => (Running, "resumed by an operator"),
        },
        (Command::Cancel, _) => (Cancelled, "cancelled by an operator"),
        (Command::Pause, Paused) | (Command::Resume, Running | Scheduled) => return Ok(c),
    };
    let writer = Writer::new(ctx.producer.clone(), &ctx.pipeline.topics.campaigns);
    writer
        .set_state(book, id, state, reason)
        .await
        .map_err(|e| refuse("bus", e.to_string()))?;
    Ok(book.get(id).unwrap_or(c))
}

fn name(c: Command) -> &'static str {
    match c {
        Command::Pause => "pause",
        Command::Resume => "resume",
        Command::Cancel => "cancel",
    }
}
