//! Nothing is lost silently on the data path: a failing app's message is
//! dead-lettered and replayable, a consumer error retrying cannot fix stops
//! the stage (and `/readyz` fails), and shutdown during a provider's
//! back-off leaves the message to be sent after a restart.
//!
//! The Kafka cases run on a librdkafka mock cluster this test owns (so it
//! can inject broker errors), reached as `kafka: {mode: kafka}` like a real
//! cluster would be.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use futures::FutureExt;
use rdkafka::mocking::MockCluster;
use rdkafka::types::RDKafkaRespErr;
use smsflow::apps::{App, AppError, Context};
use smsflow::backends::sent::State;
use smsflow::bus::{Bus, BusError};
use smsflow::config::{Kafka, KafkaMode, Pipeline, Sending};
use smsflow::message::DeliveryStatus;
use smsflow::schema;
use smsflow::stage::{self, StageContext, StageControl};
use smsflow::topology::Topology;

mod common;

use common::sink::{next_entry, Sink};

type Mock = MockCluster<'static, rdkafka::producer::DefaultProducerContext>;

/// `yaml` on a mock cluster reached as a real one would be, `group` its
/// consumer groups' prefix, with the pipeline's topics made (the mock
/// cluster does not create topics on request).
fn on_mock(yaml: &str, cluster: &Mock, group: &str) -> Pipeline {
    let mut p = common::on_broker(
        common::pipeline_from(yaml, KafkaMode::Embedded),
        &cluster.bootstrap_servers(),
        group,
    );
    // The mock cluster makes a join wait for the session timeout.
    p.kafka
        .config
        .insert("session.timeout.ms".into(), "6000".into());
    for t in Topology::new(p.clone()).unwrap().topics() {
        cluster.create_topic(&t.name, t.partitions, 1).unwrap();
    }
    p
}

/// Fails every message while `broken`; answers `fixed: <rest>` after.
struct Flaky {
    broken: AtomicBool,
}

impl App for Flaky {
    fn handle(&self, cx: &mut Context<'_>) -> Result<(), AppError> {
        if self.broken.load(Ordering::SeqCst) {
            return Err(AppError::Failed("a bug in the app".into()));
        }
        let rest = cx.message().rest.clone().unwrap_or_default();
        cx.respond(format!("fixed: {rest}"));
        Ok(())
    }
}

const FLAKY: &str = "
backends:
  - type: tester
routes:
  - app: flaky
    keyword: flaky
apps:
  - name: flaky
    type: external
";

/// Before: the app's error was counted and the message committed with no
/// trace. After: it is on `sms.dlq` (kind `app`), and `smsflow dlq replay`
/// brings it back to the app once the app is fixed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_app_is_dead_lettered_and_replayable() {
    let cluster = MockCluster::new(1).unwrap();
    let p = on_mock(FLAKY, &cluster, "noloss-app");
    let flaky = Arc::new(Flaky {
        broken: AtomicBool::new(true),
    });
    let running = Topology::new(p.clone())
        .unwrap()
        .with_app("flaky", flaky.clone())
        .start(None, false)
        .await
        .unwrap();
    let tester = running.tester(None).unwrap();
    let mut replies = tester.subscribe();
    let mut dlq = running
        .bus()
        .consumer("test.noloss.dlq", &["sms.dlq"])
        .unwrap();
    tester
        .receive(Some("+15550101"), Some("flaky boom"))
        .await
        .unwrap();

    let r = tokio::time::timeout(Duration::from_secs(60), dlq.recv())
        .await
        .expect("a dead letter within 60 s")
        .unwrap();
    let header =
        |name: &str| String::from_utf8_lossy(r.header(name).unwrap_or_default()).into_owned();
    assert_eq!(header("smsflow.error.kind"), "app");
    assert_eq!(header("smsflow.stage"), "app:flaky");
    assert_eq!(header("smsflow.source.topic"), "sms.app.flaky");
    assert!(header("smsflow.error.message").contains("a bug in the app"));
    let routed = schema::routed().decode(&r.payload).unwrap();
    assert_eq!(routed.message.text, "flaky boom");

    // Fixed: the replay hands the same message to the app again.
    flaky.broken.store(false, Ordering::SeqCst);
    let filter = smsflow::cli::dlq::Filter {
        kind: Some("app".into()),
        ..Default::default()
    };
    assert_eq!(smsflow::cli::dlq::replay(&p, &filter).await.unwrap(), 1);
    let reply = tokio::time::timeout(Duration::from_secs(60), replies.recv())
        .await
        .expect("a reply within 60 s")
        .unwrap();
    assert_eq!(reply.text, "fixed: boom");
    assert_eq!(reply.connection.identity, "+15550101");
    // Replayed once: a second replay finds nothing new.
    assert_eq!(smsflow::cli::dlq::replay(&p, &filter).await.unwrap(), 0);
    running.shutdown().await.unwrap();
}

/// Before: a consumer error was retried every 200 ms forever, whatever it
/// was, and `/readyz` kept answering 200. After: an authorization failure
/// stops the stage with the cause, the process sees a failed stage, and
/// `/readyz` answers 503.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fatal_consumer_error_stops_the_stage_and_readyz_fails() {
    let cluster = MockCluster::new(1).unwrap();
    let yaml = format!("http:\n  listen: 127.0.0.1:0\n{FLAKY}");
    let p = on_mock(&yaml, &cluster, "noloss-fatal");
    // The broker refuses this process its inbound topic.
    cluster
        .topic_error(
            "sms.inbound",
            RDKafkaRespErr::RD_KAFKA_RESP_ERR_TOPIC_AUTHORIZATION_FAILED,
        )
        .unwrap();
    let mut running = Topology::new(p)
        .unwrap()
        .with_app(
            "flaky",
            Arc::new(Flaky {
                broken: AtomicBool::new(false),
            }),
        )
        .start(None, true)
        .await
        .unwrap();
    let readyz = format!("http://{}/readyz", running.http_addr().unwrap());

    let failed = tokio::time::timeout(Duration::from_secs(60), running.failed())
        .await
        .expect("the stage stops within 60 s");
    assert_eq!(failed, "router-in");
    let res = reqwest::get(&readyz).await.unwrap();
    assert_eq!(res.status().as_u16(), 503);
    let body = res.text().await.unwrap();
    assert!(body.contains("a stage stopped on an error"), "{body}");

    let stopped = running.shutdown().await.unwrap_err().to_string();
    assert!(stopped.contains("router-in"), "{stopped}");
    assert!(stopped.contains("authorization"), "{stopped}");
    assert!(
        stopped.contains("not authorized"),
        "the cause is named: {stopped}"
    );
}

/// The same classification, on one stage run directly: an unknown topic
/// (the broker does not create topics on demand) ends `stage::run` with a
/// fatal error instead of retrying.
async fn an_unknown_topic_stops_the_stage(brokers: &str) {
    let mut cfg = Kafka::with_mode(KafkaMode::Kafka);
    cfg.brokers = Some(brokers.to_owned());
    let bus = Bus::connect(&cfg, &[]).await.unwrap();
    let consumer = bus.consumer("noloss.unknown", &["no.such.topic"]).unwrap();
    let producer = bus.producer().unwrap();
    let ctx = StageContext {
        name: Arc::from("reader"),
        dlq: Arc::from("sms.dlq"),
    };
    let run = stage::run(ctx, consumer, producer, Nothing, StageControl::default());
    let result = tokio::time::timeout(Duration::from_secs(60), run)
        .await
        .expect("the stage stops within 60 s");
    match result {
        Err(e @ BusError::Fatal { .. }) => {
            assert!(e.to_string().contains("does not exist"), "{e}")
        }
        other => panic!("expected a fatal error, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unknown_topic_stops_the_stage_on_the_mock_cluster() {
    let cluster = MockCluster::new(1).unwrap();
    an_unknown_topic_stops_the_stage(&cluster.bootstrap_servers()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unknown_topic_stops_the_stage_on_a_real_broker() {
    require_tools!(common::Tool::Tansu);
    let broker = common::broker::Broker::start();
    an_unknown_topic_stops_the_stage(&broker.brokers()).await;
}

/// A handler for stages that never get a record.
struct Nothing;
impl stage::Handler for Nothing {
    async fn handle(
        &mut self,
        record: &smsflow::bus::Record,
        _: &mut stage::Output,
    ) -> Result<(), stage::HandleError> {
        panic!("no record expected, got {record:?}")
    }
}

/// Before: the back-off slept on through shutdown (the default retries
/// outlast `shutdown_timeout`), and after a restart the message, recorded
/// `sending`, was reported failed ("outcome unknown"). After: shutdown ends
/// the back-off at once, the sent-log says `retry`, the record is not marked
/// done, and the restarted sink sends it: at least once, no `failed` event.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_during_back_off_returns_at_once_and_the_message_is_sent_after_restart() {
    // Tries an hour apart: only shutdown can end the wait.
    let sink = Sink::new(Sending {
        attempts: 10,
        backoff: Duration::from_secs(3600),
        max_backoff: Duration::from_secs(3600),
        ..Sending::default()
    })
    .await;
    let mut sent_log = sink
        .bus
        .consumer("test.sent", &["sms.send.gw.sent"])
        .unwrap();
    let mut events = sink.bus.consumer("test.events", &["sms.events"]).unwrap();
    let (task, control) = sink.start();
    let msg = sink.send("+15550123").await;
    tokio::time::timeout(Duration::from_secs(20), sink.gateway.called.notified())
        .await
        .expect("the first try within 20 s");
    // The first try failed; the sink is in its hour of back-off.
    let sending = next_entry(&mut sent_log).await;
    assert_eq!(sending.state, State::Sending);

    control.drain.cancel();
    let stopped = tokio::time::timeout(Duration::from_secs(5), task)
        .await
        .expect("shutdown ends the back-off (within a 5 s shutdown_timeout)")
        .unwrap();
    match stopped {
        Err(BusError::Interrupted(why)) => assert!(why.contains("back-off"), "{why}"),
        other => panic!("expected the record left unfinished, got {other:?}"),
    }
    assert_eq!(sink.gateway.calls.load(Ordering::SeqCst), 1);
    let retry = next_entry(&mut sent_log).await;
    assert_eq!(retry.state, State::Retry);
    assert!(retry.error.unwrap().contains("HTTP 503"));

    // Restarted (the same group: the record was not marked done), with the
    // provider back: sent, and the only event says so.
    sink.gateway.accept.store(true, Ordering::SeqCst);
    let (task, control) = sink.start();
    let event = common::next_event(&mut events).await;
    assert_eq!(event.message_id, msg.id);
    assert_eq!(event.status, DeliveryStatus::Sent);
    assert_eq!(sink.gateway.calls.load(Ordering::SeqCst), 2);
    control.drain.cancel();
    tokio::time::timeout(Duration::from_secs(5), task)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert!(events.recv().now_or_never().is_none(), "one event only");
}

/// Shutdown also ends a wait for the rate limit: the waiting message is not
/// handed over and not marked done, and the restarted sink sends it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_during_a_rate_limit_wait_leaves_the_message_for_the_restart() {
    // One message an hour: the second waits.
    let sink = Sink::new(Sending {
        rate: Some(1.0 / 3600.0),
        ..Sending::default()
    })
    .await;
    sink.gateway.accept.store(true, Ordering::SeqCst);
    let mut events = sink.bus.consumer("test.events", &["sms.events"]).unwrap();
    let (task, control) = sink.start();
    let first = sink.send("+15550201").await;
    let second = sink.send("+15550202").await;
    // Delivery tasks race for the limiter: either message may be the one
    // that goes out; the other waits an hour.
    let sent = common::next_event(&mut events).await.message_id;
    assert!(sent == first.id || sent == second.id, "{sent}");
    let waiting = if sent == first.id { &second } else { &first };

    control.drain.cancel();
    let stopped = tokio::time::timeout(Duration::from_secs(5), task)
        .await
        .expect("shutdown ends the wait (within a 5 s shutdown_timeout)")
        .unwrap();
    // Interrupted in the wait, or drained before the stage took the record
    // in: either way not marked done.
    match stopped {
        Err(BusError::Interrupted(why)) => assert!(why.contains("rate limit"), "{why}"),
        Ok(()) => {}
        other => panic!("expected the record left unfinished, got {other:?}"),
    }
    assert_eq!(sink.gateway.calls.load(Ordering::SeqCst), 1);

    // A new limiter lets one message through at once: the waiting one. When
    // the waiting record came first on the partition, the sent one is read
    // again too: the sent-log repeats its event without sending it again.
    let (task, control) = sink.start();
    loop {
        let event = common::next_event(&mut events).await;
        assert_eq!(event.status, DeliveryStatus::Sent, "{event:?}");
        if event.message_id == waiting.id {
            break;
        }
        assert_eq!(event.message_id, sent, "only a repeat of the sent one");
    }
    assert_eq!(sink.gateway.calls.load(Ordering::SeqCst), 2);
    control.drain.cancel();
    tokio::time::timeout(Duration::from_secs(5), task)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
}

/// Before: a message between tries was `sending` in the sent-log, so after a
/// crash (no shutdown) during the back-off it was reported failed, "outcome
/// unknown", though the provider had refused it. After: the sent-log says
/// `retry` during the back-off, and the restarted sink sends it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crash_during_back_off_sends_the_message_after_the_restart() {
    let dir = tempfile::tempdir().unwrap();
    let kafka = Kafka {
        data_dir: Some(dir.path().to_owned()),
        ..Kafka::with_mode(KafkaMode::Embedded)
    };
    let settings = Sending {
        attempts: 10,
        backoff: Duration::from_secs(3600),
        max_backoff: Duration::from_secs(3600),
        ..Sending::default()
    };
    // The first process, on a runtime of its own: dropping the runtime in
    // the middle of the back-off is the crash (every task gone at once, the
    // sink's delivery tasks and the bus's writer too).
    let (first_kafka, first_settings) = (kafka.clone(), settings.clone());
    let msg = tokio::task::spawn_blocking(move || {
        let rt = tokio::runtime::Runtime::new().unwrap();
        let msg = rt.block_on(async move {
            let sink = Sink::on(first_kafka, first_settings).await;
            let mut sent_log = sink
                .bus
                .consumer("test.sent", &["sms.send.gw.sent"])
                .unwrap();
            let (_task, _control) = sink.start();
            let msg = sink.send("+15550124").await;
            assert_eq!(next_entry(&mut sent_log).await.state, State::Sending);
            let between = next_entry(&mut sent_log).await;
            assert_eq!(between.state, State::Retry, "{between:?}");
            assert!(between.error.unwrap().contains("HTTP 503"));
            msg
        });
        rt.shutdown_timeout(Duration::from_secs(5));
        msg
    })
    .await
    .unwrap();

    // A new process on the same directory, the provider back.
    let sink = Sink::on(kafka, settings).await;
    sink.gateway.accept.store(true, Ordering::SeqCst);
    let mut events = sink.bus.consumer("test.events", &["sms.events"]).unwrap();
    let (task, control) = sink.start();
    let event = common::next_event(&mut events).await;
    assert_eq!(
        (event.message_id.as_str(), event.status),
        (msg.id.as_str(), DeliveryStatus::Sent),
        "{event:?}"
    );
    assert_eq!(sink.gateway.calls.load(Ordering::SeqCst), 1);
    control.drain.cancel();
    tokio::time::timeout(Duration::from_secs(5), task)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
}
