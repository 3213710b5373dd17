//! Throughput of the pieces, in-process and one record at a time.
//!
//! `cargo bench --bench micro` prints, per benchmark, the time per iteration
//! and the throughput in records (elements) per second; a filter after `--`
//! runs one group (`cargo bench --bench micro -- router`):
//!
//! - `codec/*`: Avro encoding and decoding of each record type, SMS-sized
//!   (serde_avro_fast, smsflow's codec) and `codec/apache_avro/*`: the same
//!   with apache-avro's serde path, the codec before (same bytes);
//! - `router/*`: the incoming router's whole handler on one `sms.inbound`
//!   record (decode → filter → a 200-route table → encode the routed message)
//!   for a message that matches an early route, a late route, a pattern route,
//!   and no route (→ the default app);
//! - `router_apps/*`: the same with the apps' router work switched on: the
//!   sender is a registered contact (looked up and attached), opt-out
//!   keywords are checked, and the message is logged (one more record);
//! - `router_threads/<case>/<n>`: `router/*` on `n` threads at once, each
//!   with its own handler (as `n` replicas or partitions' workers of the
//!   stage would be): messages/s of them all, to size a deployment;
//! - `route/*`: the same table deciding alone (`RouteTable::first_match`);
//! - `batch/<op>/<seq|rayon>/<n>`: encoding `n` outbound messages (what the
//!   campaign stage does with an audience chunk) and decoding `n` inbound
//!   records (a burst a consuming stage reads), one after another or with
//!   rayon across the cores (order kept): where rayon starts to pay;
//! - `ids/*`: a reply's derived id (`message::derived_id`, SHA-1 with the
//!   CPU's SHA instructions) next to `uuid::Uuid::new_v5` (the same id, its
//!   portable SHA-1: what `derived_id` called before);
//! - `sms/*`: GSM-7 / UCS-2 detection and segment counting of one text;
//! - `bus/*`: the embedded bus alone, in memory and durable (`data_dir`,
//!   `fsync: always` and `fsync: interval`), side by side: one producer
//!   writing 200-byte records as a stage does (acknowledgements awaited
//!   1,000 at a time; `one_by_one`: each before the next, as a lone webhook
//!   request), a group reading and marking each done; the time is until
//!   the group has read them all.
//!
//! The end-to-end throughput through a running pipeline is `benches/e2e/`.

mod scale;

use std::hint::black_box;
use std::sync::Arc;

use bytes::Bytes;
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use futures::FutureExt;
use smsflow::bus::{AckGroup, Bus, Produce, Record, TopicSpec};
use smsflow::config::{self, Pipeline};
use smsflow::message::{
    AudienceChunk, AudienceRow, Connection, Contact, DeliveryEvent, DeliveryStatus, Direction,
    Encoding, InboundMessage, LogEntry, OutboundMessage, RoutedMessage, Stats, StatsDimension,
    StatsWindow,
};
use smsflow::router::{RouteTable, RouterIn};
use smsflow::schema::{self, Codec};
use smsflow::sms;
use smsflow::stage::{Handler, Output};

use scale::{batch, ids, router_threads};

/// The allocator the `smsflow` command uses, so the numbers are the command's.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

const IDENTITY: &str = "+256772123456";

/// Distinct pronounceable keywords: `kalomi`, `kalonu`, ...
fn word(i: usize) -> String {
    const SYLLABLES: [&str; 10] = ["ka", "lo", "mi", "nu", "pe", "ri", "sa", "to", "vu", "ze"];
    [i / 100 % 10, i / 10 % 10, i % 10]
        .iter()
        .map(|&s| SYLLABLES[s])
        .collect()
}

/// Route `i` of the 200: every fourth a pattern, the others keywords (every
/// fifth an alternation such as `reg|register|join`), a few limited to a
/// country prefix; messages come from +256, so those do match.
const ROUTES: usize = 200;

fn is_pattern(i: usize) -> bool {
    i % 4 == 3
}

fn keyword(i: usize) -> String {
    let w = word(i);
    if i.is_multiple_of(5) {
        format!("{w}|{w}er|{}", word(500 + i))
    } else {
        w
    }
}

fn pattern(i: usize) -> String {
    let w = word(i);
    match i % 3 {
        0 => format!(r"{w}\s+(?P<item>\w+)(?:\s+(?P<qty>\d+))?\s*$"),
        1 => format!(r"{w}[\s:]+(\d+)\s+(\w+)"),
        _ => format!(r"{w}\s+(?P<name>\w+(?:\s+\w+)*)"),
    }
}

/// The pipeline YAML: the 200 routes to 10 keyword and 5 pattern
/// auto-responders, and the default app for everything else.
fn pipeline_yaml() -> String {
    let mut y =
        String::from("project: bench\nkafka: embedded\nbackends:\n  - type: tester\nroutes:\n");
    for i in 0..ROUTES {
        if is_pattern(i) {
            y += &format!("  - app: pat{}\n    pattern: '{}'\n", i % 5, pattern(i));
        } else {
            y += &format!("  - app: kw{}\n    keyword: '{}'\n", i % 10, keyword(i));
        }
        if i % 25 == 7 {
            y += "    prefix: '+256'\n";
        }
    }
    y += "apps:\n";
    for a in 0..10 {
        y += &format!("  - name: kw{a}\n    type: autoresponder\n    keyword: kw{a}\n    reply: 'Thanks: {{rest}}'\n");
    }
    for a in 0..5 {
        y += &format!("  - name: pat{a}\n    type: autoresponder\n    pattern: 'pat{a}\\s+(?P<item>\\w+)'\n    reply: 'Noted: {{item}}'\n");
    }
    y += "  - type: default\n";
    y
}

fn pipeline() -> Pipeline {
    smsflow::topology::load_str(&pipeline_yaml(), &|_| None).unwrap_or_else(|errors| {
        panic!("bench pipeline does not load: {errors:?}");
    })
}

/// The router cases: (name, text, the route it must reach).
fn router_cases() -> Vec<(&'static str, String, String)> {
    let last_keyword = (0..ROUTES).rev().find(|&i| !is_pattern(i)).unwrap();
    let last_pattern = (0..ROUTES).rev().find(|&i| is_pattern(i)).unwrap();
    vec![
        (
            "early",
            format!(
                "{} Ada Nakato, Plot 12 Kampala Road",
                word(0).to_uppercase()
            ),
            "kw0".into(),
        ),
        (
            "late",
            format!("{}, please call me back at the office", word(last_keyword)),
            format!("kw{}", last_keyword % 10),
        ),
        (
            "pattern",
            format!("{}: 25 bags maize", word(last_pattern)),
            format!("pat{}", last_pattern % 5),
        ),
        (
            "default",
            "hello, is anyone there? I would like to know the price of rice".into(),
            "default".into(),
        ),
    ]
}

fn inbound(text: &str) -> InboundMessage {
    let mut m = InboundMessage::new(Connection::new("message_tester", IDENTITY), text);
    m.external_id = Some("SM5f2c8e0b9d7a4c1e".into());
    m
}

/// `msg` as the `sms.inbound` record a source writes.
fn inbound_record(msg: &InboundMessage) -> Record {
    Record {
        topic: Arc::from("sms.inbound"),
        partition: 0,
        offset: 0,
        key: Some(Bytes::from(msg.connection.key())),
        payload: Bytes::from(schema::inbound().encode(msg).unwrap()),
        headers: Vec::new(),
    }
}

fn contact() -> Contact {
    Contact {
        id: smsflow::message::new_id(),
        name: "Ada Nakato".into(),
        language: "lg".into(),
        connections: vec![Connection::new("message_tester", IDENTITY)],
        groups: Vec::new(),
        created_at: 1_700_000_000_000,
        modified_at: 1_700_000_000_000,
    }
}

fn codec_pair<T>(c: &mut Criterion, name: &str, codec: &'static Codec<T>, value: T)
where
    T: serde::Serialize + serde::de::DeserializeOwned,
{
    let mut g = c.benchmark_group("codec");
    g.throughput(Throughput::Elements(1));
    let bytes = codec.encode(&value).unwrap();
    g.bench_function(format!("encode/{name}"), |b| {
        b.iter(|| codec.encode(black_box(&value)).unwrap())
    });
    g.bench_function(format!("decode/{name}"), |b| {
        b.iter(|| codec.decode(black_box(&bytes)).unwrap())
    });
    // The same with apache-avro's serde path, the codec before.
    let reference = codec.reference();
    assert_eq!(reference.encode(&value).unwrap(), bytes);
    g.bench_function(format!("apache_avro/encode/{name}"), |b| {
        b.iter(|| reference.encode(black_box(&value)).unwrap())
    });
    g.bench_function(format!("apache_avro/decode/{name}"), |b| {
        b.iter(|| reference.decode(black_box(&bytes)).unwrap())
    });
    g.finish();
}

fn codec(c: &mut Criterion) {
    let msg = inbound("register Ada Nakato, Plot 12 Kampala Road, born 1990");
    let routed = RoutedMessage {
        message: msg.clone(),
        app: "register".into(),
        route: "register".into(),
        rest: Some("Ada Nakato, Plot 12 Kampala Road, born 1990".into()),
        captures: [("name".to_owned(), "Ada Nakato".to_owned())].into(),
        contact: Some(contact()),
    };
    let mut out = OutboundMessage::reply_to(
        &msg,
        "Thank you Ada, you are registered. Reply STOP to unsubscribe.",
    );
    out.app = Some("register".into());
    out.encoding = Some(Encoding::Gsm7);
    out.segments = 1;
    let mut event = DeliveryEvent::now(&out, DeliveryStatus::Delivered);
    event.provider_id = Some("SMd2f1a9c3b8e74f60".into());
    codec_pair(c, "inbound", schema::inbound(), msg.clone());
    // The router's read: field by field, its strings borrowed from the record.
    let bytes = schema::inbound().encode(&msg).unwrap();
    c.benchmark_group("codec")
        .throughput(Throughput::Elements(1))
        .bench_function("view/inbound", |b| {
            b.iter(|| schema::inbound().view(black_box(&bytes)).unwrap())
        });
    codec_pair(c, "routed", schema::routed(), routed);
    codec_pair(c, "outbound", schema::outbound(), out.clone());
    codec_pair(c, "event", schema::event(), event);
    codec_pair(c, "contact", schema::contact(), contact());
    let log = LogEntry {
        message_id: out.id.clone(),
        direction: Direction::Out,
        connection: out.connection.clone(),
        contact_id: Some(contact().id),
        contact_name: "Ada Nakato".into(),
        text: out.text.clone(),
        at: out.created_at,
        app: out.app.clone(),
        in_response_to: out.in_response_to.clone(),
    };
    codec_pair(c, "log", schema::log(), log);
    // A chunk of an uploaded audience: 500 rows, as the campaign stage writes.
    let rows = (0..500)
        .map(|i| AudienceRow {
            line: i + 2,
            phone: format!("+2547{:08}", 12_000_000 + i),
            name: Some("Wanjiru".into()),
            language: Some("sw".into()),
            timezone: None,
            vars: [("city".to_owned(), "Nyeri".to_owned())].into(),
        })
        .collect();
    let chunk = AudienceChunk {
        campaign_id: "spring-2026".into(),
        index: 3,
        last: false,
        rows,
    };
    codec_pair(c, "audience_500_rows", schema::audience(), chunk);
    let mut stats = Stats::empty(
        StatsWindow::Minute,
        1_700_000_040_000,
        StatsDimension::Backend,
        "twilio",
        "sms.events",
        3,
    );
    (stats.outbound, stats.delivered, stats.segments) = (120, 117, 130);
    for ms in [180, 220, 260, 900, 4_000] {
        stats.accepted_to_sent.record(ms);
    }
    codec_pair(c, "stats", schema::stats(), stats);
}

fn router(c: &mut Criterion) {
    let p = pipeline();
    let table = RouteTable::build(&p).unwrap();
    let services = smsflow::apps::Services::of(&smsflow::state::Tables::new(&p));
    let router = RouterIn::new(Arc::from("router-in"), &p, table, services);
    bench_router(c, "router", router, |out, app, text| {
        let routed = schema::routed().decode(&out[0].payload).unwrap();
        assert_eq!((out.len(), routed.app.as_str()), (1, app), "{text:?}");
    });
}

fn router_apps(c: &mut Criterion) {
    let mut p = pipeline();
    p.optout = Some(config::OptOut::default());
    p.messagelog = Some(config::MessageLog::default());
    let table = RouteTable::build(&p).unwrap();
    let tables = smsflow::state::Tables::new(&p);
    let mut ada = contact();
    ada.connections = vec![Connection::new("message_tester", IDENTITY)];
    tables.contacts.save(ada).unwrap();
    let keywords = smsflow::state::optout::Keywords::new(p.optout.as_ref().unwrap());
    let router = RouterIn::new(
        Arc::from("router-in"),
        &p,
        table,
        smsflow::apps::Services::of(&tables),
    )
    .with_optout(keywords, tables.optouts.clone());
    bench_router(c, "router_apps", router, |out, app, text| {
        // The log entry, then the routed message with the contact attached.
        let routed = schema::routed().decode(&out[1].payload).unwrap();
        assert_eq!((out.len(), routed.app.as_str()), (2, app), "{text:?}");
        assert_eq!(routed.contact.map(|c| c.name), Some("Ada Nakato".into()));
    });
}

/// `router`'s whole handler on each of [`router_cases`], as the group
/// `group`; `check` looks at the outputs of each case once, before timing.
fn bench_router(
    c: &mut Criterion,
    group: &str,
    mut router: RouterIn,
    check: impl Fn(&Output, &str, &str),
) {
    let mut g = c.benchmark_group(group);
    g.throughput(Throughput::Elements(1));
    let mut out = Output::default();
    for (name, text, app) in router_cases() {
        let record = inbound_record(&inbound(&text));
        // The handler never awaits: one poll finishes it.
        let mut handle = |out: &mut Output| {
            out.clear();
            router
                .handle(black_box(&record), out)
                .now_or_never()
                .expect("the router does not await")
                .unwrap();
        };
        handle(&mut out);
        check(&out, &app, &text);
        g.bench_function(name, |b| b.iter(|| handle(&mut out)));
    }
    g.finish();
}

fn route(c: &mut Criterion) {
    let table = RouteTable::build(&pipeline()).unwrap();
    let mut g = c.benchmark_group("route");
    g.throughput(Throughput::Elements(1));
    for (name, text, app) in router_cases() {
        let owned = inbound(&text);
        let msg = owned.view();
        let found = table.first_match(&msg).map(|(r, _)| r.app.to_string());
        assert_eq!(found.unwrap_or_else(|| "default".into()), app, "{text:?}");
        g.bench_function(name, |b| {
            b.iter(|| table.first_match(black_box(&msg)).is_some())
        });
    }
    g.finish();
}

fn sms(c: &mut Criterion) {
    let long = "Reminder: your clinic visit is on Monday 14 at 09:30 {Room 4}. Bring your card \
                and the form [B-12]; fees are ~5€ or 20,000 UGX. Reply YES to confirm, NO to \
                cancel, or call +256 772 123 456 between 8:00 and 17:00. Directions: take the \
                main road past the market | ask at the gate. Thank you!! ^_^ See you soon.";
    let texts = [
        (
            "short_gsm",
            "Your code is 482913. It expires in 10 minutes.".to_owned(),
        ),
        ("gsm_300_ext", long.chars().take(300).collect::<String>()),
        (
            "ucs2",
            "Здравствуйте! Ваш код подтверждения 482913. Он действителен 10 минут.".to_owned(),
        ),
        (
            "emoji",
            "Happy birthday Ada! 🎉🎂 Have a wonderful day 😀👍 from all of us".to_owned(),
        ),
    ];
    assert_eq!(texts[1].1.chars().count(), 300);
    let mut g = c.benchmark_group("sms");
    g.throughput(Throughput::Elements(1));
    for (name, text) in &texts {
        g.bench_function(*name, |b| b.iter(|| sms::analyze(black_box(text))));
    }
    g.finish();
}

/// A bus with one 4-partition topic and a group reading it (marking each
/// record done), counting what it read.
struct BusBench {
    rt: tokio::runtime::Runtime,
    bus: Bus,
    read: Arc<std::sync::atomic::AtomicU64>,
    _dir: Option<tempfile::TempDir>,
}

impl BusBench {
    fn new(fsync: Option<config::Fsync>) -> BusBench {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        let dir = fsync.map(|_| tempfile::tempdir().unwrap());
        let mut cfg = config::Kafka::with_mode(config::KafkaMode::Embedded);
        if let (Some(dir), Some(fsync)) = (&dir, fsync) {
            cfg.data_dir = Some(dir.path().to_owned());
            cfg.fsync = fsync;
            cfg.retention = std::time::Duration::ZERO;
        }
        let topic = TopicSpec {
            name: "t".into(),
            partitions: 4,
            replication: 1,
            compacted: false,
            retention: None,
        };
        let read = Arc::new(std::sync::atomic::AtomicU64::new(0));
        let bus = rt.block_on(async {
            let bus = Bus::connect(&cfg, &[topic]).await.unwrap();
            let mut consumer = bus.consumer("g", &["t"]).unwrap();
            let read = read.clone();
            tokio::spawn(async move {
                let committer = consumer.committer();
                while let Ok(r) = consumer.recv().await {
                    committer.done(&r.topic, r.partition, r.offset).unwrap();
                    read.fetch_add(1, std::sync::atomic::Ordering::Release);
                }
            });
            bus
        });
        BusBench {
            rt,
            bus,
            read,
            _dir: dir,
        }
    }

    /// Write `n` records, awaiting acknowledgements `window` at a time, and
    /// wait until the group has read them.
    fn run(&self, n: u64, window: u64) -> std::time::Duration {
        let producer = self.bus.producer().unwrap();
        let topic: Arc<str> = Arc::from("t");
        let payload = Bytes::from(vec![b'x'; 200]);
        let target = self.read.load(std::sync::atomic::Ordering::Acquire) + n;
        self.rt.block_on(async {
            let started = std::time::Instant::now();
            let mut acks = AckGroup::new();
            for i in 0..n {
                let key = Bytes::from(format!("+2567721{:05}", i % 10_000));
                let record = Produce::new(topic.clone(), key, payload.clone());
                let group = producer.tracks_acks().then_some(&acks);
                producer.send_in(record, group).await.unwrap();
                if i % window == window - 1 {
                    acks.wait().await.unwrap();
                    acks = AckGroup::new();
                }
            }
            acks.wait().await.unwrap();
            while self.read.load(std::sync::atomic::Ordering::Acquire) < target {
                tokio::time::sleep(std::time::Duration::from_micros(200)).await;
            }
            started.elapsed()
        })
    }
}

fn bus(c: &mut Criterion) {
    let mut g = c.benchmark_group("bus");
    g.throughput(Throughput::Elements(1));
    for (name, fsync, window) in [
        ("in_memory", None, 1000),
        ("durable_fsync_always", Some(config::Fsync::Always), 1000),
        (
            "durable_fsync_interval",
            Some(config::Fsync::Interval),
            1000,
        ),
        // One record at a time, each acknowledged before the next: what a
        // lone webhook request waits for (an fsync).
        (
            "durable_fsync_always_one_by_one",
            Some(config::Fsync::Always),
            1,
        ),
    ] {
        let bench = BusBench::new(fsync);
        g.bench_function(name, |b| b.iter_custom(|n| bench.run(n, window)));
    }
    g.finish();
}

criterion_group!(
    benches,
    codec,
    router,
    router_apps,
    router_threads,
    route,
    batch,
    ids,
    sms,
    bus
);
criterion_main!(benches);
