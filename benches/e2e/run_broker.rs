//! The Kafka broker a run uses: the one given with `--brokers`, or a fresh
//! tansu started on a free loopback port.

use crate::args::Args;
use crate::broker;
use crate::measure::process_cpu;

/// A broker for one run: the one given, or a fresh tansu.
pub struct RunBroker {
    pub brokers: String,
    tansu: Option<broker::Broker>,
}

impl RunBroker {
    pub fn start(args: &Args) -> RunBroker {
        match &args.brokers {
            Some(b) => RunBroker {
                brokers: b.clone(),
                tansu: None,
            },
            None => {
                let t = broker::Broker::start();
                RunBroker {
                    brokers: t.brokers(),
                    tansu: Some(t),
                }
            }
        }
    }

    /// The broker's CPU seconds so far (a tansu started here only).
    pub fn cpu(&self) -> Option<f64> {
        self.tansu.as_ref()?.pid().and_then(process_cpu)
    }
}
