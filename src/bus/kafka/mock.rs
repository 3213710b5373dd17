//! librdkafka's mock cluster (`rdkafka::mocking`), for `kafka: mock`: the
//! Kafka code path in tests, without a server. Not for real work: it drops
//! records past 5 MiB or 100,000 batches per partition.

use super::error::kafka_error;
use crate::bus::record::{BusError, TopicSpec};

/// librdkafka's mock cluster, owned by a thread of its own (the handle is not
/// `Send`), alive until this value is dropped.
pub(super) struct MockCluster {
    pub(super) bootstrap: String,
    stop: Option<std::sync::mpsc::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl MockCluster {
    pub(super) fn start(topics: &[TopicSpec]) -> Result<MockCluster, BusError> {
        let topics = topics.to_vec();
        let (ready_tx, ready_rx) = std::sync::mpsc::channel();
        let (stop_tx, stop_rx) = std::sync::mpsc::channel::<()>();
        let thread = std::thread::Builder::new()
            .name("kafka-mock".into())
            .spawn(move || {
                let started = rdkafka::mocking::MockCluster::new(1).and_then(|c| {
                    for t in &topics {
                        c.create_topic(&t.name, t.partitions, 1)?;
                    }
                    Ok(c)
                });
                match started {
                    Ok(cluster) => {
                        let _ = ready_tx.send(Ok(cluster.bootstrap_servers()));
                        let _ = stop_rx.recv();
                        drop(cluster);
                    }
                    Err(e) => {
                        let _ = ready_tx.send(Err(kafka_error(e)));
                    }
                }
            })
            .map_err(|e| BusError::Kafka {
                message: format!("cannot start the mock cluster thread: {e}"),
                retryable: false,
            })?;
        let bootstrap = ready_rx.recv().map_err(|_| BusError::Closed)??;
        Ok(MockCluster {
            bootstrap,
            stop: Some(stop_tx),
            thread: Some(thread),
        })
    }
}

impl Drop for MockCluster {
    fn drop(&mut self) {
        drop(self.stop.take());
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}
