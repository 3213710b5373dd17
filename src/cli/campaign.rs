//! `smsflow campaign`: preview, start, list, follow (a progress bar),
//! pause, resume and cancel campaigns, through the running pipeline's
//! admin API.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context;
use base64::prelude::{Engine as _, BASE64_STANDARD};
use chrono::{DateTime, Utc};
use clap::{Args, Subcommand};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use serde_json::{json, Value};

use super::client::{Api, Server};
use crate::campaign::control::NewCampaign;
use crate::campaign::view::CampaignView;
use crate::config::Pipeline;
use crate::outln;

#[derive(Subcommand)]
pub enum CampaignCommand {
    /// What a campaign would send: recipients, bad lines, duplicates,
    /// opted-out numbers, segments, encodings, languages and cost. Sends nothing.
    Preview {
        file: PathBuf,
        #[command(flatten)]
        spec: Spec,
        #[command(flatten)]
        server: Server,
    },
    /// Start a campaign (the preview must have no problems); with --watch,
    /// follow it to the end with a progress bar.
    Start {
        file: PathBuf,
        #[command(flatten)]
        spec: Spec,
        /// Follow it (as `campaign status --watch`).
        #[arg(long)]
        watch: bool,
        #[command(flatten)]
        server: Server,
    },
    /// Every campaign, newest first, with its progress.
    List {
        file: PathBuf,
        #[command(flatten)]
        server: Server,
    },
    /// A campaign's progress; with --watch, a live progress bar until it ends.
    Status {
        file: PathBuf,
        id: String,
        #[arg(long)]
        watch: bool,
        #[command(flatten)]
        server: Server,
    },
    /// Stop releasing a campaign's messages (takes effect within a second).
    Pause {
        file: PathBuf,
        id: String,
        #[command(flatten)]
        server: Server,
    },
    /// Go on with a paused campaign, where it stopped.
    Resume {
        file: PathBuf,
        id: String,
        #[command(flatten)]
        server: Server,
    },
    /// End a campaign: what was not released is never sent.
    Cancel {
        file: PathBuf,
        id: String,
        #[command(flatten)]
        server: Server,
    },
}

/// A campaign as the command line describes it.
#[derive(Args)]
pub struct Spec {
    /// The backend the messages go out on.
    #[arg(long)]
    backend: String,
    /// The text in the default language (`{name}` is a CSV column, a
    /// contact's name, or a --default).
    #[arg(long)]
    text: String,
    /// The text in another language: `LANG=TEXT` (repeatable).
    #[arg(long = "translation", value_parser = pair)]
    translations: Vec<(String, String)>,
    /// The audience: a CSV file with a `phone` column (and any variables,
    /// `language`, `timezone`).
    #[arg(long)]
    csv: Option<PathBuf>,
    /// Contacts of this group are recipients too (repeatable).
    #[arg(long = "group")]
    groups: Vec<String>,
    /// A variable's default: `NAME=VALUE` (repeatable).
    #[arg(long = "default", value_parser = pair)]
    defaults: Vec<(String, String)>,
    /// Its id (letters, digits, - and _); a new one when left out.
    #[arg(long)]
    id: Option<String>,
    #[arg(long, default_value = "")]
    name: String,
    /// The language of --text (default: the pipeline's).
    #[arg(long)]
    language: Option<String>,
    /// Not before this time (RFC 3339, e.g. 2026-12-24T08:00:00Z).
    #[arg(long)]
    start_at: Option<DateTime<Utc>>,
    /// Recipients not reached by then are not sent to (RFC 3339).
    #[arg(long)]
    end_at: Option<DateTime<Utc>>,
    /// The campaign's pace, messages per second.
    #[arg(long)]
    rate: Option<f64>,
    /// The campaign's pace, segments per second.
    #[arg(long)]
    segment_rate: Option<f64>,
    /// Messages a day at most (days in --timezone).
    #[arg(long)]
    daily_cap: Option<i64>,
    /// Quiet hours in each recipient's zone: `FROM-UNTIL`, e.g. `21:00-08:00`.
    #[arg(long)]
    quiet: Option<String>,
    /// The zone of recipients whose own is not known (IANA name).
    #[arg(long)]
    timezone: Option<String>,
    /// Pause after this many provider errors in a row (0: never; default 10).
    #[arg(long)]
    auto_pause: Option<i32>,
}

fn pair(s: &str) -> Result<(String, String), String> {
    let (k, v) = s
        .split_once('=')
        .ok_or_else(|| format!("{s:?}: expected NAME=VALUE"))?;
    Ok((k.trim().to_owned(), v.to_owned()))
}

impl Spec {
    /// The API's body: the campaign and its audience file.
    fn upload(self, p: &Pipeline) -> anyhow::Result<Value> {
        let language = self.language.unwrap_or_else(|| p.languages.default.clone());
        let mut texts: BTreeMap<String, String> = self.translations.into_iter().collect();
        texts.insert(language.clone(), self.text);
        let (quiet_from, quiet_until) = match &self.quiet {
            Some(q) => {
                let (from, until) = q.split_once('-').with_context(|| {
                    format!("--quiet {q:?}: expected FROM-UNTIL, e.g. 21:00-08:00")
                })?;
                (Some(from.trim().to_owned()), Some(until.trim().to_owned()))
            }
            None => (None, None),
        };
        let campaign = NewCampaign {
            id: self.id,
            name: self.name,
            backend: self.backend,
            texts,
            default_language: Some(language),
            defaults: self.defaults.into_iter().collect(),
            groups: self.groups,
            start_at: self.start_at,
            end_at: self.end_at,
            messages_per_second: self.rate,
            segments_per_second: self.segment_rate,
            daily_cap: self.daily_cap,
            quiet_from,
            quiet_until,
            timezone: self.timezone,
            auto_pause_errors: self.auto_pause,
        };
        let mut body = json!({ "campaign": campaign });
        if let Some(path) = &self.csv {
            let bytes =
                std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
            // Text when it is all UTF-8; its bytes otherwise, so that each
            // bad line is reported.
            match String::from_utf8(bytes) {
                Ok(text) => body["csv"] = json!(text),
                Err(e) => body["csv_base64"] = json!(BASE64_STANDARD.encode(e.as_bytes())),
            }
            body["file"] = json!(file_name(path));
        }
        Ok(body)
    }
}

fn file_name(path: &Path) -> String {
    path.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
}

/// Run a `campaign` command against the pipeline `load`ed from its file.
pub async fn run(
    command: CampaignCommand,
    load: impl Fn(&Path) -> anyhow::Result<Pipeline>,
) -> anyhow::Result<bool> {
    match command {
        CampaignCommand::Preview { file, spec, server } => {
            let p = load(&file)?;
            let preview = server
                .api(&p)
                .post_json("/api/campaigns/preview", &spec.upload(&p)?)
                .await?;
            outln!("{}", describe_preview(&preview));
            Ok(preview["problems"].as_array().is_none_or(|a| a.is_empty()))
        }
        CampaignCommand::Start {
            file,
            spec,
            watch,
            server,
        } => {
            let p = load(&file)?;
            let api = server.api(&p);
            let started = api.post_json("/api/campaigns", &spec.upload(&p)?).await?;
            let id = started["campaign"]["id"]
                .as_str()
                .unwrap_or_default()
                .to_owned();
            outln!("{}", describe_preview(&started["preview"]));
            outln!("campaign {id} started");
            if watch {
                follow(&api, &id).await?;
            }
            Ok(true)
        }
        CampaignCommand::List { file, server } => {
            let api = server.api(&load(&file)?);
            let all: Vec<CampaignView> = serde_json::from_value(api.get("/api/campaigns").await?)?;
            if all.is_empty() {
                outln!("no campaigns");
            }
            for v in &all {
                outln!("{}", summary(v));
            }
            Ok(true)
        }
        CampaignCommand::Status {
            file,
            id,
            watch,
            server,
        } => {
            let api = server.api(&load(&file)?);
            match watch {
                true => follow(&api, &id).await?,
                false => outln!("{}", describe(&view(&api, &id).await?)),
            }
            Ok(true)
        }
        CampaignCommand::Pause { file, id, server } => {
            act(&load(&file)?, server, &id, "pause").await
        }
        CampaignCommand::Resume { file, id, server } => {
            act(&load(&file)?, server, &id, "resume").await
        }
        CampaignCommand::Cancel { file, id, server } => {
            act(&load(&file)?, server, &id, "cancel").await
        }
    }
}

async fn act(p: &Pipeline, server: Server, id: &str, command: &str) -> anyhow::Result<bool> {
    let api = server.api(p);
    let v: CampaignView = serde_json::from_value(
        api.post_json(
            &format!("/api/campaigns/{}/{command}", encode(id)),
            &json!({}),
        )
        .await?,
    )?;
    outln!("{}", describe(&v));
    Ok(true)
}

async fn view(api: &Api, id: &str) -> anyhow::Result<CampaignView> {
    let v = api.get(&format!("/api/campaigns/{}", encode(id))).await?;
    serde_json::from_value(v).context("the campaign's answer is not a campaign")
}

fn encode(id: &str) -> String {
    percent_encoding::utf8_percent_encode(id, percent_encoding::NON_ALPHANUMERIC).to_string()
}

/// A live progress bar (on a terminal; a line per change otherwise) until
/// the campaign is completed or cancelled.
async fn follow(api: &Api, id: &str) -> anyhow::Result<()> {
    let first = view(api, id).await?;
    let bar = ProgressBar::with_draw_target(
        Some(first.progress.recipients),
        ProgressDrawTarget::stderr(),
    );
    let style = ProgressStyle::with_template("{bar:40} {percent:>3}% {pos}/{len} {msg} ETA {eta}")
        .unwrap_or_else(|_| ProgressStyle::default_bar());
    bar.set_style(style);
    let plain = bar.is_hidden();
    let mut last = String::new();
    loop {
        let v = view(api, id).await?;
        let p = &v.progress;
        bar.set_length(p.recipients);
        bar.set_position(p.reached);
        let line = counts(&v);
        bar.set_message(line.clone());
        if plain && line != last {
            eprintln!("{:>5.1}% {line}", p.percent);
        }
        last = line;
        if v.campaign.state.is_final() {
            bar.finish_and_clear();
            outln!("{}", describe(&v));
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

fn counts(v: &CampaignView) -> String {
    let p = &v.progress;
    format!(
        "{}: sent {} · delivered {} · failed {} · suppressed {} · queued {} · {}/min",
        v.campaign.state.name(),
        p.sent + p.delivered,
        p.delivered,
        p.failed + p.expired,
        p.suppressed,
        p.queued,
        p.per_minute_now
    )
}

fn summary(v: &CampaignView) -> String {
    format!(
        "{}  {:<10} {:>5.1}% of {}  {}",
        v.campaign.id,
        v.campaign.state.name(),
        v.progress.percent,
        v.progress.recipients,
        counts(v)
    )
}

/// A campaign's status, as `campaign status` prints it.
pub fn describe(v: &CampaignView) -> String {
    let c = &v.campaign;
    let p = &v.progress;
    let name = match c.name.is_empty() {
        true => String::new(),
        false => format!(" ({})", c.name),
    };
    let mut out = format!(
        "campaign {}{name} on {}: {}",
        c.id,
        c.backend,
        c.state.name()
    );
    if let Some(why) = &c.state_reason {
        out.push_str(&format!(" ({why})"));
    }
    out.push_str(&format!(
        "\n  {:.1}% of {} recipients reached: {} sent, {} delivered, {} failed, {} suppressed, {} queued",
        p.percent,
        p.recipients,
        p.sent + p.delivered,
        p.delivered,
        p.failed + p.expired,
        p.suppressed,
        p.queued
    ));
    if p.not_sent > 0 {
        out.push_str(&format!(", {} never sent", p.not_sent));
    }
    let rate = p
        .delivery_rate
        .map_or("—".to_owned(), |r| format!("{:.1}%", r * 100.0));
    let eta = p.eta_seconds.map_or("—".to_owned(), |s| {
        humantime::format_duration(Duration::from_secs(s)).to_string()
    });
    out.push_str(&format!(
        "\n  segments {}, cost {:.4}, delivery rate {rate}, {}/min now, ETA {eta}",
        p.segments, p.cost, p.per_minute_now
    ));
    if let Some(e) = &p.last_error {
        out.push_str(&format!("\n  last provider error: {e}"));
    }
    out
}

/// A preview, as `campaign preview` and `start` print it.
pub fn describe_preview(p: &Value) -> String {
    let n = |k: &str| p[k].as_u64().unwrap_or(0);
    let mut out = format!(
        "{} lines: {} to send, {} invalid, {} duplicates, {} suppressed, {} missing a variable\n\
         segments {} (GSM-7 {}, UCS-2 {}), cost {:.4}",
        n("lines"),
        n("to_send"),
        n("invalid"),
        n("duplicates"),
        n("suppressed"),
        n("missing"),
        n("segments"),
        p["encodings"]["gsm7"].as_u64().unwrap_or(0),
        p["encodings"]["ucs2"].as_u64().unwrap_or(0),
        p["cost"].as_f64().unwrap_or(0.0),
    );
    if let Some(languages) = p["languages"].as_object() {
        let each: Vec<String> = languages.iter().map(|(k, v)| format!("{k} {v}")).collect();
        out.push_str(&format!(", languages: {}", each.join(", ")));
    }
    for (key, what) in [("invalid_lines", "invalid"), ("missing_lines", "missing")] {
        for l in p[key].as_array().into_iter().flatten() {
            out.push_str(&format!(
                "\n  line {}: {what}: {}",
                l["line"],
                l["reason"].as_str().unwrap_or_default()
            ));
        }
    }
    for problem in p["problems"].as_array().into_iter().flatten() {
        out.push_str(&format!(
            "\n  problem: {}",
            problem.as_str().unwrap_or_default()
        ));
    }
    out
}
