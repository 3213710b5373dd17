//! Counting what the recipients got at the stub: lost, twice, another's
//! text or id, strays; and a test that the counting finds each.

use std::collections::{BTreeSet, HashMap};

use serde_json::json;

use super::stub::Stub;
use super::world::Audience;
use super::CAMPAIGN;

/// What the recipients got, counted at the stub.
#[derive(Debug, Default)]
pub struct Counts {
    pub requests: usize,
    /// No request, no "outcome unknown" event either.
    pub lost: Vec<String>,
    /// No request; reported failed "outcome unknown".
    pub unknown: Vec<String>,
    /// "outcome unknown" reported, and the stub did get it.
    pub unknown_delivered: usize,
    /// Requests beyond the first, per recipient.
    pub duplicated: usize,
    pub twice: Vec<String>,
    /// (number, what it got) for a text that is not its own.
    pub wrong_text: Vec<(String, String)>,
    /// Requests whose message id is not the one derived from the campaign
    /// and the number.
    pub wrong_key: usize,
    /// Requests to numbers outside the audience.
    pub strays: usize,
}

pub fn count(audience: &Audience, stub: &Stub, unknown_ids: &BTreeSet<String>) -> Counts {
    let mut c = Counts::default();
    let mut got: HashMap<String, Vec<(String, String)>> = HashMap::new();
    stub.with(|requests| {
        for r in requests
            .iter()
            .filter(|r| r.campaign.as_deref() == Some(CAMPAIGN))
        {
            c.requests += 1;
            got.entry(r.identity.clone())
                .or_default()
                .push((r.key.clone(), r.text.clone()));
        }
    });
    let phones: BTreeSet<&str> = audience
        .recipients
        .iter()
        .map(|r| r.phone.as_str())
        .collect();
    c.strays = got
        .iter()
        .filter(|(phone, _)| !phones.contains(phone.as_str()))
        .map(|(_, v)| v.len())
        .sum();
    for r in &audience.recipients {
        let id = smsflow::message::campaign_message_id(CAMPAIGN, &r.phone);
        let unknown = unknown_ids.contains(&id);
        let Some(copies) = got.get(&r.phone) else {
            match unknown {
                true => c.unknown.push(r.phone.clone()),
                false => c.lost.push(r.phone.clone()),
            }
            continue;
        };
        c.unknown_delivered += usize::from(unknown);
        if copies.len() > 1 {
            c.duplicated += copies.len() - 1;
            c.twice.push(r.phone.clone());
        }
        for (key, text) in copies {
            c.wrong_key += usize::from(*key != id);
            if *text != r.text && c.wrong_text.len() < 20 {
                c.wrong_text.push((r.phone.clone(), text.clone()));
            }
        }
    }
    c
}

/// The per-recipient checks: nothing lost, nothing twice, each its own
/// text and id, nothing to strangers.
pub fn all_right(c: &Counts) -> bool {
    c.lost.is_empty()
        && c.duplicated == 0
        && c.wrong_text.is_empty()
        && c.wrong_key == 0
        && c.strays == 0
}

/// A broken stub count is caught: a recipient sent twice, one missing and
/// one with another's text are each reported.
#[tokio::test]
async fn the_count_finds_what_is_lost_doubled_or_wrong() {
    let audience = Audience::new(4);
    let stub = Stub::start().await;
    let client = reqwest::Client::new();
    let send = |phone: &str, text: &str| {
        let id = smsflow::message::campaign_message_id(CAMPAIGN, phone);
        client
            .post(&stub.url)
            .header("Idempotency-Key", id)
            .json(&json!({"identity": phone, "text": text, "campaign_id": CAMPAIGN}))
            .send()
    };
    let r = &audience.recipients;
    for (phone, text) in [
        (&r[0].phone, &r[0].text),
        (&r[0].phone, &r[0].text),
        (&r[1].phone, &r[2].text),
        (&r[2].phone, &r[2].text),
    ] {
        send(phone, text).await.unwrap();
    }
    let c = count(&audience, &stub, &BTreeSet::new());
    assert_eq!(c.lost, vec![r[3].phone.clone()]);
    assert_eq!(
        (c.duplicated, c.twice.clone()),
        (1, vec![r[0].phone.clone()])
    );
    assert_eq!(c.wrong_text, vec![(r[1].phone.clone(), r[2].text.clone())]);
    assert!(!all_right(&c));
    // The one reported "outcome unknown" is not lost.
    let unknown = BTreeSet::from([smsflow::message::campaign_message_id(CAMPAIGN, &r[3].phone)]);
    let c = count(&audience, &stub, &unknown);
    assert_eq!((c.lost.len(), c.unknown.len()), (0, 1));
    // The audience's texts: languages, defaults, national numbers.
    assert_eq!(r[0].text, "Hello friend, your code is K00000.");
    assert_eq!(r[1].text, "Habari Name1, nambari yako ni K07919.");
    assert_eq!(r[3].phone, "+254700000003");
    assert!(
        audience.csv.contains("\r\n0700000003,Name3,en,K23757\r\n"),
        "{}",
        audience.csv
    );
}
