//! Writing to Kafka: records are enqueued with librdkafka, and each
//! delivery report completes the [`AckGroup`] it was sent with.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;

use rdkafka::config::ClientConfig;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{
    BaseRecord, DeliveryResult, Producer as _, ProducerContext, ThreadedProducer,
};
use rdkafka::ClientContext;

use super::error::kafka_error;
use crate::bus::record::{AckGroup, BusError, Produce};
use crate::config::{self, Framing};
use crate::schema;

/// Writes to Kafka.
#[derive(Clone)]
pub struct KafkaProducer {
    producer: Arc<ThreadedProducer<AckContext>>,
    /// Set when some topic's records go out in another framing than the
    /// codecs' single-object one (`kafka.framing`, `kafka.topic_framing`).
    framing: Option<Arc<TopicFraming>>,
}

/// The framing of each topic's records (`kafka.framing`, `kafka.topic_framing`).
#[derive(Debug)]
pub struct TopicFraming {
    default: Framing,
    topics: HashMap<String, Framing>,
}

impl TopicFraming {
    /// The pipeline's framing, or `None` when every topic keeps the codecs'.
    pub fn of(cfg: &config::Kafka) -> Option<Arc<TopicFraming>> {
        let all_single = cfg.framing == Framing::SingleObject
            && cfg
                .topic_framing
                .values()
                .all(|f| *f == Framing::SingleObject);
        (!all_single).then(|| {
            Arc::new(TopicFraming {
                default: cfg.framing,
                topics: cfg.topic_framing.clone().into_iter().collect(),
            })
        })
    }

    /// `payload`, framed as `topic`'s records are.
    fn apply(&self, topic: &str, payload: Bytes) -> Bytes {
        let framing = self.topics.get(topic).copied().unwrap_or(self.default);
        match (framing, payload.first()) {
            (Framing::Confluent, Some(0xC3)) | (Framing::SingleObject, Some(0x00)) => {
                Bytes::from(schema::reframe(payload.to_vec(), framing))
            }
            _ => payload,
        }
    }
}

/// Delivery reports complete the [`AckGroup`] each record was sent with
/// (on librdkafka's polling thread): no future and no wake-up per record.
pub struct AckContext;

impl ClientContext for AckContext {}

impl ProducerContext for AckContext {
    type DeliveryOpaque = Arc<AckGroup>;

    fn delivery(&self, result: &DeliveryResult<'_>, group: Arc<AckGroup>) {
        group.complete(match result {
            Ok(_) => Ok(()),
            Err((e, _)) => Err(kafka_error(e.clone())),
        });
    }
}

impl KafkaProducer {
    pub(super) fn new(
        config: &ClientConfig,
        framing: Option<Arc<TopicFraming>>,
    ) -> Result<KafkaProducer, BusError> {
        let producer: ThreadedProducer<AckContext> = config
            .create_with_context(AckContext)
            .map_err(kafka_error)?;
        Ok(KafkaProducer {
            producer: Arc::new(producer),
            framing,
        })
    }

    /// Enqueue `record`; `group` is completed when the broker acknowledged it.
    pub async fn send(&self, record: Produce, group: &Arc<AckGroup>) -> Result<(), BusError> {
        let payload = match &self.framing {
            Some(f) => f.apply(&record.topic, record.payload),
            None => record.payload,
        };
        let mut br = BaseRecord::with_opaque_to(&record.topic, group.clone())
            .key(record.key.as_ref())
            .payload(payload.as_ref());
        // An empty payload is a tombstone (a deleted key in a compacted topic): null on Kafka.
        if payload.is_empty() {
            br.payload = None;
        }
        // librdkafka allocates a header list even for none: only when needed.
        if !record.headers.is_empty() {
            let mut headers = OwnedHeaders::new_with_capacity(record.headers.len());
            for (k, v) in &record.headers {
                headers = headers.insert(Header {
                    key: k,
                    value: Some(v.as_ref()),
                });
            }
            br = br.headers(headers);
        }
        group.expect_one();
        loop {
            match self.producer.send(br) {
                Ok(()) => return Ok(()),
                // librdkafka's queue is full: wait for deliveries to make room.
                Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), back)) => {
                    br = back;
                    tokio::time::sleep(Duration::from_millis(5)).await;
                }
                Err((e, _)) => {
                    let e = kafka_error(e);
                    group.complete(Err(e.clone()));
                    return Err(e);
                }
            }
        }
    }

    /// Whether the cluster answers a metadata request within `timeout`.
    pub async fn reachable(&self, timeout: Duration) -> Result<(), BusError> {
        let p = self.producer.clone();
        tokio::task::spawn_blocking(move || p.client().fetch_metadata(None, timeout).map(|_| ()))
            .await
            .map_err(|_| BusError::Closed)?
            .map_err(kafka_error)
    }

    /// Send one record and wait for the broker's acknowledgement.
    pub async fn send_and_wait(&self, record: Produce) -> Result<(), BusError> {
        let group = AckGroup::new();
        self.send(record, &group).await?;
        group.wait().await
    }

    pub async fn flush(&self, timeout: Duration) -> Result<(), BusError> {
        let p = self.producer.clone();
        tokio::task::spawn_blocking(move || p.flush(timeout))
            .await
            .map_err(|_| BusError::Closed)?
            .map_err(kafka_error)
    }
}
