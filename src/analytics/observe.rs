//! What one source record counts for: its event time, the dimension values
//! it is counted under, and what it adds (an [`Observation`]). Pure: the
//! whole definition of every count is here.
//!
//! - `sms.inbound` (an [`InboundMessage`], at `received_at`): `inbound`
//!   under the total, its backend and its keyword.
//! - `sms.app.<name>` (a [`RoutedMessage`], at the message's
//!   `received_at`): `inbound` under its app only (the total and the
//!   backend come from `sms.inbound`, so nothing is counted twice).
//! - `sms.events` (a [`DeliveryEvent`], at `at`): under the total, its
//!   backend, its app and its campaign (when the event names them), by
//!   who wrote it ([`DeliveryEvent::report`]) and its status:
//!
//! | written by | status | counts |
//! |---|---|---|
//! | a stage | `queued` (a campaign or a group send released it) | queued |
//! | a stage | `sent` (a sink: the provider accepted it) | outbound, sent, segments, accepted→sent |
//! | a stage | `delivered` (the tester sink: sent and delivered at once) | outbound, sent, delivered, segments, accepted→sent, sent→delivered |
//! | a stage | `failed` (a sink gave up, or a campaign could not render it) | outbound, failed |
//! | a stage | `suppressed` (opted out or blocked) | outbound, suppressed |
//! | a report | `delivered` | delivered, sent→delivered |
//! | a report | `failed` | failed |
//! | either | `expired` | expired |
//! | a report | `queued`, `sent` (progress notes) | nothing |
//!
//! So each message is one `outbound` (what smsflow finished with it: sent,
//! failed or suppressed), and a provider's failure report after a sink's
//! `sent` is one more `failed` but no second outbound.

use std::borrow::Cow;

use crate::message::{
    DeliveryEvent, DeliveryStatus, InboundMessage, RoutedMessage, StatsDimension,
};

/// Longest keyword kept (characters): longer first words are cut.
pub const MAX_KEYWORD_CHARS: usize = 32;

/// What one record adds to a window's counts.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Delta {
    pub inbound: i64,
    pub outbound: i64,
    pub queued: i64,
    pub sent: i64,
    pub delivered: i64,
    pub failed: i64,
    pub expired: i64,
    pub suppressed: i64,
    pub segments: i64,
    /// Milliseconds from accepted to sent, when this record knows it.
    pub accepted_to_sent: Option<i64>,
    /// Milliseconds from sent to delivered, when this record knows it.
    pub sent_to_delivered: Option<i64>,
}

/// One record as the statistics see it.
#[derive(Debug, Clone, PartialEq)]
pub struct Observation<'a> {
    /// Event time, ms since the Unix epoch.
    pub at: i64,
    /// The dimension values it is counted under (the total's value is "").
    pub dims: Vec<(StatsDimension, Cow<'a, str>)>,
    pub delta: Delta,
    /// For the Prometheus counters: `in`/`out` and a status.
    pub direction: &'static str,
    pub status: &'static str,
    /// The backend, for the Prometheus series (none for app topics).
    pub backend: Option<&'a str>,
}

/// The keyword of an inbound text, RapidSMS-style: its first word (up to
/// whitespace or one of `,;:`), upper-cased, at most
/// [`MAX_KEYWORD_CHARS`] characters; `None` for a text with no word.
pub fn keyword(text: &str) -> Option<String> {
    let word = text
        .trim_start()
        .split(|c: char| c.is_whitespace() || matches!(c, ',' | ';' | ':'))
        .next()
        .unwrap_or_default();
    if word.is_empty() {
        return None;
    }
    let cut: String = word.chars().take(MAX_KEYWORD_CHARS).collect();
    Some(cut.to_uppercase())
}

/// `sms.inbound`: one inbound message.
pub fn inbound(m: &InboundMessage) -> Observation<'_> {
    let mut dims = vec![
        (StatsDimension::Total, Cow::Borrowed("")),
        (
            StatsDimension::Backend,
            Cow::Borrowed(m.connection.backend.as_str()),
        ),
    ];
    if let Some(k) = keyword(&m.text) {
        dims.push((StatsDimension::Keyword, Cow::Owned(k)));
    }
    Observation {
        at: m.received_at,
        dims,
        delta: Delta {
            inbound: 1,
            ..Delta::default()
        },
        direction: "in",
        status: "received",
        backend: Some(&m.connection.backend),
    }
}

/// `sms.app.<name>`: one message an app was given.
pub fn routed(m: &RoutedMessage) -> Observation<'_> {
    Observation {
        at: m.message.received_at,
        dims: vec![(StatsDimension::App, Cow::Borrowed(m.app.as_str()))],
        delta: Delta {
            inbound: 1,
            ..Delta::default()
        },
        direction: "in",
        status: "routed",
        backend: None,
    }
}

/// `sms.events`: one delivery event (see the table at the top).
pub fn event(e: &DeliveryEvent) -> Observation<'_> {
    let mut dims = vec![
        (StatsDimension::Total, Cow::Borrowed("")),
        (
            StatsDimension::Backend,
            Cow::Borrowed(e.connection.backend.as_str()),
        ),
    ];
    if let Some(app) = e.app.as_deref().filter(|a| !a.is_empty()) {
        dims.push((StatsDimension::App, Cow::Borrowed(app)));
    }
    if let Some(c) = e.campaign_id.as_deref().filter(|c| !c.is_empty()) {
        dims.push((StatsDimension::Campaign, Cow::Borrowed(c)));
    }
    let since = |t: i64| (t > 0).then(|| e.at - t);
    let segments = i64::from(e.segments.max(0));
    let mut d = Delta::default();
    match (e.report, e.status) {
        (false, DeliveryStatus::Queued) => d.queued = 1,
        (false, DeliveryStatus::Sent) => {
            d.outbound = 1;
            d.sent = 1;
            d.segments = segments;
            d.accepted_to_sent = since(e.accepted_at);
        }
        (false, DeliveryStatus::Delivered) => {
            d.outbound = 1;
            d.sent = 1;
            d.delivered = 1;
            d.segments = segments;
            d.accepted_to_sent = since(e.accepted_at);
            d.sent_to_delivered = since(e.sent_at);
        }
        (false, DeliveryStatus::Failed) => {
            d.outbound = 1;
            d.failed = 1;
        }
        (false, DeliveryStatus::Suppressed) => {
            d.outbound = 1;
            d.suppressed = 1;
        }
        (_, DeliveryStatus::Expired) => d.expired = 1,
        (true, DeliveryStatus::Delivered) => {
            d.delivered = 1;
            d.sent_to_delivered = since(e.sent_at);
        }
        (true, DeliveryStatus::Failed) => d.failed = 1,
        (true, DeliveryStatus::Suppressed) => d.suppressed = 1,
        (true, DeliveryStatus::Queued | DeliveryStatus::Sent) => {}
    }
    Observation {
        at: e.at,
        dims,
        delta: d,
        direction: "out",
        status: e.status.name(),
        backend: Some(&e.connection.backend),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::message::{Connection, OutboundMessage};

    #[test]
    fn keywords_are_first_words_upper_cased() {
        assert_eq!(keyword("join now").as_deref(), Some("JOIN"));
        assert_eq!(keyword("  Stop,please").as_deref(), Some("STOP"));
        assert_eq!(keyword("réponse: oui").as_deref(), Some("RÉPONSE"));
        assert_eq!(keyword("   "), None);
        assert_eq!(keyword(""), None);
        let long = "x".repeat(100);
        assert_eq!(keyword(&long).unwrap().len(), MAX_KEYWORD_CHARS);
    }

    fn sample(status: DeliveryStatus, report: bool) -> DeliveryEvent {
        let mut m = OutboundMessage::new(Connection::new("gw", "+1"), "hi");
        m.app = Some("echo".into());
        m.campaign_id = Some("spring".into());
        m.segments = 2;
        m.created_at = 1_000;
        let mut e = DeliveryEvent::now(&m, status);
        e.at = 5_000;
        e.sent_at = if report { 3_000 } else { 0 };
        e.report = report;
        e
    }

    #[test]
    fn a_sink_sent_then_a_failure_report_is_one_outbound_one_sent_one_failed() {
        let sent_e = sample(DeliveryStatus::Sent, false);
        let sent = event(&sent_e);
        assert_eq!(
            (sent.delta.outbound, sent.delta.sent, sent.delta.segments),
            (1, 1, 2)
        );
        assert_eq!(sent.delta.accepted_to_sent, Some(4_000));
        let failed_e = sample(DeliveryStatus::Failed, true);
        let failed = event(&failed_e);
        assert_eq!((failed.delta.outbound, failed.delta.failed), (0, 1));
        let progress_e = sample(DeliveryStatus::Sent, true);
        let progress = event(&progress_e);
        assert_eq!(
            progress.delta,
            Delta::default(),
            "a report's sent is a note"
        );
        let delivered_e = sample(DeliveryStatus::Delivered, true);
        let delivered = event(&delivered_e);
        assert_eq!(delivered.delta.delivered, 1);
        assert_eq!(delivered.delta.sent_to_delivered, Some(2_000));
        assert_eq!(delivered.delta.outbound, 0);
        let dims: Vec<_> = delivered.dims.iter().map(|(d, _)| *d).collect();
        assert_eq!(
            dims,
            [
                StatsDimension::Total,
                StatsDimension::Backend,
                StatsDimension::App,
                StatsDimension::Campaign
            ]
        );
    }

    #[test]
    fn inbound_counts_under_total_backend_keyword_and_routed_under_its_app_only() {
        let mut m = InboundMessage::new(Connection::new("gw", "+1"), "echo hi");
        m.received_at = 42;
        let o = inbound(&m);
        assert_eq!(o.at, 42);
        assert_eq!(o.dims.len(), 3);
        assert_eq!(o.dims[2], (StatsDimension::Keyword, Cow::Borrowed("ECHO")));
        let r = RoutedMessage {
            message: m,
            app: "echo".into(),
            route: "default".into(),
            rest: None,
            captures: Default::default(),
            contact: None,
        };
        let o = routed(&r);
        assert_eq!(o.dims, vec![(StatsDimension::App, Cow::Borrowed("echo"))]);
        assert_eq!(o.delta.inbound, 1);
    }
}
