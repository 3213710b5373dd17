//! `smsflow replay PIPELINE`: its arguments, and the report printed as
//! text or JSON (the work is in [`crate::replay`]).

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::bail;

use crate::config::Pipeline;
use crate::outln;
use crate::replay::range::{self, End, Start};
use crate::replay::{self as what_if, Options};

/// A what-if run: a range of the inbound topic through the pipeline's
/// router and apps into `replay.<id>.` topics (nothing is sent), and the
/// differences from the replies sent at the time.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The pipeline to replay through (a new version of the one that ran).
    pub file: PathBuf,
    /// The range's start: an RFC 3339 time, or a duration ago (`2h`).
    #[arg(long, conflicts_with = "from_offset")]
    pub from: Option<String>,
    /// The range's start as PARTITION:OFFSET (repeatable; only these partitions are replayed).
    #[arg(long = "from-offset", value_name = "PARTITION:OFFSET")]
    pub from_offset: Vec<String>,
    /// The range's end, excluded: an RFC 3339 time, or a duration ago (default: now).
    #[arg(long, conflicts_with = "to_offset")]
    pub to: Option<String>,
    /// The last offset replayed, included, as PARTITION:OFFSET (repeatable).
    #[arg(long = "to-offset", value_name = "PARTITION:OFFSET")]
    pub to_offset: Vec<String>,
    /// Names the replay's topics, `replay.<id>.` (default: the time now, 20261207-053000).
    #[arg(long)]
    pub id: Option<String>,
    /// How long the router and the apps may take over the range.
    #[arg(long, default_value = "5m", value_parser = humantime::parse_duration)]
    pub timeout: Duration,
    /// Print the report as one JSON object.
    #[arg(long)]
    pub json: bool,
    /// Delete the replay --id's topics (`replay.<id>.*`) and consumer groups, instead of replaying.
    #[arg(long, requires = "id", conflicts_with_all = ["from", "from_offset", "to", "to_offset"])]
    pub delete: bool,
}

impl Args {
    /// The options these arguments ask for, times relative to `now_ms`.
    pub fn options(&self, now_ms: i64) -> anyhow::Result<Options> {
        let start = match (&self.from, self.from_offset.is_empty()) {
            (Some(t), _) => Start::Time(range::parse_time("--from", t, now_ms)?),
            (None, false) => Start::Offsets(range::parse_offsets("--from-offset", &self.from_offset)?),
            (None, true) => bail!("give the range's start: --from TIME (RFC 3339, or a duration ago as 2h) or --from-offset PARTITION:OFFSET"),
        };
        let end = match (&self.to, self.to_offset.is_empty()) {
            (Some(t), _) => End::Time(range::parse_time("--to", t, now_ms)?),
            (None, false) => End::Offsets(range::parse_offsets("--to-offset", &self.to_offset)?),
            (None, true) => End::Now,
        };
        if let Start::Time(from) = start {
            if from > now_ms {
                bail!(
                    "--from {:?} is in the future",
                    self.from.as_deref().unwrap_or_default()
                );
            }
        }
        let id = self.id.clone().unwrap_or_else(what_if::default_id);
        what_if::check_id(&id)?;
        Ok(Options {
            id,
            start,
            end,
            timeout: self.timeout,
        })
    }
}

/// Run the replay and print its report (status 0 once it printed).
pub async fn run(
    args: Args,
    load: impl Fn(&Path) -> anyhow::Result<Pipeline>,
) -> anyhow::Result<ExitCode> {
    if args.delete {
        let id = args.id.as_deref().unwrap_or_default();
        let gone = what_if::delete(&load(&args.file)?, id).await?;
        match args.json {
            true => outln!("{}", serde_json::to_string(&gone)?),
            false => outln!(
                "deleted replay {id}: {} topics, {} consumer groups",
                gone.topics.len(),
                gone.groups.len()
            ),
        }
        return Ok(ExitCode::SUCCESS);
    }
    let opts = args.options(crate::message::now_millis())?;
    let p = load(&args.file)?;
    let report = what_if::run(&p, &opts).await?;
    if args.json {
        outln!("{}", serde_json::to_string(&report)?);
    } else {
        crate::out!("{}", report.text());
    }
    Ok(ExitCode::SUCCESS)
}
