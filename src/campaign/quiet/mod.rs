//! Quiet hours in each recipient's time zone, and the clock that decides.
//!
//! A campaign sends to a recipient only while their local clock is outside
//! the campaign's quiet window (say 21:00–08:00); a recipient met during
//! the window waits until the window ends where they live.
//!
//! - `clock`: the time, real ([`SystemClock`]) or set by tests
//!   ([`FakeClock`]), and [`sleep_until`] a moment of it.
//! - `zone`: a recipient's time zone, from a contact field, the number's
//!   country (`zones`, generated from the tz database), or the campaign's
//!   default.
//! - `hours`: the window ([`QuietHours::open_at`]) and the local day a
//!   daily cap counts in ([`day_of`], [`next_day_start`]), correct on
//!   daylight-saving days.

mod clock;
mod hours;
mod zone;
mod zones;

pub use clock::{sleep_until, Clock, FakeClock, SystemClock};
pub use hours::{day_of, first_instant_at_or_after, next_day_start, QuietHours};
pub use zone::{country_zone, parse_zone, zone_for};

#[cfg(test)]
mod tests;
