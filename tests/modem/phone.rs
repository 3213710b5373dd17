//! A phone on the simulated modem: what it sends is delivered to the
//! modem; what it receives is what the modem was asked to send, its parts
//! joined.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use smsflow::modem::sim::{SentSms, SimModem};

/// The texts the modem sent to `to`, each long one joined from its parts
/// (by reference, in order), in the order they were completed.
pub fn received(sim: &SimModem, to: &str) -> Vec<String> {
    let mut done = Vec::new();
    let mut partial: BTreeMap<(u16, u8), BTreeMap<u8, String>> = BTreeMap::new();
    for s in sim.sent().into_iter().filter(|s| s.to == to) {
        match s.concat {
            None => done.push(s.text),
            Some(c) => {
                let parts = partial.entry((c.reference, c.total)).or_default();
                parts.insert(c.seq, s.text);
                if parts.len() == usize::from(c.total) {
                    let parts = partial.remove(&(c.reference, c.total)).unwrap_or_default();
                    done.push(parts.into_values().collect());
                }
            }
        }
    }
    done
}

/// Wait until `to` received `n` texts: them all.
pub async fn wait_for(sim: &SimModem, to: &str, n: usize, within: Duration) -> Vec<String> {
    let until = Instant::now() + within;
    loop {
        let got = received(sim, to);
        if got.len() >= n || Instant::now() > until {
            return got;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Every part sent to `to`.
pub fn parts(sim: &SimModem, to: &str) -> Vec<SentSms> {
    sim.sent().into_iter().filter(|s| s.to == to).collect()
}
