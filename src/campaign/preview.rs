//! What a campaign would send, without sending: the audience read, checked,
//! deduplicated and rendered, every text's encoding and segments counted,
//! the cost estimated. Rendering and counting run in parallel (rayon, on
//! the caller's pool); duplicates are found in file order, so the first line
//! of a number is the one kept.
//!
//! [`prepare_batch`] is the same work for the recipients the expanding stage
//! sends: each one's text, language, encoding and segments.

use std::collections::BTreeMap;
use std::io::Read;

use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use crate::sms::numbers::Country;
use crate::sms::{analyze, Encoding};

use super::audience::{AudienceError, BadLine, CsvAudience, Recipient, Seen};
use super::render::{language, values, ContactFields, Missing, TemplateError, Texts};

/// How many lines the preview reads, renders and counts at once.
pub const BATCH: usize = 16 * 1024;

/// How many bad lines (invalid, or missing a variable) a preview lists.
pub const LISTED: usize = 20;

/// Prices of one segment: by number prefix (`"+254"`: the longest matching
/// prefix wins), else `per_segment`. No currency: the operator's own.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Prices {
    #[serde(default)]
    pub per_segment: f64,
    #[serde(default)]
    pub prefixes: BTreeMap<String, f64>,
}

impl Prices {
    /// The prefix whose price a number pays, if one matches.
    pub fn prefix_for(&self, phone: &str) -> Option<&str> {
        self.prefixes
            .keys()
            .filter(|p| phone.starts_with(p.as_str()))
            .max_by_key(|p| p.len())
            .map(String::as_str)
    }

    /// The price of one segment to `phone`.
    pub fn per_segment_for(&self, phone: &str) -> f64 {
        self.prefix_for(phone)
            .and_then(|p| self.prefixes.get(p))
            .copied()
            .unwrap_or(self.per_segment)
    }
}

/// Messages per encoding.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Encodings {
    pub gsm7: u64,
    pub ucs2: u64,
}

/// What a campaign would send.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Preview {
    /// The audience's variables (its header but `phone` and `language`).
    pub columns: Vec<String>,
    /// Data lines read (records, the header not counted).
    pub lines: u64,
    /// Lines that cannot be used, and the first [`LISTED`] of them.
    pub invalid: u64,
    pub invalid_lines: Vec<BadLine>,
    /// Lines whose number an earlier line already has.
    pub duplicates: u64,
    /// Numbers the caller suppresses (opted out, blocked).
    pub suppressed: u64,
    /// Recipients lacking a variable without a default, and the first
    /// [`LISTED`] of them (the reason names the variables).
    pub missing: u64,
    pub missing_lines: Vec<BadLine>,
    /// Messages that would be sent: one per recipient left.
    pub to_send: u64,
    /// Their segments: the sum of each rendered text's segments.
    pub segments: u64,
    pub encodings: Encodings,
    /// Messages per language of the text used.
    pub languages: BTreeMap<String, u64>,
    /// Σ segments × the price per segment of each number.
    pub cost: f64,
    /// Why the campaign should not start; empty when it can.
    pub problems: Vec<String>,
}

impl Preview {
    /// Whether the campaign can start: something to send, nothing missing.
    pub fn ok(&self) -> bool {
        self.problems.is_empty()
    }
}

/// Why a preview could not be made.
#[derive(Debug, thiserror::Error)]
pub enum PreviewError {
    #[error(transparent)]
    Audience(#[from] AudienceError),
    #[error(transparent)]
    Template(#[from] TemplateError),
}

/// A number's contact fields, if it is a known contact.
pub type ContactLookup<'a> = &'a (dyn Fn(&str) -> Option<ContactFields> + Sync);
/// Whether a number must not be sent to (opted out, blocked).
pub type Suppressed<'a> = &'a (dyn Fn(&str) -> bool + Sync);

/// What a preview needs besides the file.
pub struct PreviewOptions<'a> {
    /// The region of numbers written without `+`.
    pub region: Option<Country>,
    pub texts: &'a Texts,
    pub prices: &'a Prices,
    pub suppressed: Suppressed<'a>,
    pub contact: ContactLookup<'a>,
}

impl<'a> PreviewOptions<'a> {
    /// No suppression and no contacts.
    pub fn new(texts: &'a Texts, prices: &'a Prices) -> Self {
        Self {
            region: None,
            texts,
            prices,
            suppressed: &|_| false,
            contact: &|_| None,
        }
    }
}

/// What happens to one unique, valid recipient.
enum Outcome<'t> {
    Suppressed,
    Missing(Vec<String>),
    Send {
        language: &'t str,
        encoding: Encoding,
        segments: i32,
        price: Option<&'t str>,
    },
}

/// Read `input` as a campaign's audience and count what would be sent.
/// Fails when the file cannot be read at all (no `phone` column, I/O) or
/// the texts do not fit its columns; bad lines are counted and listed.
pub fn preview<R: Read>(input: R, opts: &PreviewOptions<'_>) -> Result<Preview, PreviewError> {
    let mut audience = CsvAudience::new(input, opts.region)?;
    opts.texts.check(audience.columns())?;
    let mut p = Preview {
        columns: audience.columns().to_vec(),
        ..Preview::default()
    };
    let mut seen = Seen::new();
    let mut price_segments: BTreeMap<Option<&str>, u64> = BTreeMap::new();
    loop {
        let batch = audience.next_batch(BATCH)?;
        if batch.is_empty() {
            break;
        }
        p.lines += batch.len() as u64;
        // In file order: the first line of a number wins.
        let mut unique = Vec::with_capacity(batch.len());
        for item in batch {
            match item {
                Err(bad) => {
                    p.invalid += 1;
                    if p.invalid_lines.len() < LISTED {
                        p.invalid_lines.push(bad);
                    }
                }
                Ok(r) if !seen.first(&r.phone) => p.duplicates += 1,
                Ok(r) => unique.push(r),
            }
        }
        let outcomes: Vec<Outcome> = unique.par_iter().map(|r| outcome(r, opts)).collect();
        for (r, o) in unique.iter().zip(outcomes) {
            match o {
                Outcome::Suppressed => p.suppressed += 1,
                Outcome::Missing(names) => {
                    p.missing += 1;
                    if p.missing_lines.len() < LISTED {
                        p.missing_lines.push(BadLine {
                            line: r.line,
                            reason: missing_reason(&names),
                        });
                    }
                }
                Outcome::Send {
                    language,
                    encoding,
                    segments,
                    price,
                } => {
                    p.to_send += 1;
                    let segments = segments.max(0) as u64;
                    p.segments += segments;
                    *price_segments.entry(price).or_default() += segments;
                    match encoding {
                        Encoding::Gsm7 => p.encodings.gsm7 += 1,
                        Encoding::Ucs2 => p.encodings.ucs2 += 1,
                    }
                    *p.languages.entry(language.to_owned()).or_default() += 1;
                }
            }
        }
    }
    p.cost = price_segments
        .iter()
        .map(|(prefix, segments)| {
            let price = prefix
                .and_then(|k| opts.prices.prefixes.get(k))
                .copied()
                .unwrap_or(opts.prices.per_segment);
            *segments as f64 * price
        })
        .sum();
    p.problems = problems(&p);
    Ok(p)
}

fn outcome<'t>(r: &Recipient, opts: &PreviewOptions<'t>) -> Outcome<'t> {
    if (opts.suppressed)(&r.phone) {
        return Outcome::Suppressed;
    }
    let contact = (opts.contact)(&r.phone);
    let texts: &'t Texts = opts.texts;
    match texts.render(language(r, contact.as_ref()), values(r, contact.as_ref())) {
        Err(Missing { names }) => Outcome::Missing(names),
        Ok(rendered) => {
            let (encoding, segments) = analyze(&rendered.text);
            Outcome::Send {
                // The key of `texts` (render returns a copy of it).
                language: texts.language_for(Some(&rendered.language)),
                encoding,
                segments,
                price: opts.prices.prefix_for(&r.phone),
            }
        }
    }
}

/// The reason listed for a recipient lacking `names`.
pub fn missing_reason(names: &[String]) -> String {
    let names: Vec<String> = names.iter().map(|n| format!("{{{n}}}")).collect();
    format!(
        "no value and no default for {}: fill the column or give the variable a default",
        names.join(", ")
    )
}

fn problems(p: &Preview) -> Vec<String> {
    let mut out = Vec::new();
    if p.missing > 0 {
        let first = p
            .missing_lines
            .first()
            .map(|b| format!(" (first: line {}, {})", b.line, b.reason))
            .unwrap_or_default();
        out.push(format!(
            "{} recipients lack a variable that has no default{first}",
            p.missing
        ));
    }
    if p.lines == 0 {
        out.push(
            "the audience has no data lines (an empty file, or a header alone): nothing to send"
                .into(),
        );
    } else if p.to_send == 0 && p.missing == 0 {
        out.push(format!(
            "no recipient left to send to: of {} lines, {} invalid, {} duplicates, {} suppressed",
            p.lines, p.invalid, p.duplicates, p.suppressed
        ));
    }
    out
}

/// A recipient ready to send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Prepared {
    pub recipient: Recipient,
    pub text: String,
    /// The language whose text was used.
    pub language: String,
    pub encoding: Encoding,
    pub segments: i32,
}

/// A recipient that cannot be sent: a variable without a value or default.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unprepared {
    pub recipient: Recipient,
    pub missing: Missing,
}

/// Render and count a batch of recipients in parallel (on rayon's current
/// pool), in input order: each one's text, or the variables it lacks.
pub fn prepare_batch(
    texts: &Texts,
    recipients: Vec<Recipient>,
    contact: ContactLookup<'_>,
) -> Vec<Result<Prepared, Unprepared>> {
    recipients
        .into_par_iter()
        .map(|recipient| {
            let found = contact(&recipient.phone);
            match texts.render_for(&recipient, found.as_ref()) {
                Ok(rendered) => {
                    let (encoding, segments) = analyze(&rendered.text);
                    Ok(Prepared {
                        recipient,
                        text: rendered.text,
                        language: rendered.language,
                        encoding,
                        segments,
                    })
                }
                Err(missing) => Err(Unprepared { recipient, missing }),
            }
        })
        .collect()
}
