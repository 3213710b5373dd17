//! The durable embedded bus: the embedded bus's model (keyed partitions,
//! per-partition order, consumer groups, backpressure) kept on disk in one
//! [redb] database, so that what it acknowledged survives kill -9 and, with
//! `fsync: always`, power loss. redb gives the crash safety: every commit is
//! checksummed and a torn write is rolled back to the last good commit when
//! the file is opened again.
//!
//! The database (`<data_dir>/bus.redb`) holds:
//! - `topics`: name → (partitions, compacted), as first created; later runs
//!   keep it, as Kafka keeps an existing topic;
//! - `records/<topic>`: (partition, offset) → (time, key, payload, headers);
//! - `ends`: (topic, partition) → the next offset, kept when retention
//!   empties a partition, so offsets never go back;
//! - `offsets`: (group, topic, partition) → the next offset the group needs;
//! - `keys/<topic>` (compacted topics): (partition, key) → the offset of the
//!   key's latest record.
//!
//! One writer task makes every change. Produces that arrive while a commit
//! is under way go into the next transaction together (group commit), so a
//! busy bus pays one fsync for many records. A produce is acknowledged once
//! its transaction is committed: on disk with `fsync: always`; with
//! `fsync: interval`, at once, and on disk at the next interval's sync.
//!
//! Consumer groups resume at their committed offsets after a restart.
//! Readers outside any group ([`DurableBus::reader`], for tables and the
//! sent-log) start at the oldest record held, like a restore from Kafka.
//!
//! Retention: a record of an ordinary topic is deleted once every group
//! that reads its topic has marked it done and it is older than
//! `retention` or beyond the newest `retention_records` of its partition.
//! A compacted topic keeps the latest record of each key; an older one goes
//! as soon as no group still has to read it. A group that no consumer of
//! the running process joins for `retention` is forgotten (as Kafka expires
//! the offsets of an empty group), so that a stage removed from the
//! pipeline does not pin its topics for ever.
//!
//! Where things are:
//! - `store`: the tables on disk and the state kept in memory (topics,
//!   partitions, the groups' positions), loaded when the bus opens;
//! - `handle`: [`DurableBus`] itself: opening, producing, flushing,
//!   sweeping, depth and lag;
//! - `writer`: the writer task: group commit and fsync;
//! - `retention`: what a sweep deletes, and forgetting old groups;
//! - `consumer`: consumer groups, readers and committers.

mod consumer;
mod handle;
mod retention;
mod store;
#[cfg(test)]
mod tests;
mod writer;

pub use consumer::{DurableCommitter, DurableConsumer};
pub use handle::DurableBus;
pub use store::FILE;
