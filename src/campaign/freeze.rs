//! A campaign's audience frozen onto `sms.campaigns.audience`: its valid,
//! unique numbers in file order, `chunk` to a record, keyed by the campaign
//! id (one partition, in order); the last record says it is the last.

use std::sync::Arc;

use bytes::Bytes;

use super::audience::{AudienceError, CsvAudience, Seen};
use crate::bus::{AckGroup, BusError, Produce, Producer};
use crate::message::{AudienceChunk, AudienceRow, Fields};
use crate::schema;
use crate::sms::numbers::Country;

/// Write the audience's valid, unique recipients (opted-out ones too: the
/// stage counts them suppressed) as chunks; returns how many.
pub(super) async fn freeze(
    producer: &Producer,
    topic: &str,
    id: &str,
    csv: &[u8],
    region: Option<Country>,
    chunk: usize,
) -> Result<u64, BusError> {
    let topic: Arc<str> = Arc::from(topic);
    let bad =
        |e: AudienceError| BusError::Interrupted(format!("the audience cannot be read again: {e}"));
    let mut audience = CsvAudience::new(csv, region).map_err(bad)?;
    let mut seen = Seen::new();
    let acks = AckGroup::new();
    let mut rows: Vec<AudienceRow> = Vec::with_capacity(chunk);
    let mut held: Option<AudienceChunk> = None;
    let mut index = 0;
    let mut frozen = 0u64;
    loop {
        let batch = audience.next_batch(64 * 1024).map_err(bad)?;
        let end = batch.is_empty();
        for r in batch.into_iter().flatten() {
            if !seen.first(&r.phone) {
                continue;
            }
            let vars: Fields = r.vars.into_iter().collect();
            rows.push(AudienceRow {
                line: r.line as i64,
                timezone: vars.get("timezone").filter(|z| !z.is_empty()).cloned(),
                name: None,
                phone: r.phone,
                language: r.language,
                vars,
            });
            frozen += 1;
            if rows.len() == chunk {
                let next = AudienceChunk {
                    campaign_id: id.to_owned(),
                    index,
                    last: false,
                    rows: std::mem::replace(&mut rows, Vec::with_capacity(chunk)),
                };
                index += 1;
                if let Some(c) = held.replace(next) {
                    send(producer, &topic, &c, &acks).await?;
                }
            }
        }
        if end {
            break;
        }
    }
    if !rows.is_empty() {
        let next = AudienceChunk {
            campaign_id: id.to_owned(),
            index,
            last: false,
            rows,
        };
        if let Some(c) = held.replace(next) {
            send(producer, &topic, &c, &acks).await?;
        }
    }
    if let Some(mut last) = held {
        last.last = true;
        send(producer, &topic, &last, &acks).await?;
    }
    acks.wait().await?;
    Ok(frozen)
}

async fn send(
    producer: &Producer,
    topic: &Arc<str>,
    c: &AudienceChunk,
    acks: &Arc<AckGroup>,
) -> Result<(), BusError> {
    let payload = schema::audience()
        .encode(c)
        .map_err(|e| BusError::Interrupted(format!("cannot encode an audience chunk: {e}")))?;
    let record = Produce::new(topic.clone(), Bytes::from(c.campaign_id.clone()), payload);
    producer.send_in(record, Some(acks)).await
}
