//! The `ceiling` part (Kafka only): plain rdkafka relaying the same records
//! over the same topics, what the pipeline is measured against.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{ensure, Context};
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::producer::{BaseRecord, DefaultProducerContext, Producer as _, ThreadedProducer};
use rdkafka::Message as _;
use smsflow::message::{Connection, InboundMessage};
use smsflow::schema;

use crate::load::{phone, BACKEND, PHONES};

/// Plain rdkafka over `hops` topics: a producer writes `n` records (the
/// same keys and Avro payload size as the pipeline's) to the first topic,
/// a consume → produce relay per further topic, a consumer reads the last.
/// Every relay and the last consumer have their partitions assigned, and
/// [`WARM_UP`] records went through the whole chain (not counted), before the
/// clock starts. Returns messages per second, first produce to last consume.
pub async fn ceiling(brokers: &str, n: u64, hops: usize) -> anyhow::Result<f64> {
    let topics: Vec<String> = (0..hops).map(|i| format!("ceiling.{i}")).collect();
    let mut base = ClientConfig::new();
    // The settings smsflow's Kafka bus uses (src/bus/kafka.rs).
    base.set("bootstrap.servers", brokers)
        .set("fetch.wait.max.ms", "20");
    let admin: AdminClient<DefaultClientContext> = base.create()?;
    let new: Vec<NewTopic<'_>> = topics
        .iter()
        .map(|t| NewTopic::new(t, 8, TopicReplication::Fixed(1)))
        .collect();
    for r in admin
        .create_topics(
            &new,
            &AdminOptions::new().operation_timeout(Some(Duration::from_secs(30))),
        )
        .await?
    {
        if let Err((t, code)) = r {
            ensure!(
                code == RDKafkaErrorCode::TopicAlreadyExists,
                "create {t}: {code}"
            );
        }
    }
    let producer_config = {
        let mut c = base.clone();
        c.set("linger.ms", "5").set("partitioner", "murmur2_random");
        c
    };
    let consumer_config = |group: &str| {
        let mut c = base.clone();
        c.set("group.id", group)
            .set("auto.offset.reset", "earliest")
            .set("partition.assignment.strategy", "cooperative-sticky");
        c
    };
    let stop = Arc::new(AtomicBool::new(false));
    let run = uuid::Uuid::new_v4().simple().to_string();
    let joined = Arc::new(AtomicUsize::new(0));
    let mut threads = Vec::new();
    for pair in topics.windows(2) {
        let consumer: BaseConsumer =
            consumer_config(&format!("{run}.relay.{}", pair[0])).create()?;
        consumer.subscribe(&[&pair[0]])?;
        let producer: ThreadedProducer<DefaultProducerContext> = producer_config.create()?;
        let to = pair[1].clone();
        let stop = stop.clone();
        let joined = joined.clone();
        threads.push(std::thread::spawn(move || {
            // Nothing is produced before every relay joined: polling loses nothing.
            while !stop.load(Ordering::Relaxed)
                && consumer.assignment().map_or(0, |a| a.count()) == 0
            {
                consumer.poll(Duration::from_millis(100));
            }
            joined.fetch_add(1, Ordering::AcqRel);
            while !stop.load(Ordering::Relaxed) {
                let Some(Ok(m)) = consumer.poll(Duration::from_millis(100)) else {
                    continue;
                };
                let rec = BaseRecord::to(&to)
                    .key(m.key().unwrap_or_default())
                    .payload(m.payload().unwrap_or_default());
                if let Err(e) = send_waiting(&producer, rec) {
                    // The last consumer then comes up short and says so.
                    eprintln!("ceiling relay to {to}: {e}");
                    break;
                }
            }
            let _ = producer.flush(Duration::from_secs(10));
        }));
    }
    let last: BaseConsumer = consumer_config(&format!("{run}.last")).create()?;
    last.subscribe(&[topics.last().context("at least one hop")?.as_str()])?;
    // Every group joined before producing.
    let join_deadline = Instant::now() + Duration::from_secs(30);
    while last.assignment()?.count() == 0 || joined.load(Ordering::Acquire) < threads.len() {
        if Instant::now() >= join_deadline {
            stop.store(true, Ordering::Relaxed);
            anyhow::bail!("the ceiling consumers did not join");
        }
        last.poll(Duration::from_millis(100));
    }
    let payload = schema::inbound()
        .encode(&InboundMessage::new(
            Connection::new(BACKEND, phone(0)),
            "echo @1234567890",
        ))
        .expect("encodes");
    let keys: Vec<String> = (0..PHONES)
        .map(|i| format!("{BACKEND}:{}", phone(i)))
        .collect();
    let producer: ThreadedProducer<DefaultProducerContext> = producer_config.create()?;
    let first = topics[0].clone();
    // Warm up: records through the whole chain, not counted.
    for i in 0..WARM_UP {
        let rec = BaseRecord::to(&first)
            .key(keys[(i % PHONES) as usize].as_bytes())
            .payload(payload.as_slice());
        send_waiting(&producer, rec)?;
    }
    let _ = producer.flush(Duration::from_secs(30));
    let (last, warmed) = tokio::task::spawn_blocking(move || {
        let deadline = Instant::now() + Duration::from_secs(60);
        let mut count = 0;
        while count < WARM_UP && Instant::now() < deadline {
            if let Some(Ok(_)) = last.poll(Duration::from_millis(100)) {
                count += 1;
            }
        }
        (last, count)
    })
    .await?;
    if warmed < WARM_UP {
        stop.store(true, Ordering::Relaxed);
        anyhow::bail!("the ceiling warm-up received {warmed} of {WARM_UP} records");
    }
    let started = Instant::now();
    let gen = std::thread::spawn(move || {
        for i in 0..n {
            let rec = BaseRecord::to(&first)
                .key(keys[(i % PHONES) as usize].as_bytes())
                .payload(payload.as_slice());
            if let Err(e) = send_waiting(&producer, rec) {
                eprintln!("ceiling produce: {e}");
                break;
            }
        }
        let _ = producer.flush(Duration::from_secs(30));
    });
    let count = tokio::task::spawn_blocking(move || {
        let mut count = 0;
        let deadline = Instant::now() + Duration::from_secs(60 + n / 1000);
        while count < n && Instant::now() < deadline {
            if let Some(Ok(_)) = last.poll(Duration::from_millis(100)) {
                count += 1;
            }
        }
        count
    })
    .await?;
    let secs = started.elapsed().as_secs_f64();
    stop.store(true, Ordering::Relaxed);
    let _ = gen.join();
    for t in threads {
        let _ = t.join();
    }
    ensure!(
        count == n,
        "the ceiling run received {count} of {n} records"
    );
    Ok(n as f64 / secs)
}

/// Records through the chain before the clock starts (as many as the pipeline part's).
pub const WARM_UP: u64 = 100;

/// Enqueue `rec`, waiting while librdkafka's queue is full.
fn send_waiting(
    producer: &ThreadedProducer<DefaultProducerContext>,
    mut rec: BaseRecord<'_, [u8], [u8]>,
) -> Result<(), KafkaError> {
    loop {
        match producer.send(rec) {
            Ok(()) => return Ok(()),
            Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), r)) => {
                rec = r;
                std::thread::sleep(Duration::from_millis(1));
            }
            Err((e, _)) => return Err(e),
        }
    }
}
