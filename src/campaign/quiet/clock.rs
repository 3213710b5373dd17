//! The time a campaign reads: the system's, or one a test sets and moves.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use tokio::sync::watch;

/// Longest real sleep between two readings of a real clock, so that a wall
/// clock set forward or back (NTP, a VM resumed) is noticed within it.
const MAX_REAL_SLEEP: Duration = Duration::from_secs(30);

/// Where "now" comes from. The campaign stage holds an `Arc<dyn Clock>`:
/// [`SystemClock`] in production, a [`FakeClock`] in tests.
pub trait Clock: Send + Sync + 'static {
    /// The current instant.
    fn now(&self) -> DateTime<Utc>;

    /// A receiver told each time the clock is moved by hand, for clocks
    /// that only move that way ([`FakeClock`]); `None` (the default) for a
    /// clock that moves by itself, which [`sleep_until`] sleeps on instead.
    fn changes(&self) -> Option<watch::Receiver<DateTime<Utc>>> {
        None
    }
}

/// The system's wall clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> DateTime<Utc> {
        Utc::now()
    }
}

/// A clock that stands still until told to move: [`set`](FakeClock::set)
/// or [`advance`](FakeClock::advance). Clones share one time, so a test
/// keeps one clone and hands another to the code under test; moving it
/// wakes everything waiting in [`sleep_until`].
#[derive(Debug, Clone)]
pub struct FakeClock {
    time: Arc<watch::Sender<DateTime<Utc>>>,
}

impl FakeClock {
    /// A clock standing at `at`.
    pub fn new(at: DateTime<Utc>) -> FakeClock {
        FakeClock {
            time: Arc::new(watch::Sender::new(at)),
        }
    }

    /// Move the clock to `at` (forward or back).
    pub fn set(&self, at: DateTime<Utc>) {
        self.time.send_replace(at);
    }

    /// Move the clock forward by `by` (back if `by` is negative).
    pub fn advance(&self, by: chrono::Duration) {
        self.time.send_modify(|t| *t += by);
    }
}

impl Clock for FakeClock {
    fn now(&self) -> DateTime<Utc> {
        *self.time.borrow()
    }

    fn changes(&self) -> Option<watch::Receiver<DateTime<Utc>>> {
        Some(self.time.subscribe())
    }
}

/// Wait until `clock` reads `at` or later; at once if it already does.
///
/// A clock with [`Clock::changes`] is re-read each time it is moved (a
/// test's `advance` wakes the waiter at once); any other clock is slept on
/// with tokio's timer, re-read at least every 30 s. The future holds no
/// state between polls worth keeping: drop it (as in `tokio::select!` with
/// a shutdown token or a pause signal) to stop waiting.
pub async fn sleep_until(clock: &dyn Clock, at: DateTime<Utc>) {
    // Subscribe before reading the time, so that a move between the two is
    // not missed.
    let mut changes = clock.changes();
    loop {
        let now = clock.now();
        if now >= at {
            return;
        }
        match changes.as_mut() {
            Some(rx) => {
                if rx.changed().await.is_err() {
                    // The clock's sender is gone: it can no longer move, so
                    // `at` never comes (the caller's select ends the wait).
                    std::future::pending::<()>().await;
                }
            }
            None => {
                // `to_std` fails only on a negative span, excluded above.
                let left = (at - now).to_std().unwrap_or(Duration::ZERO);
                tokio::time::sleep(left.min(MAX_REAL_SLEEP)).await;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: &str) -> DateTime<Utc> {
        s.parse().unwrap()
    }

    #[test]
    fn fake_clock_clones_share_one_time() {
        let clock = FakeClock::new(at("2026-03-08T06:00:00Z"));
        let other = clock.clone();
        clock.advance(chrono::Duration::minutes(90));
        assert_eq!(other.now(), at("2026-03-08T07:30:00Z"));
        other.set(at("2026-01-01T00:00:00Z"));
        assert_eq!(clock.now(), at("2026-01-01T00:00:00Z"));
        clock.advance(chrono::Duration::hours(-1));
        assert_eq!(other.now(), at("2025-12-31T23:00:00Z"));
    }

    // Paused tokio time: if a waiter missed a move it would never finish and
    // the runtime would jump to the 1 h safety timeout, failing the test.
    #[tokio::test(start_paused = true)]
    async fn moving_the_fake_clock_wakes_waiters_only_once_due() {
        let clock = FakeClock::new(at("2026-03-08T06:00:00Z"));
        let shared: Arc<dyn Clock> = Arc::new(clock.clone());
        let waiter = tokio::spawn(async move {
            sleep_until(&*shared, at("2026-03-08T12:00:00Z")).await;
            shared.now()
        });
        for _ in 0..5 {
            tokio::task::yield_now().await;
        }
        clock.advance(chrono::Duration::hours(5));
        for _ in 0..5 {
            tokio::task::yield_now().await;
        }
        assert!(!waiter.is_finished(), "woke before its time");
        clock.set(at("2026-03-08T12:30:00Z"));
        let woke = tokio::time::timeout(Duration::from_secs(3600), waiter)
            .await
            .expect("the waiter was not woken by the clock's move")
            .unwrap();
        assert_eq!(woke, at("2026-03-08T12:30:00Z"));
    }

    #[tokio::test]
    async fn a_time_already_past_returns_at_once() {
        let clock = FakeClock::new(at("2026-03-08T06:00:00Z"));
        sleep_until(&clock, at("2026-03-08T05:00:00Z")).await;
        sleep_until(&clock, at("2026-03-08T06:00:00Z")).await;
        sleep_until(&SystemClock, Utc::now()).await;
    }

    #[tokio::test]
    async fn the_system_clock_is_slept_on_until_due() {
        let due = Utc::now() + chrono::Duration::milliseconds(30);
        sleep_until(&SystemClock, due).await;
        assert!(SystemClock.now() >= due);
    }
}
