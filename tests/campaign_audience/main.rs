//! A campaign's audience and preview (`smsflow::campaign`), through the
//! public API: CSV files as operators export them (quoted newlines, BOM,
//! CRLF, bad lines), duplicates after E.164 normalisation, texts and
//! defaults, languages, segments and cost.
//!
//! The 50 MB file with its memory bound is `tests/campaign_big_csv.rs`
//! (alone in its process, so that its peak RSS is its own).

mod audience;
mod preview;

use smsflow::campaign::audience::{BadLine, CsvAudience, Recipient};
use smsflow::sms::numbers::Country;

/// Every line of `csv` read in batches of `batch`.
pub fn read_all(csv: &[u8], region: Option<&str>, batch: usize) -> Vec<Result<Recipient, BadLine>> {
    let mut audience = CsvAudience::new(csv, region.and_then(Country::parse)).unwrap();
    let mut out = Vec::new();
    loop {
        let b = audience.next_batch(batch).unwrap();
        if b.is_empty() {
            return out;
        }
        assert!(b.len() <= batch.max(1));
        out.extend(b);
    }
}

/// The line numbers of the good and of the bad lines.
pub fn lines(read: &[Result<Recipient, BadLine>]) -> (Vec<u64>, Vec<u64>) {
    let good = read
        .iter()
        .filter_map(|r| r.as_ref().ok())
        .map(|r| r.line)
        .collect();
    let bad = read
        .iter()
        .filter_map(|r| r.as_ref().err())
        .map(|b| b.line)
        .collect();
    (good, bad)
}
