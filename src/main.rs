//! The `smsflow` command: parse arguments, set up logging, call the library.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{bail, Context};
use clap::{Parser, Subcommand, ValueEnum};
use smsflow::apps::messaging::Recipients;
use smsflow::cli::client::Server;
use smsflow::cli::{graph, ops, script};
use smsflow::config::{self, KafkaMode, Pipeline};
use smsflow::topology::Topology;
use smsflow::{out, outln};
use tracing::info;

/// mimalloc rather than glibc's malloc: the hot path allocates and frees a
/// few small strings per message on several threads, and with mimalloc the
/// pipeline on Kafka needs about a quarter less CPU per message (see
/// docs/benchmarks.md, "The hot path").
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(
    name = "smsflow",
    version,
    about = "RapidSMS's backends, router and apps as a Kafka stream processor"
)]
struct Cli {
    /// Log format: text for people, json for log collectors.
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Text, env = "SMSFLOW_LOG_FORMAT")]
    log_format: LogFormat,
    #[command(subcommand)]
    command: Command,
}

#[derive(Clone, Copy, ValueEnum)]
enum LogFormat {
    Text,
    Json,
}

#[derive(Clone, Copy, ValueEnum)]
enum GraphFormat {
    Text,
    Dot,
}

#[derive(Clone, Copy, ValueEnum)]
enum BusChoice {
    Embedded,
    Mock,
}

#[derive(Subcommand)]
enum Command {
    /// Run the pipeline: every stage in this process, or one with --stage.
    Run {
        file: PathBuf,
        /// Run only this stage (`router-in`, `router-out`, `app:<name>`, `backend:<name>`); needs Kafka.
        #[arg(long)]
        stage: Option<String>,
        /// This process's Kafka `group.instance.id` (static membership: a
        /// restarted process with the same id gets its partitions back at
        /// once). Unique per process; on Kubernetes the pod name.
        #[arg(long, env = "SMSFLOW_INSTANCE_ID")]
        instance_id: Option<String>,
    },
    /// Check a pipeline file and report every error, with its line.
    Validate { file: PathBuf },
    /// Read a password on stdin and print its argon2 hash, for `http.admin.users`.
    HashPassword,
    /// Print the pipeline file's JSON Schema (schemas/pipeline.schema.json),
    /// for editors: `smsflow schema > pipeline.schema.json`.
    Schema,
    /// Print the stages and topics a pipeline file implies.
    Graph {
        file: PathBuf,
        #[arg(long, value_enum, default_value_t = GraphFormat::Text)]
        format: GraphFormat,
    },
    /// Run conversation scripts end to end through the pipeline.
    Test {
        file: PathBuf,
        #[arg(required = true)]
        scripts: Vec<PathBuf>,
        /// Run on this bus instead of the file's (mock: librdkafka's mock cluster).
        #[arg(long, value_enum)]
        bus: Option<BusChoice>,
        /// Tester backend to talk through (default: the only one).
        #[arg(long)]
        backend: Option<String>,
        /// How long an expected reply may take.
        #[arg(long, default_value = "10s", value_parser = humantime::parse_duration)]
        timeout: Duration,
    },
    /// Inject an inbound message, as if NUMBER had sent TEXT.
    Send {
        file: PathBuf,
        /// The phone number it comes from.
        #[arg(long = "from")]
        from: String,
        /// Backend it arrives on (default: the first backend).
        #[arg(long)]
        backend: Option<String>,
        #[arg(required = true)]
        text: Vec<String>,
    },
    /// The dead-letter topic: list what stages could not process, replay it after a fix (needs Kafka).
    Dlq {
        #[command(subcommand)]
        command: DlqCommand,
    },
    /// Where a message stands (queued, sent, delivered, failed, suppressed), or every recipient of a send.
    Status {
        file: PathBuf,
        /// A message id, or a send id (from `smsflow message`).
        id: String,
        #[command(flatten)]
        server: Server,
    },
    /// Send a text to contacts, a group or numbers (RapidSMS's messaging).
    Message {
        file: PathBuf,
        /// A contact id (repeatable).
        #[arg(long = "contact")]
        contacts: Vec<String>,
        /// Every contact in this group (repeatable).
        #[arg(long = "group")]
        groups: Vec<String>,
        /// A phone number, or `backend:number` (repeatable).
        #[arg(long = "to")]
        numbers: Vec<String>,
        #[command(flatten)]
        server: Server,
        #[arg(required = true)]
        text: Vec<String>,
    },
    /// A poll's question and results.
    Poll {
        file: PathBuf,
        /// The poll's app name.
        name: String,
        #[command(flatten)]
        server: Server,
    },
    /// Bulk campaigns: preview, start, follow, pause, resume, cancel (docs/campaigns.md).
    Campaign {
        #[command(subcommand)]
        command: Box<smsflow::cli::campaign::CampaignCommand>,
    },
    /// A what-if run: replay a range of sms.inbound through PIPELINE into replay.<id>.* topics, sending nothing, and report what differs.
    Replay(Box<smsflow::cli::replay::Args>),
    /// Contacts: import a CSV file of `name, backend, identity` lines.
    Contacts {
        #[command(subcommand)]
        command: ContactsCommand,
    },
    /// Kubernetes manifests for a pipeline (docs/kubernetes.md).
    K8s {
        #[command(subcommand)]
        command: K8sCommand,
    },
    /// Decode and print the records of a topic, one JSON object a line (needs Kafka).
    Tail {
        file: PathBuf,
        topic: String,
        /// Start at the oldest record rather than the newest.
        #[arg(long)]
        from_beginning: bool,
        /// Stop after this many records.
        #[arg(long)]
        count: Option<usize>,
    },
    /// Export topics to Parquet or Avro files up to their current end, exactly once (needs Kafka).
    Export(smsflow::cli::export::Args),
    /// A simulated GSM modem on a pseudo-terminal at --link: stdin lines
    /// `<phone> <text>` are SMS from phones; what it is asked to send is printed.
    ModemSim(smsflow::cli::modem_sim::Args),
    /// Every stage's consumer lag per partition, with rates, live (needs Kafka).
    Top {
        file: PathBuf,
        /// Time between refreshes.
        #[arg(long, default_value = "2s", value_parser = humantime::parse_duration)]
        interval: Duration,
        /// Print one snapshot and exit.
        #[arg(long)]
        once: bool,
    },
}

#[derive(Subcommand)]
enum K8sCommand {
    /// Print the manifests (multi-document YAML): a Deployment per stage
    /// (prod) or one for the whole pipeline (dev), Services, probes,
    /// PodDisruptionBudgets, KEDA ScaledObjects, Strimzi KafkaTopics, a
    /// ServiceMonitor. Every ${VAR} comes from the Secret smsflow-env.
    Render {
        file: PathBuf,
        /// Only this stage's objects (repeatable; prod).
        #[arg(long = "stage")]
        stages: Vec<String>,
        /// Default: prod on Kafka, dev on the embedded bus.
        #[arg(long, value_enum)]
        mode: Option<K8sMode>,
        /// Put every object in this namespace (default: none, kubectl's).
        #[arg(long)]
        namespace: Option<String>,
        /// The container image.
        #[arg(long, default_value = smsflow::k8s::DEFAULT_IMAGE)]
        image: String,
        /// The Strimzi Kafka cluster the KafkaTopics belong to (their strimzi.io/cluster label).
        #[arg(long, default_value = "kafka")]
        kafka_cluster: String,
    },
}

#[derive(Clone, Copy, ValueEnum)]
enum K8sMode {
    /// A Deployment per stage, scaled by KEDA on consumer lag.
    Prod,
    /// One Deployment running every stage, one replica.
    Dev,
}

#[derive(Subcommand)]
enum ContactsCommand {
    /// Import contacts; each bad line is reported with its number, the good ones are imported.
    Import {
        file: PathBuf,
        csv: PathBuf,
        #[command(flatten)]
        server: Server,
    },
}

#[derive(Subcommand)]
enum DlqCommand {
    /// Print every dead letter as a JSON line: where it came from and why.
    List {
        file: PathBuf,
        #[command(flatten)]
        filter: DlqFilter,
    },
    /// Write dead letters back to the topics they came from.
    Replay {
        file: PathBuf,
        #[command(flatten)]
        filter: DlqFilter,
    },
}

#[derive(clap::Args)]
struct DlqFilter {
    /// Only those from this stage (`router-in`, `app:echo`, ...).
    #[arg(long)]
    stage: Option<String>,
    /// Only those of this error kind (`decode`, `invalid`, ...).
    #[arg(long)]
    kind: Option<String>,
}

impl From<DlqFilter> for smsflow::cli::dlq::Filter {
    fn from(f: DlqFilter) -> Self {
        smsflow::cli::dlq::Filter {
            stage: f.stage,
            kind: f.kind,
        }
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging(cli.log_format);
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(dispatch(cli.command)) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn init_logging(format: LogFormat) {
    let filter =
        tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into());
    // Colours only for a person at a terminal, not in files or log collectors.
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(ansi)
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
}

fn load(file: &Path) -> anyhow::Result<Pipeline> {
    smsflow::topology::load_file(file).map_err(|e| anyhow::anyhow!("{e}"))
}

async fn dispatch(command: Command) -> anyhow::Result<ExitCode> {
    match command {
        Command::Schema => {
            out!("{}", config::schema::json_schema_text());
            Ok(ExitCode::SUCCESS)
        }
        Command::HashPassword => {
            let mut password = String::new();
            std::io::stdin()
                .read_line(&mut password)
                .context("cannot read the password from stdin")?;
            let password = password.trim_end_matches(['\r', '\n']);
            if password.is_empty() {
                anyhow::bail!("no password on stdin: `echo -n 'secret' | smsflow hash-password`");
            }
            outln!("{}", smsflow::http::guard::hash_password(password)?);
            Ok(ExitCode::SUCCESS)
        }
        Command::Validate { file } => match smsflow::topology::load_file(&file) {
            Ok(p) => {
                let topology = Topology::new(p)?;
                outln!("{}: ok", file.display());
                out!("{}", graph::text(&topology));
                Ok(ExitCode::SUCCESS)
            }
            Err(e) => {
                eprint!("{e}");
                Ok(ExitCode::FAILURE)
            }
        },
        Command::Graph { file, format } => {
            let topology = Topology::new(load(&file)?)?;
            match format {
                GraphFormat::Text => out!("{}", graph::text(&topology)),
                GraphFormat::Dot => out!("{}", graph::dot(&topology)),
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::ModemSim(args) => {
            smsflow::cli::modem_sim::run(args).await?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Run {
            file,
            stage,
            instance_id,
        } => run(&file, stage.as_deref(), instance_id).await,
        Command::Test {
            file,
            scripts,
            bus,
            backend,
            timeout,
        } => test(&file, &scripts, bus, backend.as_deref(), timeout).await,
        Command::Send {
            file,
            from,
            backend,
            text,
        } => {
            let id = ops::send(&load(&file)?, backend.as_deref(), &from, &text.join(" ")).await?;
            outln!("{id}");
            Ok(ExitCode::SUCCESS)
        }
        Command::Dlq {
            command: DlqCommand::List { file, filter },
        } => {
            let letters = smsflow::cli::dlq::list(&load(&file)?, &filter.into()).await?;
            for d in &letters {
                outln!("{}", smsflow::cli::dlq::to_json(d));
            }
            eprintln!("{} dead letters", letters.len());
            Ok(ExitCode::SUCCESS)
        }
        Command::Dlq {
            command: DlqCommand::Replay { file, filter },
        } => {
            let n = smsflow::cli::dlq::replay(&load(&file)?, &filter.into()).await?;
            outln!("replayed {n} dead letters");
            Ok(ExitCode::SUCCESS)
        }
        Command::Status { file, id, server } => {
            let api = server.api(&load(&file)?);
            out!("{}", ops::status(&api, &id).await?);
            Ok(ExitCode::SUCCESS)
        }
        Command::Message {
            file,
            contacts,
            groups,
            numbers,
            server,
            text,
        } => {
            let api = server.api(&load(&file)?);
            let to = Recipients {
                contacts,
                groups,
                numbers,
            };
            out!("{}", ops::message(&api, &text.join(" "), &to).await?);
            Ok(ExitCode::SUCCESS)
        }
        Command::Replay(args) => smsflow::cli::replay::run(*args, load).await,
        Command::Campaign { command } => {
            Ok(match smsflow::cli::campaign::run(*command, load).await? {
                true => ExitCode::SUCCESS,
                false => ExitCode::FAILURE,
            })
        }
        Command::Poll { file, name, server } => {
            let api = server.api(&load(&file)?);
            out!("{}", ops::poll(&api, &name).await?);
            Ok(ExitCode::SUCCESS)
        }
        Command::Contacts {
            command: ContactsCommand::Import { file, csv, server },
        } => {
            let api = server.api(&load(&file)?);
            let text = std::fs::read_to_string(&csv)
                .with_context(|| format!("cannot read {}", csv.display()))?;
            let (report, all_good) = ops::import_contacts(&api, text).await?;
            out!("{report}");
            Ok(if all_good {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            })
        }
        Command::K8s {
            command:
                K8sCommand::Render {
                    file,
                    stages,
                    mode,
                    namespace,
                    image,
                    kafka_cluster,
                },
        } => {
            let mode = match mode {
                Some(K8sMode::Prod) => smsflow::k8s::Mode::Prod,
                Some(K8sMode::Dev) => smsflow::k8s::Mode::Dev,
                None => smsflow::k8s::Mode::Auto,
            };
            let opts = smsflow::k8s::Options {
                stages,
                namespace,
                image,
                kafka_cluster,
                ..smsflow::k8s::Options::new(mode)
            };
            out!("{}", smsflow::k8s::render(&file, &opts)?);
            Ok(ExitCode::SUCCESS)
        }
        Command::Tail {
            file,
            topic,
            from_beginning,
            count,
        } => {
            let p = load(&file)?;
            ops::tail(&p, &topic, from_beginning, count).await?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Export(args) => smsflow::cli::export::main(args, load).await,
        Command::Top {
            file,
            interval,
            once,
        } => {
            let topology = Topology::new(load(&file)?)?;
            let name = file.display().to_string();
            smsflow::cli::top::run(&topology, &name, interval, once).await?;
            Ok(ExitCode::SUCCESS)
        }
    }
}

async fn run(
    file: &Path,
    stage: Option<&str>,
    instance_id: Option<String>,
) -> anyhow::Result<ExitCode> {
    let mut pipeline = load(file)?;
    pipeline.kafka.instance_id = instance_id.filter(|id| !id.is_empty());
    let topology = Topology::new(pipeline)?;
    let mut running = topology.start(stage, true).await?;
    if let Some(addr) = running.http_addr() {
        info!("webhooks at http://{addr}/backend/<name>/");
    }
    if let Some(addr) = running.admin_addr() {
        info!("message tester at http://{addr}/tester/ · operator pages at http://{addr}/log/ · metrics at http://{addr}/metrics");
    }
    let failed = tokio::select! {
        signal = shutdown_signal() => {
            info!(%signal, "shutting down");
            None
        }
        stage = running.failed() => Some(stage),
    };
    let stopped = running.shutdown().await;
    if let Some(stage) = failed {
        let cause = stopped
            .err()
            .map(|e| format!(" ({e:#})"))
            .unwrap_or_default();
        bail!("stage {stage} stopped on an error{cause}; offsets of unfinished records were not committed");
    }
    stopped?;
    Ok(ExitCode::SUCCESS)
}

async fn shutdown_signal() -> &'static str {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => tokio::select! {
                _ = ctrl_c => "SIGINT",
                _ = term.recv() => "SIGTERM",
            },
            Err(_) => {
                let _ = ctrl_c.await;
                "SIGINT"
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = ctrl_c.await;
        "SIGINT"
    }
}

async fn test(
    file: &Path,
    scripts: &[PathBuf],
    bus: Option<BusChoice>,
    backend: Option<&str>,
    timeout: Duration,
) -> anyhow::Result<ExitCode> {
    let mut pipeline = load(file)?;
    match bus {
        Some(BusChoice::Embedded) => pipeline.kafka = config::Kafka::with_mode(KafkaMode::Embedded),
        Some(BusChoice::Mock) => pipeline.kafka = config::Kafka::with_mode(KafkaMode::Mock),
        None => {}
    }
    let mut parsed = Vec::new();
    for s in scripts {
        let text =
            std::fs::read_to_string(s).with_context(|| format!("cannot read {}", s.display()))?;
        match script::parse(&text) {
            Ok(steps) => parsed.push((s, steps)),
            Err(errors) => bail!("{}:\n  {}", s.display(), errors.join("\n  ")),
        }
    }
    let running = Topology::new(pipeline)?.start(None, false).await?;
    let Some(tester) = running.tester(backend) else {
        bail!(
            "the pipeline has no tester backend{} to run scripts through",
            backend.map(|b| format!(" named {b:?}")).unwrap_or_default()
        );
    };
    let (mut passed, mut failed) = (0, 0);
    for (path, steps) in &parsed {
        let operator = running.control();
        let settle = Duration::from_millis(300);
        let mismatches = script::run_with(&tester, Some(&operator), steps, timeout, settle).await;
        if mismatches.is_empty() {
            passed += 1;
            outln!("ok     {}", path.display());
        } else {
            failed += 1;
            outln!("FAILED {}", path.display());
            for m in mismatches {
                outln!("  {} {m}", path.display());
            }
        }
    }
    drop(tester);
    running.shutdown().await?;
    outln!("scripts: {passed} passed, {failed} failed");
    Ok(if failed == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}
