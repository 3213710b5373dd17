//! The sink stage's handler: it reads `sms.send.<backend>`, hands each new
//! message to the delivery tasks, and answers again for one sent before.

use std::sync::Arc;

use tokio::sync::mpsc;

use super::delivery::{start, EventFn, Job, Setup, Shares};
use super::request::Provider;
use crate::backends::sent::{Entry, Seen, SentLog, State};
use crate::bus::{Produce, Producer, Rebalances, Record};
use crate::config::Sending;
use crate::message::{DeliveryEvent, DeliveryStatus, OutboundMessage};
use crate::metrics::metrics;
use crate::schema;
use crate::stage::{decode, encode, HandleError, Handler, Output};

/// The sink stage's handler (one per lane: conversations, and campaigns'
/// bulk lane when there is one).
pub struct ProviderSink {
    name: String,
    log: SentLog,
    producer: Producer,
    events: Arc<str>,
    jobs: mpsc::Sender<Job>,
    duplicates: prometheus::IntCounter,
    /// The stage consumer's assignment, and the generation of it the
    /// sent-log was last caught up for.
    assignment: Option<(Arc<Rebalances>, u64)>,
    /// The bulk lane's handler, until [`ProviderSink::bulk_lane`] takes it.
    bulk: Option<Box<ProviderSink>>,
    shares: Shares,
}

impl ProviderSink {
    /// Start the sink's dispatcher (needs a tokio runtime). With
    /// `bulk_log`, the sink has a bulk lane too ([`ProviderSink::bulk_lane`]).
    pub fn new(
        name: &str,
        provider: Arc<dyn Provider>,
        settings: &Sending,
        log: SentLog,
        bulk_log: Option<SentLog>,
        producer: Producer,
        events: Arc<str>,
    ) -> Self {
        Self::with_events(
            name, provider, settings, log, bulk_log, producer, events, event,
        )
    }

    /// [`ProviderSink::new`] with `event` making the delivery events.
    #[allow(clippy::too_many_arguments)]
    fn with_events(
        name: &str,
        provider: Arc<dyn Provider>,
        settings: &Sending,
        log: SentLog,
        bulk_log: Option<SentLog>,
        producer: Producer,
        events: Arc<str>,
        event: EventFn,
    ) -> Self {
        let (queues, shares) = start(
            name,
            provider,
            Setup {
                settings: settings.clone(),
                log: log.clone(),
                bulk_log: bulk_log.clone(),
                producer: producer.clone(),
                events: events.clone(),
                event,
            },
        );
        let handler = |log: SentLog, jobs: mpsc::Sender<Job>| ProviderSink {
            name: name.to_owned(),
            log,
            producer: producer.clone(),
            events: events.clone(),
            jobs,
            duplicates: metrics()
                .dropped
                .with_label_values(&[&format!("backend:{name}"), "duplicate"]),
            assignment: None,
            bulk: None,
            shares: shares.clone(),
        };
        let bulk = match (bulk_log, queues.bulk) {
            (Some(log), Some(jobs)) => Some(Box::new(handler(log, jobs))),
            _ => None,
        };
        ProviderSink {
            bulk,
            ..handler(log, queues.conversation)
        }
    }

    /// Follow the stage consumer's assignment: before handling partitions
    /// it was just given, read the sent-log to its end (what other replicas
    /// sent); before partitions go, settle what was started for them.
    pub fn follow_assignment(mut self, rebalances: Arc<Rebalances>) -> Self {
        let log = self.log.clone();
        rebalances.on_revoke(Arc::new(move |partitions| log.revoke(partitions)));
        self.assignment = Some((rebalances, 0));
        self
    }

    /// Take this replica's share of the backend's rate limits: the part of
    /// `topic`'s `partitions` that the conversation lane's consumer owns.
    pub fn share_limits(self, rebalances: Arc<Rebalances>, topic: &str, partitions: i32) -> Self {
        self.shares.follow(rebalances, Arc::from(topic), partitions);
        self
    }

    /// The bulk lane's handler (once): it reads `sms.send.<backend>.bulk`
    /// with a consumer of its own and hands messages to the same delivery
    /// tasks, behind conversation messages.
    pub fn bulk_lane(&mut self) -> Option<ProviderSink> {
        self.bulk.take().map(|b| *b)
    }
}

impl Handler for ProviderSink {
    async fn handle(&mut self, record: &Record, out: &mut Output) -> Result<(), HandleError> {
        if let Some((rebalances, seen)) = &mut self.assignment {
            let generation = rebalances.generation();
            if generation != *seen {
                self.log
                    .catch_up()
                    .await
                    .map_err(HandleError::Unavailable)?;
                *seen = generation;
            }
        }
        let msg = decode(schema::outbound(), record)?;
        if msg.connection.backend != self.name {
            return Err(HandleError::input(
                "invalid",
                format!(
                    "message for backend {:?} on {}'s topic",
                    msg.connection.backend, self.name
                ),
            ));
        }
        match self.log.check(&msg.id, record.partition) {
            Seen::New => {
                let later = out.later(record, &self.producer);
                let id = msg.id.clone();
                if self.jobs.send(Job { msg, later }).await.is_err() {
                    self.log.release(&id);
                    return Err(HandleError::Failed {
                        kind: "closed",
                        message: "the sink's delivery tasks stopped".into(),
                    });
                }
            }
            Seen::InFlight => self.duplicates.inc(),
            Seen::Recorded(entry) if entry.state == State::Sending => {
                // Handed to the provider before a restart, outcome unknown.
                let entry = entry.unknown("the sink stopped while sending it");
                tracing::warn!(backend = %self.name, id = %msg.id, "not resent: outcome of an earlier send unknown");
                out.push(self.log.record(&msg.id, entry.clone()));
                out.push(event(&self.events, &msg, &entry)?);
            }
            Seen::Recorded(entry) => {
                // Sent before: only say so again (the event may not have been stored).
                self.duplicates.inc();
                out.push(event(&self.events, &msg, &entry)?);
            }
        }
        Ok(())
    }
}

/// The delivery event that tells `entry`'s outcome for `msg`.
fn event(events: &Arc<str>, msg: &OutboundMessage, entry: &Entry) -> Result<Produce, HandleError> {
    let status = match entry.state {
        State::Sent => DeliveryStatus::Sent,
        // `Retry` never gets here: the message is sent again instead.
        State::Failed | State::Sending | State::Retry => DeliveryStatus::Failed,
    };
    let event = DeliveryEvent {
        at: entry.at,
        sent_at: if status == DeliveryStatus::Sent {
            entry.at
        } else {
            0
        },
        provider_id: entry.provider_id.clone(),
        provider_status: entry.provider_status.clone(),
        error: entry.error.clone(),
        ..DeliveryEvent::now(msg, status)
    };
    encode(schema::event(), events, &msg.connection, &event)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backends::provider::request::Attempt;
    use futures::future::BoxFuture;
    use futures::FutureExt;
    use std::time::Duration;

    /// An embedded bus with `names` as one-partition topics.
    async fn embedded(names: &[&str]) -> crate::bus::Bus {
        let topics: Vec<crate::bus::TopicSpec> = names
            .iter()
            .map(|name| crate::bus::TopicSpec {
                name: (*name).into(),
                partitions: 1,
                replication: 1,
                compacted: false,
                retention: None,
            })
            .collect();
        let kafka = crate::config::Kafka::with_mode(crate::config::KafkaMode::Embedded);
        crate::bus::Bus::connect(&kafka, &topics).await.unwrap()
    }

    /// Accepts everything.
    struct Accepting;
    impl Provider for Accepting {
        fn send_one<'a>(&'a self, _: &'a OutboundMessage) -> BoxFuture<'a, Attempt> {
            async {
                Attempt::Accepted {
                    provider_id: Some("p-1".into()),
                    status: "accepted".into(),
                }
            }
            .boxed()
        }
    }

    /// Before: a delivery event that did not encode was logged and dropped,
    /// and the message stayed `queued` for good. After: the message is
    /// dead-lettered (kind `encode`) after its sent-log entry, so a replay
    /// repeats the event once the cause is fixed.
    #[tokio::test]
    async fn an_event_that_does_not_encode_dead_letters_the_message() {
        use crate::stage::{run, StageContext, StageControl};
        let bus = embedded(&["sms.send.gw", "sms.send.gw.sent", "sms.events", "sms.dlq"]).await;
        let producer = bus.producer().unwrap();
        let mut dlq = bus.consumer("test.dlq", &["sms.dlq"]).unwrap();
        let mut sent = bus.consumer("test.sent", &["sms.send.gw.sent"]).unwrap();
        let mut events = bus.consumer("test.events", &["sms.events"]).unwrap();
        let unencodable: EventFn = |_, _, _| {
            Err(HandleError::Failed {
                kind: "encode",
                message: "no schema for this event".into(),
            })
        };
        let log = SentLog::new("gw", Arc::from("sms.send.gw.sent"), 1000);
        let sink = ProviderSink::with_events(
            "gw",
            Arc::new(Accepting),
            &Sending::default(),
            log,
            None,
            producer.clone(),
            Arc::from("sms.events"),
            unencodable,
        );
        let ctx = StageContext {
            name: Arc::from("backend:gw"),
            dlq: Arc::from("sms.dlq"),
        };
        let consumer = bus.consumer("g", &["sms.send.gw"]).unwrap();
        let control = StageControl::default();
        let task = tokio::spawn(run(ctx, consumer, producer.clone(), sink, control.clone()));
        let msg = OutboundMessage::new(crate::message::Connection::new("gw", "+1555"), "hi");
        let payload = schema::outbound().encode(&msg).unwrap();
        producer
            .send_and_wait(Produce::new(
                Arc::from("sms.send.gw"),
                bytes::Bytes::from(msg.connection.key()),
                payload.clone(),
            ))
            .await
            .unwrap();
        let wait = Duration::from_secs(20);
        let dead = tokio::time::timeout(wait, dlq.recv())
            .await
            .unwrap()
            .unwrap();
        assert_eq!(&dead.payload[..], &payload[..]);
        assert_eq!(dead.header("smsflow.error.kind"), Some(&b"encode"[..]));
        assert_eq!(
            dead.header("smsflow.source.topic"),
            Some(&b"sms.send.gw"[..])
        );
        let message = String::from_utf8_lossy(dead.header("smsflow.error.message").unwrap());
        assert!(message.contains("no schema for this event"), "{message}");
        let entry = tokio::time::timeout(wait, sent.recv())
            .await
            .unwrap()
            .unwrap();
        let entry: Entry = serde_json::from_slice(&entry.payload).unwrap();
        assert_eq!(entry.state, State::Sending);
        let entry = tokio::time::timeout(wait, sent.recv())
            .await
            .unwrap()
            .unwrap();
        let entry: Entry = serde_json::from_slice(&entry.payload).unwrap();
        assert_eq!(entry.state, State::Sent);
        assert!(events.recv().now_or_never().is_none(), "no event was made");
        // Dead-lettered is finished: the stage drains cleanly.
        control.drain.cancel();
        tokio::time::timeout(wait, task)
            .await
            .unwrap()
            .unwrap()
            .unwrap();
    }

    /// Records the texts it is handed, in order.
    #[derive(Default)]
    struct Recording(std::sync::Mutex<Vec<String>>);
    impl Provider for Recording {
        fn send_one<'a>(&'a self, m: &'a OutboundMessage) -> BoxFuture<'a, Attempt> {
            self.0.lock().unwrap().push(m.text.clone());
            async {
                Attempt::Accepted {
                    provider_id: None,
                    status: "accepted".into(),
                }
            }
            .boxed()
        }
    }

    /// A reply written while the bulk lane holds a campaign's messages at
    /// the backend's rate goes to the provider before them.
    #[tokio::test]
    async fn a_reply_goes_before_the_bulk_lane_at_the_same_rate() {
        use crate::stage::{run, StageContext, StageControl};
        let bus = embedded(&[
            "sms.send.gw",
            "sms.send.gw.bulk",
            "sms.send.gw.sent",
            "sms.send.gw.bulk.sent",
            "sms.events",
            "sms.dlq",
        ])
        .await;
        let producer = bus.producer().unwrap();
        let provider = Arc::new(Recording::default());
        let settings = Sending {
            rate: Some(20.0),
            concurrency: 1,
            ..Sending::default()
        };
        let mut sink = ProviderSink::new(
            "gw",
            provider.clone(),
            &settings,
            SentLog::new("gw", Arc::from("sms.send.gw.sent"), 1000),
            Some(SentLog::new("gw", Arc::from("sms.send.gw.bulk.sent"), 1000)),
            producer.clone(),
            Arc::from("sms.events"),
        );
        let bulk = sink.bulk_lane().expect("a bulk lane");
        let ctx = |name: &str| StageContext {
            name: Arc::from(name),
            dlq: Arc::from("sms.dlq"),
        };
        let control = StageControl::default();
        let conversation = bus.consumer("g", &["sms.send.gw"]).unwrap();
        let lane = bus.consumer("g.bulk", &["sms.send.gw.bulk"]).unwrap();
        let a = tokio::spawn(run(
            ctx("backend:gw"),
            conversation,
            producer.clone(),
            sink,
            control.clone(),
        ));
        let b = tokio::spawn(run(
            ctx("backend:gw:bulk"),
            lane,
            producer.clone(),
            bulk,
            control.clone(),
        ));
        let send = |topic: &'static str, text: String| {
            let producer = producer.clone();
            async move {
                let msg =
                    OutboundMessage::new(crate::message::Connection::new("gw", "+1555"), text);
                let payload = schema::outbound().encode(&msg).unwrap();
                let key = bytes::Bytes::from(msg.connection.key());
                producer
                    .send_and_wait(Produce::new(Arc::from(topic), key, payload))
                    .await
                    .unwrap();
            }
        };
        for i in 0..40 {
            send("sms.send.gw.bulk", format!("bulk {i}")).await;
        }
        // A few bulk messages go out (20/s), then a reply comes.
        tokio::time::sleep(Duration::from_millis(300)).await;
        send("sms.send.gw", "reply".to_owned()).await;
        let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
        let order = loop {
            let order = provider.0.lock().unwrap().clone();
            if order.iter().any(|t| t == "reply") {
                break order;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "the reply never went: {order:?}"
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        };
        let at = order.iter().position(|t| t == "reply").unwrap();
        let bulk_before = at;
        // Sent before it: what went in the 300 ms, and at most the
        // bulk messages already handed over (concurrency 1, so one).
        assert!(
            bulk_before <= 9,
            "the reply waited behind {bulk_before} bulk messages: {order:?}"
        );
        assert!(
            bulk_before >= 2,
            "the bulk lane was sending before: {order:?}"
        );
        control.drain.cancel();
        let _ = tokio::time::timeout(Duration::from_secs(10), a).await;
        let _ = tokio::time::timeout(Duration::from_secs(10), b).await;
    }
}
