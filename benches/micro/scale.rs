//! The hot path's scaling: the router on several threads, batches with and
//! without rayon, and derived ids (see the crate's doc for each group).

use std::hint::black_box;
use std::sync::Arc;

use criterion::{Criterion, Throughput};
use futures::FutureExt;
use smsflow::message::{Connection, OutboundMessage};
use smsflow::router::{RouteTable, RouterIn};
use smsflow::schema;
use smsflow::stage::{Handler, Output};

use crate::{inbound, inbound_record, pipeline, router_cases, IDENTITY};

pub fn router_threads(c: &mut Criterion) {
    let p = pipeline();
    let routers = |n: usize| -> Vec<RouterIn> {
        (0..n)
            .map(|_| {
                let table = RouteTable::build(&p).unwrap();
                let services = smsflow::apps::Services::of(&smsflow::state::Tables::new(&p));
                RouterIn::new(Arc::from("router-in"), &p, table, services)
            })
            .collect()
    };
    let mut g = c.benchmark_group("router_threads");
    for (name, text, _) in router_cases() {
        if !matches!(name, "early" | "default") {
            continue;
        }
        let record = inbound_record(&inbound(&text));
        for n in [1, 2] {
            let mut routers = routers(n);
            g.throughput(Throughput::Elements(n as u64));
            g.bench_function(format!("{name}/{n}"), |b| {
                // Each thread handles `iters` records: n × iters in all.
                b.iter_custom(|iters| {
                    let started = std::time::Instant::now();
                    std::thread::scope(|s| {
                        for router in routers.iter_mut() {
                            let record = &record;
                            s.spawn(move || {
                                let mut out = Output::default();
                                for _ in 0..iters {
                                    out.clear();
                                    router
                                        .handle(black_box(record), &mut out)
                                        .now_or_never()
                                        .expect("the router does not await")
                                        .unwrap();
                                }
                            });
                        }
                    });
                    started.elapsed()
                })
            });
        }
    }
    g.finish();
}

pub fn batch(c: &mut Criterion) {
    use rayon::prelude::*;
    let mut out = OutboundMessage::new(Connection::new("message_tester", IDENTITY), "");
    out.text = "Hello Ada, your appointment is on Tuesday at 10:00. Reply STOP to opt out.".into();
    let inbound = schema::inbound()
        .encode(&inbound("echo hello there"))
        .unwrap();
    let mut g = c.benchmark_group("batch");
    for n in [4usize, 16, 64, 256, 1024] {
        let messages = vec![out.clone(); n];
        let records = vec![inbound.clone(); n];
        g.throughput(Throughput::Elements(n as u64));
        let encode = |m: &OutboundMessage| schema::outbound().encode(m).unwrap();
        let decode = |r: &Vec<u8>| schema::inbound().decode(r).unwrap();
        g.bench_function(format!("encode/seq/{n}"), |b| {
            b.iter(|| black_box(&messages).iter().map(encode).collect::<Vec<_>>())
        });
        g.bench_function(format!("encode/rayon/{n}"), |b| {
            b.iter(|| {
                black_box(&messages)
                    .par_iter()
                    .map(encode)
                    .collect::<Vec<_>>()
            })
        });
        g.bench_function(format!("decode/seq/{n}"), |b| {
            b.iter(|| black_box(&records).iter().map(decode).collect::<Vec<_>>())
        });
        g.bench_function(format!("decode/rayon/{n}"), |b| {
            b.iter(|| {
                black_box(&records)
                    .par_iter()
                    .map(decode)
                    .collect::<Vec<_>>()
            })
        });
    }
    g.finish();
}

pub fn ids(c: &mut Criterion) {
    let cause = smsflow::message::new_id();
    let namespace = uuid::Uuid::from_u128(0x5f1c_0c3e_8a4b_4d2e_9b1a_5d6f_7e8f_9a0b);
    let mut g = c.benchmark_group("ids");
    g.throughput(Throughput::Elements(1));
    g.bench_function("derived_id", |b| {
        b.iter(|| smsflow::message::derived_id(black_box(&cause), "echo", 0))
    });
    g.bench_function("uuid_new_v5", |b| {
        b.iter(|| {
            let name = format!("{}/echo/0", black_box(&cause));
            uuid::Uuid::new_v5(&namespace, name.as_bytes()).to_string()
        })
    });
    assert_eq!(
        smsflow::message::derived_id(&cause, "echo", 0),
        uuid::Uuid::new_v5(&namespace, format!("{cause}/echo/0").as_bytes()).to_string()
    );
    g.finish();
}
