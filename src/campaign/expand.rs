//! What the campaign stage prepares before it walks a chunk: each
//! recipient's text rendered, its segments counted and its message encoded
//! (in parallel, with rayon, when the chunk is big enough to pay), and a
//! campaign's own pace.

use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use chrono_tz::Tz;
use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};
use rayon::prelude::*;

use super::audience::Recipient;
use super::quiet::{parse_zone, zone_for};
use super::render::{ContactFields, Texts};
use crate::bus::Produce;
use crate::message::{
    campaign_message_id, AudienceRow, Campaign, Connection, OutboundMessage, Priority,
};
use crate::schema;
use crate::sms;

/// One recipient, ready before the walk.
pub(super) struct Item {
    pub(super) phone: String,
    pub(super) zone: Tz,
    /// The message's record and its `queued` event's, or the variables the
    /// recipient lacks.
    pub(super) ready: Result<(Produce, OutboundMessage), String>,
}

/// Chunks of at least this many rows are prepared with rayon. Below it,
/// handing the work to the pool costs more than it saves: encoding 64
/// outbound messages took 17 µs in order and 20 µs with rayon on two cores,
/// 256 took 67 and 47 µs (`cargo bench --bench micro -- batch`).
const PARALLEL_FROM: usize = 128;

/// Render, count and encode every recipient of a chunk, in order (in
/// parallel from [`PARALLEL_FROM`] rows): each one's zone, and its
/// message's record or why it has none.
pub(super) fn prepare(
    c: &Campaign,
    topic: &Arc<str>,
    rows: Vec<AudienceRow>,
    default_zone: Tz,
    contacts: &(dyn Fn(&str) -> Option<ContactFields> + Send + Sync),
) -> Vec<Item> {
    let texts = Texts {
        texts: c.texts.clone(),
        default_language: c.default_language.clone(),
        defaults: c.defaults.clone(),
    };
    let zone = parse_zone(&c.timezone).unwrap_or(default_zone);
    let one = |row: AudienceRow| {
        let zone = zone_for(&row.phone, row.timezone.as_deref(), zone);
        let contact = contacts(&row.phone);
        let contact = ContactFields {
            name: row
                .name
                .clone()
                .or(contact.as_ref().and_then(|c| c.name.clone())),
            language: row.language.clone().or(contact.and_then(|c| c.language)),
        };
        let phone = row.phone.clone();
        let recipient = Recipient {
            line: row.line.max(0) as u64,
            phone: row.phone,
            language: row.language,
            vars: row.vars.into_iter().collect(),
        };
        let ready = texts
            .render_for(&recipient, Some(&contact))
            .map_err(|m| format!("no value and no default for {:?}", m.names))
            .and_then(|rendered| {
                message(c, topic, &recipient.phone, rendered.text).map_err(|e| e.to_string())
            });
        Item { phone, zone, ready }
    };
    match rows.len() >= PARALLEL_FROM {
        true => rows.into_par_iter().map(one).collect(),
        false => rows.into_iter().map(one).collect(),
    }
}

/// A campaign's message to one number: its record on the bulk lane.
fn message(
    c: &Campaign,
    topic: &Arc<str>,
    phone: &str,
    text: String,
) -> Result<(Produce, OutboundMessage), schema::EncodeError> {
    let mut msg = OutboundMessage::new(Connection::new(&c.backend, phone), text);
    msg.id = campaign_message_id(&c.id, phone);
    msg.campaign_id = Some(c.id.clone());
    msg.app = Some("campaign".into());
    msg.priority = Priority::Bulk;
    let (encoding, segments) = sms::analyze(&msg.text);
    msg.encoding = Some(encoding);
    msg.segments = segments;
    let payload = schema::outbound().encode(&msg)?;
    let record = Produce::new(topic.clone(), Bytes::from(msg.connection.key()), payload);
    // The text is in the record; the walk needs only the counts.
    msg.text = String::new();
    Ok((record, msg))
}

/// A campaign's own limits, as token buckets.
pub(super) struct Pace {
    pub(super) messages: Option<DefaultDirectRateLimiter>,
    pub(super) segments: Option<DefaultDirectRateLimiter>,
}

impl Pace {
    pub(super) fn new(messages: Option<f64>, segments: Option<f64>) -> Pace {
        let bucket = |rate: Option<f64>| {
            let rate = rate.filter(|r| r.is_finite() && *r > 0.0)?;
            let period = Duration::from_secs_f64(1.0 / rate);
            Quota::with_period(period).map(|q| RateLimiter::direct(q.allow_burst(NonZeroU32::MIN)))
        };
        Pace {
            messages: bucket(messages),
            segments: bucket(segments),
        }
    }
}
