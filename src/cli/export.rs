//! `smsflow export`: the `export` stage's work done once, from the
//! positions recovered from the output directory to the topics' current
//! end, then exit. It reads by assignment as the group `<group>.export`
//! (the stage's), so the stage and the command take over from each other;
//! the files, not the group, say where each partition stands.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Instant;

use anyhow::bail;

use crate::bus::kafka::{read_to_end, KafkaBus};
use crate::config::{KafkaMode, Pipeline};
use crate::export::manifest::Entry;
use crate::export::metrics::closed as count_closed;
use crate::export::stage::fixed_epoch;
use crate::export::{self, Exporter, Format, Pushed, Settings};
use crate::stage::{dead_letter, StageContext};

/// `smsflow export PIPELINE [--topic T]... [--format parquet|avro] [--out DIR]`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The pipeline file.
    pub file: PathBuf,
    /// A topic to export (repeatable; default: `export.topics`, or the
    /// events, inbound and log topics).
    #[arg(long = "topic")]
    pub topics: Vec<String>,
    /// The file format (default: `export.format`, or parquet).
    #[arg(long, value_enum)]
    pub format: Option<FormatArg>,
    /// The output directory (default: `export.dir`).
    #[arg(long)]
    pub out: Option<PathBuf>,
}

/// `--format`.
#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum FormatArg {
    Parquet,
    Avro,
}

/// Run the command: each closed file on a line (its path under the output
/// directory, a tab, its records), the totals on standard error.
pub async fn main(
    args: Args,
    load: impl Fn(&Path) -> anyhow::Result<Pipeline>,
) -> anyhow::Result<ExitCode> {
    let p = load(&args.file)?;
    let options = Options {
        topics: args.topics,
        format: args.format.map(|f| match f {
            FormatArg::Parquet => Format::Parquet,
            FormatArg::Avro => Format::Avro,
        }),
        out: args.out,
    };
    let summary = run(&p, &options).await?;
    let mut records = 0;
    for f in &summary.files {
        crate::outln!("{}\t{}", f.file, f.records);
        records += f.records;
    }
    eprintln!(
        "{} files, {records} records exported; {} records already exported, {} dead-lettered",
        summary.files.len(),
        summary.skipped,
        summary.poison
    );
    Ok(ExitCode::SUCCESS)
}

/// What the command line may override.
#[derive(Debug, Clone, Default)]
pub struct Options {
    /// Topics to export (default: `export.topics`, or the events, inbound
    /// and log topics).
    pub topics: Vec<String>,
    pub format: Option<Format>,
    /// The output directory (default: `export.dir`).
    pub out: Option<PathBuf>,
}

/// What an export did.
#[derive(Debug, Default)]
pub struct Summary {
    /// The files closed, in order.
    pub files: Vec<Entry>,
    /// Records left out and dead-lettered.
    pub poison: u64,
    /// Records read that were already in closed files.
    pub skipped: u64,
}

/// The settings: the pipeline's `export:` section (or its defaults) with
/// the command line's overrides.
pub fn settings(p: &Pipeline, o: &Options) -> anyhow::Result<Settings> {
    let section = p.export.clone().unwrap_or_default();
    let mut s = Settings::of(&section);
    if let Some(out) = &o.out {
        s.dir = out.clone();
    }
    if s.dir.as_os_str().is_empty() {
        bail!("no output directory: give --out DIR, or `export: {{dir: ...}}` in the pipeline");
    }
    if let Some(f) = o.format {
        s.format = f;
    }
    Ok(s)
}

/// Export `o.topics` (or the pipeline's) to their current end.
pub async fn run(p: &Pipeline, o: &Options) -> anyhow::Result<Summary> {
    if !matches!(p.kafka.mode, KafkaMode::Kafka | KafkaMode::Mock) {
        bail!("smsflow export reads a Kafka cluster; with `kafka: {:?}` the bus lives inside `smsflow run`: configure `export:` to run the export stage there", p.kafka.mode);
    }
    let settings = settings(p, o)?;
    std::fs::create_dir_all(&settings.dir).map_err(|e| {
        anyhow::anyhow!(
            "cannot create the output directory {}: {e}",
            settings.dir.display()
        )
    })?;
    let topics = match o.topics.is_empty() {
        true => export::topics(p),
        false => o.topics.clone(),
    };
    let bus = KafkaBus::connect(&p.kafka, &[]).await?;
    let producer = crate::bus::Producer::Kafka(bus.producer()?);
    let group = format!("{}.export", p.kafka.group);
    let ctx = StageContext {
        name: Arc::from("export"),
        dlq: Arc::from(p.topics.dlq.as_str()),
    };
    let mut exporter = Exporter::new(settings);
    let mut summary = Summary::default();
    for topic in &topics {
        let (mut consumer, progress) = bus.reader(&group, topic).await?;
        let committer = consumer.committer();
        let mut closed = Vec::new();
        let mut seen = 0u64;
        let commit = |closed: &mut Vec<Entry>, summary: &mut Summary| -> anyhow::Result<()> {
            for e in closed.drain(..) {
                count_closed(&e);
                committer.done(&[(&e.topic, e.partition, e.last_offset)])?;
                summary.files.push(e);
            }
            Ok(())
        };
        read_to_end(&mut consumer, topic, &progress, async |r| {
            let pushed = exporter.push(
                &r.topic,
                r.partition,
                r.offset,
                Some(0),
                &r.payload,
                &mut closed,
            )?;
            match pushed {
                Pushed::Poison(reason) => {
                    tracing::warn!(topic = %r.topic, partition = r.partition, offset = r.offset, %reason, "not an smsflow record; dead-lettering it");
                    export::metrics::export_metrics()
                        .poison
                        .with_label_values(&[&r.topic])
                        .inc();
                    producer
                        .send_and_wait(dead_letter(&ctx, &r, "decode", &reason))
                        .await?;
                    summary.poison += 1;
                }
                Pushed::Skipped => summary.skipped += 1,
                Pushed::Buffered => {}
            }
            seen += 1;
            if seen.is_multiple_of(10_000) {
                exporter.tick(Instant::now(), fixed_epoch, &mut closed)?;
            }
            commit(&mut closed, &mut summary)
        })
        .await?;
        exporter.close_all(&mut closed)?;
        commit(&mut closed, &mut summary)?;
        consumer.close().await?;
    }
    Ok(summary)
}
