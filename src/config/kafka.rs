//! The pipeline file's `kafka:` and `topics:` sections: which bus carries
//! the messages, and the names of its topics.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use schemars::{json_schema, JsonSchema, Schema, SchemaGenerator};
use serde::{Deserialize, Serialize};

use super::value::{humantime_serde_compat, or_interpolated, HumanDuration, INTERPOLATED_PATTERN};

/// `kafka:` — a bare string `embedded` / `mock`, or this mapping.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Kafka {
    /// `embedded`, `mock` or `kafka`.
    #[serde(default)]
    pub mode: KafkaMode,
    /// Bootstrap servers (`host:port,...`); required for `mode: kafka`.
    #[serde(default)]
    pub brokers: Option<String>,
    /// Consumer group prefix: each stage's group is `<group>.<stage>`.
    #[serde(default = "default_group")]
    pub group: String,
    /// librdkafka settings every client gets, passed through as they are
    /// (TLS, SASL, `client.id`, ...).
    #[serde(default)]
    pub config: BTreeMap<String, String>,
    /// librdkafka settings for producers only (`acks`, `compression.type`,
    /// `batch.num.messages`, ...), over `config`. smsflow's defaults,
    /// overridable here: `partitioner=murmur2_random`, `linger.ms=5`.
    #[serde(default)]
    pub producer: BTreeMap<String, String>,
    /// librdkafka settings for consumers only, over `config`. smsflow's
    /// defaults, overridable here: `fetch.wait.max.ms=20`,
    /// `session.timeout.ms=6000`, `heartbeat.interval.ms=1500` (a member
    /// that died without coming back holds its partitions this long).
    #[serde(default)]
    pub consumer: BTreeMap<String, String>,
    /// How long a stage waits at start-up for each table it keeps (and a
    /// sink for its sent-log) to be read to its end; past it the process
    /// stops with an error rather than run on part of a table.
    #[serde(default = "default_restore_timeout", with = "humantime_serde_compat")]
    #[schemars(with = "HumanDuration")]
    pub restore_timeout: Duration,
    /// This process's `group.instance.id` (Kafka static membership): from
    /// `--instance-id` or `SMSFLOW_INSTANCE_ID`, not from the file.
    #[serde(skip)]
    #[schemars(skip)]
    pub instance_id: Option<String>,
    /// Embedded bus: records a partition holds before producers wait (on
    /// the durable bus: records some group has still to mark done).
    #[serde(default = "default_capacity")]
    pub partition_capacity: usize,
    /// Embedded bus: a directory to keep the partitions and the groups'
    /// offsets in (`<data_dir>/bus.redb`), so that nothing the bus
    /// acknowledged is lost when the process is killed. One smsflow per
    /// directory; relative to the working directory. Without it the
    /// embedded bus lives in memory.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data_dir: Option<PathBuf>,
    /// Durable embedded bus: `always` acknowledges a record once its
    /// transaction is on disk (group commit); `interval` acknowledges it at once and syncs every
    /// `fsync_interval` (a crash of the machine, or kill -9, loses up to
    /// that much).
    #[serde(default)]
    pub fsync: Fsync,
    /// Durable embedded bus, `fsync: interval`: how often.
    #[serde(default = "default_fsync_interval", with = "humantime_serde_compat")]
    #[schemars(with = "HumanDuration")]
    pub fsync_interval: Duration,
    /// Durable embedded bus: a record every group has marked done is deleted
    /// once older than this (compacted topics keep each key's latest record
    /// for ever).
    #[serde(default = "default_retention", with = "humantime_serde_compat")]
    #[schemars(with = "HumanDuration")]
    pub retention: Duration,
    /// Durable embedded bus: at most this many records every group has
    /// marked done are kept per partition (ordinary topics). Default: no cap.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retention_records: Option<u64>,
    /// How Avro records are framed on Kafka topics: `single_object` (Avro's
    /// own `C3 01` + fingerprint) or `confluent` (`00` + schema registry id:
    /// what Kafka Connect, ksqlDB, ClickHouse and Confluent's serdes read).
    /// Every stage reads both, so a topic can be switched while it holds
    /// records of the other. The embedded buses always keep single-object.
    #[serde(default)]
    pub framing: Framing,
    /// Per-topic framing, over `framing` (a topic name to `single_object`
    /// or `confluent`).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub topic_framing: BTreeMap<String, Framing>,
    /// An external Confluent-compatible schema registry to register
    /// smsflow's schemas in (subject `<topic>-value`) and take their ids
    /// from. Without it the ids are smsflow's own, served read-only by the
    /// admin listener (`/schemas/ids/{id}`, `/subjects`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub schema_registry: Option<SchemaRegistry>,
}

/// How Avro records are framed on a Kafka topic.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
#[schemars(transform = or_interpolated)]
pub enum Framing {
    /// Avro single-object encoding: `C3 01`, the schema's 8-byte
    /// CRC-64-AVRO fingerprint, the datum.
    #[default]
    SingleObject,
    /// The Confluent wire format: `00`, the 4-byte big-endian schema id, the datum.
    Confluent,
}

/// `kafka.schema_registry:` — an external Confluent-compatible registry.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SchemaRegistry {
    /// Its base URL (`https://registry.example:8081`).
    pub url: String,
    /// Basic-auth user (Confluent Cloud: the API key).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub username: Option<String>,
    /// Basic-auth password (Confluent Cloud: the API secret); use `${VAR}`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password: Option<String>,
    /// A PEM file of the certificate authorities to trust for an
    /// `https://` registry, beyond the system's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca_file: Option<String>,
}

impl Kafka {
    /// The framing of records written to `topic`.
    pub fn framing_of(&self, topic: &str) -> Framing {
        self.topic_framing
            .get(topic)
            .copied()
            .unwrap_or(self.framing)
    }
}

impl Kafka {
    pub fn with_mode(mode: KafkaMode) -> Kafka {
        Kafka {
            mode,
            brokers: None,
            group: default_group(),
            config: BTreeMap::new(),
            producer: BTreeMap::new(),
            consumer: BTreeMap::new(),
            restore_timeout: default_restore_timeout(),
            instance_id: None,
            partition_capacity: default_capacity(),
            data_dir: None,
            fsync: Fsync::default(),
            fsync_interval: default_fsync_interval(),
            retention: default_retention(),
            retention_records: None,
            framing: Framing::default(),
            topic_framing: BTreeMap::new(),
            schema_registry: None,
        }
    }
}

/// The schema of the `kafka:` key: the bare strings `embedded` and `mock`
/// (each with every setting at its default), or a [`Kafka`] mapping.
pub(crate) fn kafka_section(generator: &mut SchemaGenerator) -> Schema {
    let mapping = generator.subschema_for::<Kafka>();
    json_schema!({
        "anyOf": [
            {
                "type": "string",
                "enum": ["embedded", "mock"],
                "description": "`embedded` or `mock` with every setting at its default."
            },
            {"type": "string", "pattern": INTERPOLATED_PATTERN},
            mapping
        ],
        "default": "embedded"
    })
}

fn default_group() -> String {
    "smsflow".into()
}

fn default_restore_timeout() -> Duration {
    Duration::from_secs(120)
}

fn default_capacity() -> usize {
    10_000
}

fn default_fsync_interval() -> Duration {
    Duration::from_secs(1)
}

fn default_retention() -> Duration {
    Duration::from_secs(7 * 24 * 3600)
}

/// When the durable embedded bus writes to disk.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
#[schemars(transform = or_interpolated)]
pub enum Fsync {
    /// Every commit is on disk before its records are acknowledged;
    /// concurrent produces share one commit.
    #[default]
    Always,
    /// Commits are acknowledged at once and synced every `fsync_interval`.
    Interval,
}

/// The bus a pipeline runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
#[schemars(transform = or_interpolated)]
pub enum KafkaMode {
    /// In-process bus: keyed partitions, order, backpressure; not durable
    /// unless `data_dir` is given.
    #[default]
    Embedded,
    /// librdkafka's mock cluster, in-process: for tests of the Kafka code path only.
    Mock,
    /// A real Kafka-compatible cluster.
    Kafka,
}

/// `topics:` — names and partition counts.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct Topics {
    /// Messages from phones.
    pub inbound: String,
    /// Messages to phones, before the outgoing phase.
    pub outbound: String,
    /// Prefix of each app's topic.
    pub app_prefix: String,
    /// Prefix of each backend's send topic.
    pub send_prefix: String,
    /// Delivery events.
    pub events: String,
    /// Contacts (compacted).
    pub contacts: String,
    /// Opted-out numbers (compacted, key = number).
    pub optouts: String,
    /// The message log.
    pub log: String,
    /// Poll answers (compacted, key = poll and contact).
    pub polls: String,
    /// Dead letters: records a stage could not process.
    pub dlq: String,
    /// Campaigns: definitions and states (compacted, key = campaign id).
    pub campaigns: String,
    /// Campaigns' frozen audiences (key = campaign id).
    pub audience: String,
    /// Statistics per window (compacted; written by the `analytics` stage).
    pub stats: String,
    /// Suffix of each backend's bulk lane: campaigns' messages go to
    /// `<send topic><suffix>`, read by the backend's sink after its own.
    pub bulk_suffix: String,
    /// Partitions of every topic smsflow creates (existing topics are left alone).
    pub partitions: i32,
    /// Replication factor of topics smsflow creates on a cluster.
    pub replication: i32,
    /// How long a provider sink's sent-log (`<send topic>.sent`) keeps an
    /// entry: the topic is `cleanup.policy=compact,delete` with this
    /// `retention.ms`. A message read again after this long (a send topic
    /// kept longer, a replay) would be sent again.
    #[serde(with = "humantime_serde_compat")]
    #[schemars(with = "HumanDuration")]
    pub sent_retention: Duration,
    /// The sent-log entries each sink process keeps in memory, at most (the
    /// oldest goes first; about 200 bytes each). Reported as
    /// `smsflow_sent_log_entries{backend}`.
    pub sent_memory: usize,
}

impl Default for Topics {
    fn default() -> Self {
        Topics {
            inbound: "sms.inbound".into(),
            outbound: "sms.outbound".into(),
            app_prefix: "sms.app.".into(),
            send_prefix: "sms.send.".into(),
            events: "sms.events".into(),
            contacts: "sms.contacts".into(),
            optouts: "sms.optouts".into(),
            log: "sms.log".into(),
            polls: "sms.polls".into(),
            dlq: "sms.dlq".into(),
            campaigns: "sms.campaigns".into(),
            audience: "sms.campaigns.audience".into(),
            stats: "sms.stats".into(),
            bulk_suffix: ".bulk".into(),
            partitions: 8,
            replication: 1,
            sent_retention: default_retention(),
            sent_memory: 1_000_000,
        }
    }
}

impl Topics {
    pub fn app(&self, app: &str) -> String {
        format!("{}{app}", self.app_prefix)
    }
    pub fn send(&self, backend: &str) -> String {
        format!("{}{backend}", self.send_prefix)
    }
    /// A backend's bulk lane: what campaigns send.
    pub fn bulk(&self, backend: &str) -> String {
        format!("{}{backend}{}", self.send_prefix, self.bulk_suffix)
    }
}
