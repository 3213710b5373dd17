//! Bulk campaigns: one text, personalised, to an audience of up to millions
//! of phones, throttled, resumable, in its own lane.
//!
//! - [`audience`]: a CSV file (or a contact group) read into recipients:
//!   numbers normalised to E.164, duplicates and bad lines counted.
//! - [`render`]: a campaign's texts (one per language) filled in per
//!   recipient, with defaults; a missing variable is an error, never "".
//! - [`preview`]: what a campaign would send, without sending: counts,
//!   segments, encodings, languages, cost; and a batch rendered for sending.
//! - [`quiet`]: quiet hours in each recipient's time zone, and the clock.

pub mod audience;
pub mod control;
mod expand;
mod freeze;
pub mod preview;
pub mod quiet;
pub mod render;
pub mod stage;
pub mod view;
