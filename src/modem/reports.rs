//! Delivery reports matched to the messages they are about. A status
//! report names only the message reference the modem gave a part (0–255,
//! reused after 256 sends) and the recipient: a report is matched to the
//! newest part sent to that recipient with that reference within the
//! window. A long message is delivered when every part is, and failed as
//! soon as one part fails.

use std::collections::VecDeque;
use std::time::Duration;

use tokio::time::Instant;

use super::pdu::Status;

/// Messages tracked at most (the oldest go first).
const MAX_TRACKED: usize = 10_000;

/// What a report made of its message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outcome {
    pub message_id: String,
    pub identity: String,
    /// Delivered or failed (a pending part gives no outcome).
    pub status: Status,
    /// TP-ST of the report that decided it.
    pub octet: u8,
    /// The references of the message's parts, as its provider id.
    pub provider_id: String,
}

#[derive(Debug)]
struct Tracked {
    message_id: String,
    identity: String,
    mrs: Vec<u8>,
    delivered: Vec<bool>,
    at: Instant,
}

/// Sent messages waiting for their reports.
#[derive(Debug)]
pub struct Outstanding {
    window: Duration,
    sent: VecDeque<Tracked>,
}

impl Outstanding {
    pub fn new(window: Duration) -> Self {
        Outstanding {
            window,
            sent: VecDeque::new(),
        }
    }

    /// `message_id` went to `identity` as parts with references `mrs`.
    pub fn sent(&mut self, message_id: &str, identity: &str, mrs: &[u8]) {
        self.prune();
        if self.sent.len() >= MAX_TRACKED {
            self.sent.pop_front();
        }
        self.sent.push_back(Tracked {
            message_id: message_id.to_owned(),
            identity: identity.to_owned(),
            mrs: mrs.to_vec(),
            delivered: vec![false; mrs.len()],
            at: Instant::now(),
        });
    }

    /// A report of reference `mr` to `recipient`: the message's outcome
    /// once it has one; none for a pending part, a part of a message still
    /// waiting for others, or a report matching nothing sent in the window.
    pub fn report(&mut self, mr: u8, recipient: &str, octet: u8) -> Option<Outcome> {
        self.prune();
        let (at, part) = self.sent.iter().enumerate().rev().find_map(|(i, t)| {
            let part = t.mrs.iter().position(|m| *m == mr)?;
            same_number(&t.identity, recipient).then_some((i, part))
        })?;
        let status = Status::of(octet);
        let tracked = &mut self.sent[at];
        match status {
            Status::Pending => return None,
            Status::Delivered => {
                tracked.delivered[part] = true;
                if !tracked.delivered.iter().all(|d| *d) {
                    return None;
                }
            }
            Status::Failed => {}
        }
        let t = self.sent.remove(at)?;
        Some(Outcome {
            provider_id: provider_id(&t.mrs),
            message_id: t.message_id,
            identity: t.identity,
            status,
            octet,
        })
    }

    fn prune(&mut self) {
        let now = Instant::now();
        while self
            .sent
            .front()
            .is_some_and(|t| now.duration_since(t.at) > self.window)
        {
            self.sent.pop_front();
        }
    }
}

/// A message's provider id: its parts' references, `12` or `12,13,14`.
pub fn provider_id(mrs: &[u8]) -> String {
    let refs: Vec<String> = mrs.iter().map(u8::to_string).collect();
    refs.join(",")
}

/// The same phone, whichever form each number is written in: a report
/// may give `0712345678` for a message sent to `+255712345678`. The last
/// 9 digits decide (a national significant number's usual length).
fn same_number(a: &str, b: &str) -> bool {
    let digits = |s: &str| -> String { s.chars().filter(char::is_ascii_digit).collect() };
    let (a, b) = (digits(a), digits(b));
    let tail = |s: &str| s[s.len().saturating_sub(9)..].to_owned();
    !a.is_empty() && tail(&a) == tail(&b)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_report_finds_the_newest_message_with_its_reference_and_phone() {
        let mut o = Outstanding::new(Duration::from_secs(600));
        o.sent("m1", "+255712345678", &[7]);
        o.sent("m2", "+15551234567", &[7]);
        o.sent("m3", "+255712345678", &[8]);
        let got = o.report(7, "0712345678", 0x00).unwrap();
        assert_eq!(
            (
                got.message_id.as_str(),
                got.status,
                got.provider_id.as_str()
            ),
            ("m1", Status::Delivered, "7")
        );
        // Reported once: a repeat matches nothing.
        assert_eq!(o.report(7, "+255712345678", 0x00), None);
        assert_eq!(o.report(9, "+255712345678", 0x00), None);
    }

    #[test]
    fn a_long_message_is_delivered_when_every_part_is() {
        let mut o = Outstanding::new(Duration::from_secs(600));
        o.sent("long", "+15551234567", &[254, 255, 0]);
        assert_eq!(o.report(255, "+15551234567", 0x00), None);
        assert_eq!(o.report(254, "+15551234567", 0x20), None, "pending");
        assert_eq!(o.report(254, "+15551234567", 0x00), None);
        let got = o.report(0, "+15551234567", 0x00).unwrap();
        assert_eq!(
            (got.status, got.provider_id.as_str()),
            (Status::Delivered, "254,255,0")
        );
    }

    #[test]
    fn one_failed_part_fails_the_message() {
        let mut o = Outstanding::new(Duration::from_secs(600));
        o.sent("long", "+15551234567", &[1, 2]);
        let got = o.report(2, "+15551234567", 0x46).unwrap();
        assert_eq!((got.status, got.octet), (Status::Failed, 0x46));
    }

    #[tokio::test(start_paused = true)]
    async fn reports_after_the_window_match_nothing() {
        let mut o = Outstanding::new(Duration::from_secs(600));
        o.sent("m1", "+15551234567", &[3]);
        tokio::time::advance(Duration::from_secs(601)).await;
        assert_eq!(o.report(3, "+15551234567", 0x00), None);
    }
}
