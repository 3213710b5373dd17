//! The durable embedded bus (`kafka: {mode: embedded, data_dir: ...}`)
//! through the interface every stage uses: produce, consume, commit; a
//! restart resumes each group at its committed offset; retention; a process
//! killed with SIGKILL in the middle of writing loses nothing it
//! acknowledged; a pipeline's tables are read back after a restart; and
//! the configuration's errors.

use std::collections::{BTreeMap, HashMap};
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use smsflow::bus::{Bus, Produce, Record, TopicSpec};
use smsflow::config::{self, Fsync, KafkaMode};
use smsflow::topology::load_str;

mod common;

fn topics() -> Vec<TopicSpec> {
    vec![TopicSpec {
        name: "t".into(),
        partitions: 4,
        replication: 1,
        compacted: false,
        retention: None,
    }]
}

fn durable(dir: &Path) -> config::Kafka {
    config::Kafka {
        data_dir: Some(dir.to_owned()),
        ..config::Kafka::with_mode(KafkaMode::Embedded)
    }
}

fn rec(key: &str, n: u64) -> Produce {
    Produce::new(Arc::from("t"), key.to_owned(), n.to_string())
}

fn n(r: &Record) -> u64 {
    std::str::from_utf8(&r.payload).unwrap().parse().unwrap()
}

/// Drop every handle on the bus and wait until its database is closed.
async fn close(bus: Bus) {
    let Bus::Durable(d) = &bus else {
        panic!("not the durable bus")
    };
    let closed = d.closed();
    drop(bus);
    closed.await;
}

async fn recv(c: &mut smsflow::bus::Consumer) -> Record {
    tokio::time::timeout(Duration::from_secs(20), c.recv())
        .await
        .expect("a record within 20 s")
        .unwrap()
}

#[tokio::test]
async fn produce_consume_commit_and_resume_after_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = durable(dir.path());
    let bus = Bus::connect(&cfg, &topics()).await.unwrap();
    assert!(bus.durable());
    let producer = bus.producer().unwrap();
    assert!(producer.tracks_acks(), "acknowledged only once committed");
    let mut c = bus.consumer("g", &["t"]).unwrap();
    for i in 0..100 {
        producer
            .send_and_wait(rec(&format!("k{}", i % 7), i))
            .await
            .unwrap();
    }
    let committer = c.committer();
    let mut per_key: HashMap<String, Vec<u64>> = HashMap::new();
    for _ in 0..60 {
        let r = recv(&mut c).await;
        per_key
            .entry(r.key_str().to_owned())
            .or_default()
            .push(n(&r));
        committer.done(&r.topic, r.partition, r.offset).unwrap();
    }
    // A clean stop writes what was marked done.
    c.close().await.unwrap();
    drop((committer, producer));
    close(bus).await;

    let bus = Bus::connect(&cfg, &topics()).await.unwrap();
    let mut c = bus.consumer("g", &["t"]).unwrap();
    for _ in 60..100 {
        let r = recv(&mut c).await;
        per_key
            .entry(r.key_str().to_owned())
            .or_default()
            .push(n(&r));
    }
    assert!(
        c.recv_drain(Duration::ZERO).await.is_none(),
        "nothing repeated"
    );
    // Every record exactly once, in order per key.
    for (key, seen) in &per_key {
        let k: u64 = key[1..].parse().unwrap();
        let expected: Vec<u64> = (0..100).filter(|i| i % 7 == k).collect();
        assert_eq!(seen, &expected, "key {key}");
    }
}

#[tokio::test]
async fn retention_deletes_records_every_group_is_done_with_and_nothing_else() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config::Kafka {
        retention: Duration::ZERO,
        ..durable(dir.path())
    };
    let bus = Bus::connect(&cfg, &topics()).await.unwrap();
    let Bus::Durable(d) = &bus else { panic!() };
    let producer = bus.producer().unwrap();
    let mut fast = bus.consumer("fast", &["t"]).unwrap();
    let mut slow = bus.consumer("slow", &["t"]).unwrap();
    for i in 0..20 {
        producer.send_and_wait(rec("k", i)).await.unwrap();
    }
    for _ in 0..20 {
        let r = recv(&mut fast).await;
        fast.committer()
            .done(&r.topic, r.partition, r.offset)
            .unwrap();
    }
    for _ in 0..5 {
        let r = recv(&mut slow).await;
        slow.committer()
            .done(&r.topic, r.partition, r.offset)
            .unwrap();
    }
    assert_eq!(d.sweep().await.unwrap(), 5, "slow still needs 5..20");
    assert_eq!(d.depth("t").unwrap(), 15);
    assert_eq!(n(&recv(&mut slow).await), 5);
}

/// Keys the child process writes, each with its own sequence.
const WRITERS: u64 = 8;
const CHILD: &str = "SMSFLOW_DURABLE_BUS_CHILD";

/// The child: write sequences under `WRITERS` keys as fast as the bus
/// acknowledges, printing each acknowledged record; a group reads them
/// and prints, after each flush, what it had marked done.
async fn write_until_killed(dir: &str) {
    let cfg = durable(Path::new(dir));
    let bus = Bus::connect(&cfg, &topics()).await.unwrap();
    let mut c = bus.consumer("g", &["t"]).unwrap();
    let committer = c.committer();
    let Bus::Durable(d) = bus.clone() else {
        panic!()
    };
    tokio::spawn(async move {
        let mut done: BTreeMap<String, u64> = BTreeMap::new();
        let mut since_flush = 0;
        while let Ok(r) = c.recv().await {
            committer.done(&r.topic, r.partition, r.offset).unwrap();
            done.insert(r.key_str().to_owned(), n(&r));
            since_flush += 1;
            if since_flush == 100 {
                d.flush().await.unwrap();
                for (k, v) in &done {
                    println!("flushed {k} {v}");
                }
                since_flush = 0;
            }
        }
    });
    let mut tasks = Vec::new();
    for w in 0..WRITERS {
        let producer = bus.producer().unwrap();
        tasks.push(tokio::spawn(async move {
            // Big enough that a commit takes a while: the kill lands in one.
            let filler = "x".repeat(2000);
            for i in 0.. {
                let mut r = rec(&format!("k{w}"), i);
                r.headers.push(("filler".into(), filler.clone().into()));
                producer.send_and_wait(r).await.unwrap();
                println!("acked k{w} {i}");
            }
        }));
    }
    futures::future::join_all(tasks).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sigkill_mid_load_loses_nothing_acknowledged() {
    if let Ok(dir) = std::env::var(CHILD) {
        // This process is the child the test below kills.
        return write_until_killed(&dir).await;
    }
    let dir = tempfile::tempdir().unwrap();
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args([
            "sigkill_mid_load_loses_nothing_acknowledged",
            "--exact",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(CHILD, dir.path())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let mut acked: HashMap<String, u64> = HashMap::new();
    let mut flushed: HashMap<String, u64> = HashMap::new();
    let mut total = 0;
    for line in lines {
        let line = line.unwrap();
        let words: Vec<&str> = line.split_whitespace().collect();
        match words[..] {
            ["acked", key, i] => {
                acked.insert(key.to_owned(), i.parse().unwrap());
                total += 1;
            }
            ["flushed", key, i] => {
                flushed.insert(key.to_owned(), i.parse().unwrap());
            }
            _ => {}
        }
        if total == 1000 {
            // Meanwhile a second process on the same directory is refused.
            let Err(e) = Bus::connect(&durable(dir.path()), &topics()).await else {
                panic!("a second process opened the bus in use");
            };
            assert!(e.to_string().contains("in use by another process"), "{e}");
        }
        if total == 3000 {
            // SIGKILL: no destructor, no last commit.
            child.kill().unwrap();
            break;
        }
    }
    child.wait().unwrap();
    assert_eq!(total, 3000, "the child stopped before the kill");
    assert!(
        !flushed.is_empty(),
        "the group read and flushed before the kill"
    );

    // Reopened (redb rolls back whatever commit the kill tore).
    let bus = Bus::connect(&durable(dir.path()), &topics()).await.unwrap();
    let Bus::Durable(d) = &bus else { panic!() };
    let mut reader = d.reader("t").unwrap();
    let mut held: HashMap<String, Vec<u64>> = HashMap::new();
    while let Some(r) = reader.restore_next() {
        let r = r.unwrap();
        held.entry(r.key_str().to_owned()).or_default().push(n(&r));
    }
    for (key, last) in &acked {
        let seq = held.get(key).map_or(&[][..], Vec::as_slice);
        // Every acknowledged record, in order, no gap; maybe one more
        // committed whose acknowledgement the kill cut off.
        assert!(
            seq.len() as u64 > *last,
            "{key}: acked up to {last}, holds {}",
            seq.len()
        );
        assert!(
            seq.iter().enumerate().all(|(i, v)| i as u64 == *v),
            "{key}: {seq:?}"
        );
    }
    // The group resumes where it had marked done: at-least-once, and not
    // before what it had flushed.
    let mut c = bus.consumer("g", &["t"]).unwrap();
    let mut first: HashMap<String, u64> = HashMap::new();
    while let Some(r) = c.recv_drain(Duration::ZERO).await {
        let r = r.unwrap();
        first.entry(r.key_str().to_owned()).or_insert(n(&r));
    }
    for (key, done) in &flushed {
        let resumed = first
            .get(key)
            .copied()
            .unwrap_or(held.get(key).map_or(0, Vec::len) as u64);
        assert!(
            resumed > *done,
            "{key}: flushed done {done}, resumed at {resumed}"
        );
    }
}

#[tokio::test]
async fn a_file_that_is_not_a_bus_is_named_not_overwritten() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("bus.redb");
    std::fs::write(&file, b"these are not the records you are looking for").unwrap();
    let Err(e) = Bus::connect(&durable(dir.path()), &topics()).await else {
        panic!("opened a file that is not a bus");
    };
    assert!(
        e.to_string()
            .contains(&format!("cannot open {}", file.display())),
        "{e}"
    );
    assert_eq!(
        std::fs::read(&file).unwrap(),
        b"these are not the records you are looking for"
    );
}

fn errors(yaml: &str) -> Vec<String> {
    let text = format!(
        "{yaml}\nbackends:\n  - type: tester\nroutes:\n  - app: echo\napps:\n  - type: echo\n"
    );
    match load_str(&text, &|_| None) {
        Ok(_) => Vec::new(),
        Err(e) => e.iter().map(|e| e.to_string()).collect(),
    }
}

#[test]
fn the_durable_bus_is_configured_under_kafka() {
    let dir = tempfile::tempdir().unwrap();
    let text = format!(
        "kafka:\n  mode: embedded\n  data_dir: {}\n  fsync: interval\n  fsync_interval: 200ms\n  retention: 7d\n  retention_records: 1000\nbackends:\n  - type: tester\nroutes:\n  - app: echo\napps:\n  - type: echo\n",
        dir.path().join("bus").display()
    );
    let p = load_str(&text, &|_| None).unwrap();
    assert_eq!(
        p.kafka.data_dir.as_deref(),
        Some(dir.path().join("bus").as_path())
    );
    assert_eq!(p.kafka.fsync, Fsync::Interval);
    assert_eq!(p.kafka.fsync_interval, Duration::from_millis(200));
    assert_eq!(p.kafka.retention, Duration::from_secs(7 * 86400));
    assert_eq!(p.kafka.retention_records, Some(1000));
    // The bare string stays the in-memory bus.
    let p = load_str("kafka: embedded\nbackends:\n  - type: tester\nroutes:\n  - app: echo\napps:\n  - type: echo\n", &|_| None).unwrap();
    assert_eq!(
        (p.kafka.mode, p.kafka.data_dir),
        (KafkaMode::Embedded, None)
    );
    assert_eq!(p.kafka.fsync, Fsync::Always);
}

#[test]
fn bad_durable_settings_are_named() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("a-file");
    std::fs::write(&file, "").unwrap();
    let cases = [
        (
            format!("kafka:\n  mode: embedded\n  data_dir: {}", file.display()),
            "is not a directory",
        ),
        (
            format!(
                "kafka:\n  mode: kafka\n  brokers: b:9092\n  data_dir: {}",
                dir.path().display()
            ),
            "only used with `mode: embedded`",
        ),
        (
            "kafka:\n  mode: embedded\n  fsync: interval".into(),
            "needs `mode: embedded` and a `data_dir`",
        ),
        (
            "kafka:\n  mode: embedded\n  retention: 1d".into(),
            "needs `mode: embedded` and a `data_dir`",
        ),
        (
            format!(
                "kafka:\n  mode: embedded\n  data_dir: {}\n  fsync: sometimes",
                dir.path().display()
            ),
            "sometimes",
        ),
        (
            format!(
                "kafka:\n  mode: embedded\n  data_dir: {}\n  retention: forever",
                dir.path().display()
            ),
            "forever",
        ),
        (
            format!(
                "kafka:\n  mode: embedded\n  data_dir: {}\n  fsync: interval\n  fsync_interval: 0s",
                dir.path().display()
            ),
            "expected a positive interval",
        ),
        ("kafka:\n  mode: embedded\n  data_dir: ''".into(), "empty"),
    ];
    for (yaml, words) in cases {
        let e = errors(&yaml);
        assert_eq!(e.len(), 1, "{yaml}: {e:?}");
        assert!(e[0].contains(words), "{yaml}: {words:?} not in {e:?}");
    }
}

#[cfg(target_os = "linux")]
#[test]
fn a_data_dir_that_cannot_be_written_is_refused() {
    // /proc refuses new files even to root (tests may run as root).
    let e = errors("kafka:\n  mode: embedded\n  data_dir: /proc/smsflow/bus");
    assert!(
        e.len() == 1 && e[0].contains("cannot write in /proc") && e[0].contains("must be writable"),
        "{e:?}"
    );
}

/// The demo pipeline on the durable bus in `dir`, its HTTP server on a free port.
fn demo_on(dir: &Path) -> config::Pipeline {
    let text = std::fs::read_to_string(common::root().join("pipelines/demo.yaml")).unwrap();
    let mut p = common::pipeline_from(&text, KafkaMode::Embedded);
    p.kafka.data_dir = Some(dir.to_owned());
    p
}

async fn start(dir: &Path) -> smsflow::topology::Running {
    smsflow::topology::Topology::new(demo_on(dir))
        .unwrap()
        .start(None, true)
        .await
        .unwrap()
}

/// Shut the pipeline down and wait until its bus is closed: nothing keeps
/// a handle on it.
async fn stop(running: smsflow::topology::Running) {
    let Bus::Durable(d) = running.bus() else {
        panic!("not the durable bus")
    };
    let closed = d.closed();
    running.shutdown().await.unwrap();
    tokio::time::timeout(Duration::from_secs(20), closed)
        .await
        .expect("the bus closes after the shutdown");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pipelines_tables_are_read_back_after_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let running = start(dir.path()).await;
    let contacts = running.tables().contacts.clone();
    let ada = smsflow::state::contacts::ContactBook::new_contact(
        "Ada",
        vec![smsflow::message::Connection::new(
            "message_tester",
            "+256772000001",
        )],
    );
    let producer = running.bus().producer().unwrap();
    for record in contacts.save(ada.clone()).unwrap() {
        producer.send_and_wait(record).await.unwrap();
    }
    drop((producer, contacts));
    stop(running).await;

    let running = start(dir.path()).await;
    let back = running.tables().contacts.get(&ada.id).expect("Ada is back");
    assert_eq!(back.name, "Ada");
    stop(running).await;
}

/// Post a message from +15550001 with provider id `id` to the `gw` backend.
async fn mo(running: &smsflow::topology::Running, id: &str, text: &str) -> u16 {
    let url = format!("http://{}/backend/gw/", running.http_addr().unwrap());
    let form = [("identity", "+15550001"), ("text", text), ("id", id)];
    let answer = reqwest::Client::new().post(url).form(&form).send().await;
    answer.unwrap().status().as_u16()
}

/// A provider that sends a message again after a restart (smsflow was killed
/// after storing it, before answering 200: the dedupe window's memory is
/// gone) gets its reply once: the message id derives from the provider's
/// id, the reply's from the message's, and the sink's sent-log (read back
/// from the bus) knows that reply went out.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_provider_repeat_after_a_restart_is_answered_once() {
    use axum::routing::post;
    use std::sync::Mutex;

    let sent: Arc<Mutex<Vec<String>>> = Arc::default();
    let record = sent.clone();
    let gateway = axum::Router::new().route(
        "/send",
        post(
            move |axum::Json(body): axum::Json<serde_json::Value>| async move {
                record
                    .lock()
                    .unwrap()
                    .push(body["text"].as_str().unwrap_or_default().to_owned());
                axum::Json(serde_json::json!({"id": "gw-1"}))
            },
        ),
    );
    let url = format!("http://{}/send", common::serve(gateway).await);
    let dir = tempfile::tempdir().unwrap();
    let yaml = format!(
        "http:\n  listen: ${{SMSFLOW_LISTEN}}\nbackends:\n  - type: http\n    name: gw\n    url: {url}\n    send: {{concurrency: 1}}\n    receive: {{insecure: true}}\nroutes:\n  - app: echo\napps:\n  - type: echo\n"
    );
    let start = || async {
        let mut p = common::pipeline_from(&yaml, KafkaMode::Embedded);
        p.kafka.data_dir = Some(dir.path().to_owned());
        smsflow::topology::Topology::new(p)
            .unwrap()
            .start(None, true)
            .await
            .unwrap()
    };
    let replies = |n: usize| {
        let sent = sent.clone();
        async move {
            let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
            while sent.lock().unwrap().len() < n {
                assert!(
                    tokio::time::Instant::now() < deadline,
                    "{n} replies within 20 s"
                );
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
    };

    let running = start().await;
    assert_eq!(mo(&running, "mo-1", "echo once").await, 200);
    replies(1).await;
    stop(running).await;

    // The same provider message again, then a new one from the same phone
    // (the same partition, one delivery at a time: the repeat comes first).
    let running = start().await;
    assert_eq!(mo(&running, "mo-1", "echo once").await, 200);
    assert_eq!(mo(&running, "mo-2", "echo twice").await, 200);
    replies(2).await;
    stop(running).await;
    assert_eq!(*sent.lock().unwrap(), ["once", "twice"]);
}
