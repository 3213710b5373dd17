//! The embedded bus, the tester backend and the echo app: 3,000 inbound
//! messages stamped 200 ms apart from [`T0`] (ten minutes: windows open
//! and close), two thirds of them `echo ...` (answered), the rest `hi ...`
//! (no route, no answer). The `sms.stats` records summed equal the counts
//! made here from the inbound messages and from the replies' events read
//! back from `sms.events`, window by window; then an inbound message two
//! days old is late: counted in the metric, in no window.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use smsflow::bus::Produce;
use smsflow::config::KafkaMode;
use smsflow::message::{Connection, InboundMessage, StatsDimension, StatsWindow};
use smsflow::topology::Topology;

use super::{common, differences, expect, expect_event, Counts, Latest, T0};

const YAML: &str = r#"
kafka: embedded
topics:
  inbound: sms.inbound.embedded
backends:
  - type: tester
routes:
  - app: echo
apps:
  - type: echo
analytics:
  grace: 5m
  flush: 100ms
"#;

const MESSAGES: i64 = 3_000;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stats_summed_over_partitions_equal_the_counts_window_by_window() {
    let p = common::pipeline_from(YAML, KafkaMode::Embedded);
    let inbound_topic: Arc<str> = Arc::from(p.topics.inbound.as_str());
    let running = Topology::new(p).unwrap().start(None, false).await.unwrap();
    let bus = running.bus();
    let mut stats = bus.consumer("test.stats", &["sms.stats"]).unwrap();
    let mut events = bus.consumer("test.events", &["sms.events"]).unwrap();
    let producer = bus.producer().unwrap();

    let mut want: BTreeMap<super::Cell, Counts> = BTreeMap::new();
    let mut echoes = 0;
    for i in 0..MESSAGES {
        let echo = i % 3 != 2;
        let text = if echo {
            format!("echo {i}")
        } else {
            format!("hi {i}")
        };
        let mut m = InboundMessage::new(
            Connection::new("message_tester", format!("+1555{:04}", i % 101)),
            text,
        );
        m.received_at = T0 + i * 200;
        let keyword = if echo { "ECHO" } else { "HI" };
        let dims = [
            (StatsDimension::Total, ""),
            (StatsDimension::Backend, "message_tester"),
            (StatsDimension::Keyword, keyword),
        ];
        expect(&mut want, m.received_at, &dims, |c| c.inbound += 1);
        if echo {
            echoes += 1;
            expect(
                &mut want,
                m.received_at,
                &[(StatsDimension::App, "echo")],
                |c| c.inbound += 1,
            );
        }
        let payload = smsflow::schema::inbound().encode(&m).unwrap();
        producer
            .send_and_wait(Produce::new(
                inbound_topic.clone(),
                Bytes::from(m.connection.key()),
                payload,
            ))
            .await
            .unwrap();
    }

    // Every reply's event, read back: their times are the wall clock's.
    let mut seen = 0;
    while seen < echoes {
        let e = common::next_event(&mut events).await;
        assert_eq!(e.status, smsflow::message::DeliveryStatus::Delivered);
        assert_eq!(e.app.as_deref(), Some("echo"), "events carry the app");
        assert!(e.accepted_at > 0 && e.sent_at == e.at && !e.report);
        expect_event(&mut want, &e);
        seen += 1;
    }

    // Until the stage has written it all (it flushes every 100 ms).
    let mut latest = Latest::default();
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut got = BTreeMap::new();
    while Instant::now() < deadline {
        latest.read(&mut stats, Duration::from_millis(300)).await;
        got = latest.summed();
        if got == want {
            break;
        }
    }
    assert_eq!(
        got,
        want,
        "sms.stats summed differs from the counts: {:#?}",
        differences(&got, &want)
    );
    let total = &got[&(
        StatsWindow::Day,
        StatsWindow::Day.start_of(T0),
        StatsDimension::Total,
        String::new(),
    )];
    assert_eq!(total.inbound, MESSAGES);
    let partitions: std::collections::HashSet<i32> = latest
        .records
        .values()
        .filter(|s| s.topic == *inbound_topic)
        .map(|s| s.partition)
        .collect();
    assert!(
        partitions.len() > 1,
        "records per source partition: {partitions:?}"
    );
    assert!(
        latest
            .records
            .values()
            .any(|s| s.closed && s.window == StatsWindow::Minute && s.start == T0),
        "the first minute closed (stream time passed its end + 5 min)"
    );

    // Late: two days before every partition's stream time.
    let late = smsflow::metrics::metrics()
        .analytics_late
        .with_label_values(&[&inbound_topic, "minute"]);
    let before = late.get();
    let mut old = InboundMessage::new(Connection::new("message_tester", "+15550000"), "hi old");
    old.received_at = T0 - 2 * 86_400_000;
    producer
        .send_and_wait(Produce::new(
            inbound_topic.clone(),
            Bytes::from(old.connection.key()),
            smsflow::schema::inbound().encode(&old).unwrap(),
        ))
        .await
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    while late.get() == before && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(
        late.get(),
        before + 1,
        "the late event is counted in the metric"
    );
    latest.read(&mut stats, Duration::from_millis(500)).await;
    assert!(
        latest
            .records
            .values()
            .all(|s| s.start >= StatsWindow::Day.start_of(T0)),
        "no window holds the late event"
    );
    assert_eq!(latest.summed(), want, "the late event changed no count");
    running.shutdown().await.unwrap();
}
