//! RapidSMS-style conversation scripts, run end to end through the bus.
//!
//! ```text
//! # a comment
//! +15551234 > echo hi      an inbound message from +15551234
//! +15551234 < hi           the reply that number must get next
//! ```
//!
//! Inbound lines are sent through a tester backend in order; an expected
//! reply waits (up to a timeout) for the next reply to that number and
//! compares the text exactly. `campaign > {json}` starts a campaign, as
//! `POST /api/campaigns` would with that body (`{"campaign": {...},
//! "csv": "..."}`, on one line); its messages are then expected like replies. `NUMBER < (nothing)` watches that number for
//! the settle time and fails if anything arrives (a message that must not
//! be sent, such as one to a number that sent STOP). Replies left over at
//! the end are failures too.

use std::collections::{HashMap, VecDeque};
use std::fmt;
use std::time::Duration;

use tokio::sync::broadcast::error::RecvError;
use tokio::time::Instant;

use crate::backends::tester::Tester;
use crate::campaign::control::{start, Ctx};
use crate::web::campaigns::Upload;

/// Which way a script line goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    /// `>`: the phone sends.
    In,
    /// `<`: the phone must receive.
    Out,
}

/// One line of a script.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Step {
    pub line: usize,
    pub identity: String,
    pub direction: Direction,
    pub text: String,
}

/// Parse a script; every malformed line is reported.
pub fn parse(text: &str) -> Result<Vec<Step>, Vec<String>> {
    let mut steps = Vec::new();
    let mut errors = Vec::new();
    for (i, raw) in text.lines().enumerate() {
        let line = i + 1;
        let trimmed = raw.trim_start();
        if trimmed.is_empty() || trimmed.starts_with('#') {
            continue;
        }
        let found = [(" > ", Direction::In), (" < ", Direction::Out)]
            .into_iter()
            .filter_map(|(sep, d)| trimmed.find(sep).map(|at| (at, sep, d)))
            .min_by_key(|(at, _, _)| *at);
        match found {
            Some((at, sep, direction)) if !trimmed[..at].trim().is_empty() => steps.push(Step {
                line,
                identity: trimmed[..at].trim().to_owned(),
                direction,
                text: trimmed[at + sep.len()..].to_owned(),
            }),
            _ => errors.push(format!(
                "line {line}: {raw:?} is not a script line: expected `NUMBER > text` (the phone sends) or `NUMBER < text` (the phone receives)"
            )),
        }
    }
    if errors.is_empty() {
        Ok(steps)
    } else {
        Err(errors)
    }
}

/// The expected text that means "no reply".
pub const NOTHING: &str = "(nothing)";

/// A difference between the script and what happened.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mismatch {
    pub line: usize,
    pub identity: String,
    pub expected: Option<String>,
    pub got: Option<String>,
}

impl fmt::Display for Mismatch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (&self.expected, &self.got) {
            (Some(e), Some(g)) => write!(
                f,
                "line {}: reply to {} differs\n  - {e}\n  + {g}",
                self.line, self.identity
            ),
            (Some(e), None) => write!(
                f,
                "line {}: no reply to {} (expected)\n  - {e}",
                self.line, self.identity
            ),
            (None, Some(g)) => write!(
                f,
                "line {}: unexpected reply to {}\n  + {g}",
                self.line, self.identity
            ),
            (None, None) => write!(f, "line {}: {}", self.line, self.identity),
        }
    }
}

/// The script line's "number" that starts a campaign instead.
pub const CAMPAIGN: &str = "campaign";

/// Run `steps` against a running pipeline's tester. `wait` bounds how long
/// an expected reply may take; `settle` is how long to watch for extra
/// replies at the end.
pub async fn run(
    tester: &Tester,
    steps: &[Step],
    wait: Duration,
    settle: Duration,
) -> Vec<Mismatch> {
    run_with(tester, None, steps, wait, settle).await
}

/// [`run`], with what `campaign >` lines need of the pipeline.
pub async fn run_with(
    tester: &Tester,
    operator: Option<&Ctx<'_>>,
    steps: &[Step],
    wait: Duration,
    settle: Duration,
) -> Vec<Mismatch> {
    let mut replies = tester.subscribe();
    let mut queued: HashMap<String, VecDeque<String>> = HashMap::new();
    let mut mismatches = Vec::new();
    let mut last_line = 0;
    for step in steps {
        last_line = step.line;
        match step.direction {
            Direction::In if step.identity == CAMPAIGN => {
                if let Err(why) = start_campaign(operator, &step.text).await {
                    mismatches.push(Mismatch {
                        line: step.line,
                        identity: step.identity.clone(),
                        expected: None,
                        got: Some(format!("[campaign not started: {why}]")),
                    });
                }
            }
            Direction::In => {
                if let Err(e) = tester.receive(Some(&step.identity), Some(&step.text)).await {
                    mismatches.push(Mismatch {
                        line: step.line,
                        identity: step.identity.clone(),
                        expected: None,
                        got: Some(format!("[not accepted: {e}]")),
                    });
                }
            }
            Direction::Out if step.text == NOTHING => {
                gather(&mut replies, &mut queued, settle).await;
                if let Some(got) = queued.get_mut(&step.identity).and_then(VecDeque::pop_front) {
                    mismatches.push(Mismatch {
                        line: step.line,
                        identity: step.identity.clone(),
                        expected: Some(NOTHING.to_owned()),
                        got: Some(got),
                    });
                }
            }
            Direction::Out => {
                let deadline = Instant::now() + wait;
                let got = loop {
                    if let Some(text) = queued.get_mut(&step.identity).and_then(VecDeque::pop_front)
                    {
                        break Some(text);
                    }
                    match tokio::time::timeout_at(deadline, replies.recv()).await {
                        Ok(Ok(m)) => queued
                            .entry(m.connection.identity)
                            .or_default()
                            .push_back(m.text),
                        Ok(Err(RecvError::Lagged(n))) => {
                            mismatches.push(Mismatch {
                                line: step.line,
                                identity: step.identity.clone(),
                                expected: None,
                                got: Some(format!(
                                    "[{n} replies missed: the script reader fell behind]"
                                )),
                            });
                        }
                        Ok(Err(RecvError::Closed)) | Err(_) => break None,
                    }
                };
                if got.as_deref() != Some(step.text.as_str()) {
                    mismatches.push(Mismatch {
                        line: step.line,
                        identity: step.identity.clone(),
                        expected: Some(step.text.clone()),
                        got,
                    });
                }
            }
        }
    }
    // Replies nobody expected: collect what arrives while the pipeline settles.
    gather(&mut replies, &mut queued, settle).await;
    let mut extra: Vec<(String, String)> = queued
        .into_iter()
        .flat_map(|(id, texts)| texts.into_iter().map(move |t| (id.clone(), t)))
        .collect();
    extra.sort();
    for (identity, text) in extra {
        mismatches.push(Mismatch {
            line: last_line,
            identity,
            expected: None,
            got: Some(text),
        });
    }
    mismatches
}

/// Start the campaign a `campaign >` line describes.
async fn start_campaign(operator: Option<&Ctx<'_>>, body: &str) -> Result<(), String> {
    let Some(ctx) = operator else {
        return Err("this run cannot start campaigns (no pipeline to start them in)".into());
    };
    let upload: Upload = serde_json::from_str(body).map_err(|e| {
        format!("expected {{\"campaign\": {{...}}, \"csv\": \"...\"}} on one line: {e}")
    })?;
    let csv = upload.csv.as_deref().map(str::as_bytes);
    start(ctx, upload.campaign, upload.file, csv, chrono::Utc::now())
        .await
        .map(|_| ())
        .map_err(|e| e.to_string())
}

/// Queue, per number, the replies that arrive within `settle`.
async fn gather(
    replies: &mut tokio::sync::broadcast::Receiver<crate::message::OutboundMessage>,
    queued: &mut HashMap<String, VecDeque<String>>,
    settle: Duration,
) {
    let deadline = Instant::now() + settle;
    while let Ok(Ok(m)) = tokio::time::timeout_at(deadline, replies.recv()).await {
        queued
            .entry(m.connection.identity)
            .or_default()
            .push_back(m.text);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_lines_and_reports_bad_ones() {
        let steps = parse("# c\n\n+1 > echo  a > b\n+1 < a > b\n").unwrap();
        assert_eq!(steps.len(), 2);
        assert_eq!(steps[0].text, "echo  a > b");
        assert_eq!(steps[0].direction, Direction::In);
        assert_eq!(steps[1].direction, Direction::Out);
        assert_eq!(steps[1].text, "a > b");
        let errs = parse("+1 > ok\nnonsense\n > x\n").unwrap_err();
        assert_eq!(errs.len(), 2);
        assert!(errs[0].starts_with("line 2"));
    }
}
