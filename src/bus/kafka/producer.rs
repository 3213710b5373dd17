//! Writing to Kafka: records are enqueued with librdkafka, and each
//! delivery report completes the [`AckGroup`] it was sent with.

use std::sync::Arc;
use std::time::Duration;

use rdkafka::config::ClientConfig;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{
    BaseRecord, DeliveryResult, Producer as _, ProducerContext, ThreadedProducer,
};
use rdkafka::ClientContext;

use super::error::kafka_error;
use crate::bus::record::{AckGroup, BusError, Produce};

/// Writes to Kafka.
#[derive(Clone)]
pub struct KafkaProducer {
    producer: Arc<ThreadedProducer<AckContext>>,
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
    pub(super) fn new(config: &ClientConfig) -> Result<KafkaProducer, BusError> {
        let producer: ThreadedProducer<AckContext> = config
            .create_with_context(AckContext)
            .map_err(kafka_error)?;
        Ok(KafkaProducer {
            producer: Arc::new(producer),
        })
    }

    /// Enqueue `record`; `group` is completed when the broker acknowledged it.
    pub async fn send(&self, record: Produce, group: &Arc<AckGroup>) -> Result<(), BusError> {
        let mut br = BaseRecord::with_opaque_to(&record.topic, group.clone())
            .key(record.key.as_ref())
            .payload(record.payload.as_ref());
        // An empty payload is a tombstone (a deleted key in a compacted topic): null on Kafka.
        if record.payload.is_empty() {
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
