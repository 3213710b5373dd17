//! Statistics: the `analytics` stage counts messages in event-time
//! tumbling windows (a minute, an hour, a day) per backend, app, keyword
//! and campaign, and writes the counts to the compacted `sms.stats` topic
//! (one record per window × dimension value × source partition) and to
//! Prometheus.
//!
//! - [`observe`]: what one record of `sms.inbound`, `sms.app.<name>` or
//!   `sms.events` counts for (the definition of every count).
//! - [`aggregate`]: the windows, their grace, and the `through_offset` that
//!   keeps counts exactly-once (pure: unit tests and benchmarks use it).
//! - [`restore`]: the open windows `sms.stats` holds, for a partition's
//!   next owner.
//! - [`stage`]: the stage: decode, count, flush, follow the assignment.

pub mod aggregate;
pub mod observe;
pub mod restore;
pub mod stage;

pub use aggregate::{Aggregator, Settings};
pub use stage::AnalyticsStage;
