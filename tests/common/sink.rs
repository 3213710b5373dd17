//! A provider sink stage on its own bus, restartable, with a provider
//! that fails transiently until told to accept.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures::future::BoxFuture;
use futures::FutureExt;
use smsflow::backends::provider::{Attempt, Provider, ProviderSink};
use smsflow::backends::sent::{Entry, SentLog};
use smsflow::bus::{Bus, BusError, Produce, TopicSpec};
use smsflow::config::{Kafka, KafkaMode, Sending};
use smsflow::message::{Connection, OutboundMessage};
use smsflow::schema;
use smsflow::stage::{self, StageContext, StageControl};
use tokio::sync::Notify;

/// A provider that fails transiently until `accept` is set.
#[derive(Default)]
pub struct Gateway {
    pub accept: AtomicBool,
    pub calls: AtomicUsize,
    pub called: Notify,
}

impl Provider for Gateway {
    fn send_one<'a>(&'a self, _: &'a OutboundMessage) -> BoxFuture<'a, Attempt> {
        async move {
            self.calls.fetch_add(1, Ordering::SeqCst);
            self.called.notify_one();
            if self.accept.load(Ordering::SeqCst) {
                Attempt::Accepted {
                    provider_id: Some("gw-1".into()),
                    status: "accepted".into(),
                }
            } else {
                Attempt::Retry {
                    error: "HTTP 503 Service Unavailable".into(),
                    after: None,
                }
            }
        }
        .boxed()
    }
}

/// A provider sink stage on an embedded bus, restartable.
pub struct Sink {
    pub bus: Bus,
    pub producer: smsflow::bus::Producer,
    pub gateway: Arc<Gateway>,
    pub settings: Sending,
    pub log: SentLog,
}

impl Sink {
    pub async fn new(settings: Sending) -> Sink {
        Sink::on(Kafka::with_mode(KafkaMode::Embedded), settings).await
    }

    /// On the bus `kafka` says, the sent-log read back from it as a
    /// restarted process would (empty on the in-memory bus).
    pub async fn on(kafka: Kafka, settings: Sending) -> Sink {
        let topics: Vec<TopicSpec> = ["sms.send.gw", "sms.send.gw.sent", "sms.events", "sms.dlq"]
            .into_iter()
            .map(|name| TopicSpec {
                name: name.into(),
                partitions: 1,
                replication: 1,
                compacted: false,
                retention: None,
            })
            .collect();
        let bus = Bus::connect(&kafka, &topics).await.unwrap();
        // Kept across restarts of the stage, as the sent-log topic keeps it.
        let producer = bus.producer().unwrap();
        let log = SentLog::new("gw", Arc::from("sms.send.gw.sent"), 1_000_000);
        let timeout = std::time::Duration::from_secs(60);
        let log = SentLog::restore(&bus, &producer, log, "test.sent-log", timeout)
            .await
            .unwrap();
        Sink {
            producer,
            bus,
            gateway: Arc::new(Gateway::default()),
            settings,
            log,
        }
    }

    /// Start the stage (again: the same consumer group).
    pub fn start(&self) -> (tokio::task::JoinHandle<Result<(), BusError>>, StageControl) {
        let sink = ProviderSink::new(
            "gw",
            self.gateway.clone(),
            &self.settings,
            self.log.clone(),
            None,
            self.producer.clone(),
            Arc::from("sms.events"),
        );
        let control = StageControl::default();
        let ctx = StageContext {
            name: Arc::from("backend:gw"),
            dlq: Arc::from("sms.dlq"),
        };
        let consumer = self
            .bus
            .consumer("smsflow.backend:gw", &["sms.send.gw"])
            .unwrap();
        let task = tokio::spawn(stage::run(
            ctx,
            consumer,
            self.producer.clone(),
            sink,
            control.clone(),
        ));
        (task, control)
    }

    pub async fn send(&self, identity: &str) -> OutboundMessage {
        let msg = OutboundMessage::new(Connection::new("gw", identity), "hello");
        self.producer
            .send_and_wait(Produce::new(
                Arc::from("sms.send.gw"),
                Bytes::from(msg.connection.key()),
                schema::outbound().encode(&msg).unwrap(),
            ))
            .await
            .unwrap();
        msg
    }
}

/// The next sent-log entry.
pub async fn next_entry(consumer: &mut smsflow::bus::Consumer) -> Entry {
    let r = tokio::time::timeout(Duration::from_secs(20), consumer.recv())
        .await
        .expect("a sent-log entry within 20 s")
        .unwrap();
    serde_json::from_slice(&r.payload).unwrap()
}
