//! Repeats within a time window: a provider that retries a webhook (because
//! our answer was lost, or late) sends the same message id again; it is
//! answered as accepted and not stored twice.
//!
//! Concurrent repeats wait for the first: if it was stored they are
//! repeats, if it failed the next one tries to store it.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::OwnedMutexGuard;
// tokio's clock, so that tests can run the window on a paused one.
use tokio::time::Instant;

/// Keys remembered at most, whatever the window (the oldest go first).
const MAX_KEYS: usize = 1_000_000;

type Slot = Arc<tokio::sync::Mutex<bool>>;

pub struct Dedupe {
    window: Duration,
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    slots: HashMap<String, Slot>,
    order: VecDeque<(Instant, String)>,
}

/// Held while one request stores the message for its key.
pub struct Claim {
    guard: OwnedMutexGuard<bool>,
}

impl Claim {
    /// Whether a message with this key was stored within the window.
    pub fn seen(&self) -> bool {
        *self.guard
    }

    /// This request stored it.
    pub fn stored(mut self) {
        *self.guard = true;
    }
}

impl Dedupe {
    pub fn new(window: Duration) -> Self {
        Self {
            window,
            state: Mutex::default(),
        }
    }

    /// Wait for the key's earlier requests to finish, then claim it.
    pub async fn claim(&self, key: &str) -> Claim {
        let slot = {
            let mut s = self.state.lock().unwrap_or_else(|p| p.into_inner());
            let now = Instant::now();
            while let Some((at, _)) = s.order.front() {
                if now.duration_since(*at) < self.window && s.order.len() < MAX_KEYS {
                    break;
                }
                if let Some((_, old)) = s.order.pop_front() {
                    s.slots.remove(&old);
                }
            }
            match s.slots.get(key) {
                Some(slot) => slot.clone(),
                None => {
                    let slot = Slot::default();
                    s.slots.insert(key.to_owned(), slot.clone());
                    s.order.push_back((now, key.to_owned()));
                    slot
                }
            }
        };
        Claim {
            guard: slot.lock_owned().await,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn a_key_is_seen_once_stored_and_forgotten_after_the_window() {
        let d = Dedupe::new(Duration::from_millis(50));
        let first = d.claim("a").await;
        assert!(!first.seen());
        drop(first); // not stored (the bus failed): the next try stores it
        let again = d.claim("a").await;
        assert!(!again.seen());
        again.stored();
        assert!(d.claim("a").await.seen());
        assert!(!d.claim("b").await.seen());
        tokio::time::sleep(Duration::from_millis(80)).await;
        assert!(!d.claim("a").await.seen());
    }

    #[tokio::test(start_paused = true)]
    async fn a_concurrent_repeat_waits_for_the_first() {
        let d = Arc::new(Dedupe::new(Duration::from_secs(60)));
        let first = d.claim("a").await;
        let d2 = d.clone();
        let repeat = tokio::spawn(async move { d2.claim("a").await.seen() });
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert!(!repeat.is_finished());
        first.stored();
        assert!(repeat.await.unwrap());
    }
}
