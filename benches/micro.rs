//! Throughput of the pieces and of the whole demo pipeline.
//!
//! `cargo bench --bench pipeline` prints, per benchmark, the time per
//! iteration and the throughput in messages (elements) per second:
//!
//! - `avro/*`: encoding and decoding one SMS-sized record;
//! - `route/*`: the route table deciding for one message;
//! - `pipeline/*`: messages end to end through every stage of the demo
//!   pipeline (inbound → router → app → router → tester sink), on the
//!   embedded bus and on librdkafka's mock cluster (small batches: it drops
//!   records past 5 MiB per partition, so it is a code-path check, not a
//!   broker benchmark).

use std::hint::black_box;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use smsflow::bus::Produce;
use smsflow::config::{self, KafkaMode};
use smsflow::message::{Connection, InboundMessage};
use smsflow::router::RouteTable;
use smsflow::schema;
use smsflow::topology::{Running, Topology};

fn demo(mode: KafkaMode) -> config::Pipeline {
    let text = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/pipelines/demo.yaml"))
        .unwrap();
    let mut p = config::load_str(&text, &|_| None).unwrap();
    p.kafka = config::Kafka::with_mode(mode);
    p
}

fn sample() -> InboundMessage {
    InboundMessage::new(
        Connection::new("message_tester", "+15551234567"),
        "echo please call me back at the office",
    )
}

fn avro(c: &mut Criterion) {
    let mut g = c.benchmark_group("avro");
    g.throughput(Throughput::Elements(1));
    let msg = sample();
    let bytes = schema::inbound().encode(&msg).unwrap();
    g.bench_function("encode_inbound", |b| {
        b.iter(|| schema::inbound().encode(black_box(&msg)).unwrap())
    });
    g.bench_function("decode_inbound", |b| {
        b.iter(|| schema::inbound().decode(black_box(&bytes)).unwrap())
    });
    g.finish();
}

fn route(c: &mut Criterion) {
    let table = RouteTable::build(&demo(KafkaMode::Embedded)).unwrap();
    let mut g = c.benchmark_group("route");
    g.throughput(Throughput::Elements(1));
    for text in ["echo hi there", "price rice", "nothing matches this"] {
        let mut m = sample();
        m.text = text.into();
        g.bench_function(text, |b| {
            b.iter(|| table.first_match(black_box(&m)).is_some())
        });
    }
    g.finish();
}

/// Send `n` inbound messages from 1,000 numbers straight onto the bus and
/// wait until the tester sink delivered all `n` replies.
async fn round(running: &Running, n: usize) -> Duration {
    let tester = running.tester(None).unwrap();
    let mut replies = tester.subscribe();
    let producer = running.bus().producer().unwrap();
    let topic: Arc<str> = Arc::from("sms.inbound");
    let start = Instant::now();
    let send = async {
        let mut acks = Vec::with_capacity(n);
        for i in 0..n {
            let msg = InboundMessage::new(
                Connection::new("message_tester", format!("+1555{:07}", i % 1000)),
                format!("echo {i}"),
            );
            let p = Produce::new(
                topic.clone(),
                Bytes::from(msg.connection.key()),
                schema::inbound().encode(&msg).unwrap(),
            );
            acks.push(producer.send(p).await.unwrap());
        }
        for a in acks {
            a.wait().await.unwrap();
        }
    };
    let receive = async {
        for _ in 0..n {
            replies.recv().await.unwrap();
        }
    };
    tokio::join!(send, receive);
    start.elapsed()
}

fn pipeline(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let mut g = c.benchmark_group("pipeline");
    g.sample_size(10).measurement_time(Duration::from_secs(20));
    for (mode, n) in [(KafkaMode::Embedded, 20_000), (KafkaMode::Mock, 5_000)] {
        let running = rt.block_on(async {
            Topology::new(demo(mode))
                .unwrap()
                .start(None, false)
                .await
                .unwrap()
        });
        // Let the mock cluster's consumer groups settle before measuring.
        rt.block_on(round(&running, 100));
        g.throughput(Throughput::Elements(n as u64));
        g.bench_function(format!("{mode:?}").to_lowercase(), |b| {
            b.iter_custom(|iters| (0..iters).map(|_| rt.block_on(round(&running, n))).sum())
        });
        rt.block_on(running.shutdown()).unwrap();
    }
    g.finish();
}

criterion_group!(benches, avro, route, pipeline);
criterion_main!(benches);
