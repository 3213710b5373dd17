//! A campaign's audience at scale, on a generated CSV file (in a temporary
//! directory): `phone,name,city,language`, numbers written three ways
//! (`+2547…`, `2547…`, `07…`, region KE), 10 % in a second language
//! (Swahili), 5 % of names in Cyrillic or Chinese (UCS-2 texts), 1 % invalid
//! numbers, 1 % duplicates.
//!
//! - **preview**: [`smsflow::campaign::preview::preview`] on the whole file
//!   (read, parse, normalise, dedupe, render, count segments, cost);
//! - **expand**: what the expanding stage does per recipient: read, parse,
//!   normalise, dedupe, render and count (`prepare_batch`), then build the
//!   `OutboundMessage` (id derived from campaign + number) and Avro-encode
//!   it (`schema::outbound()`), batch by batch; once with rayon at full
//!   width, once on a 1-thread pool, in the same run (the speed-up);
//! - **peak RSS** (`VmHWM`) after each step.
//!
//! ```text
//! cargo bench --bench campaign                      # 1,000,000 rows
//! cargo bench --bench campaign -- --e164            # numbers all written +2547…
//! cargo bench --bench campaign -- --rows 200000
//! ```
//!
//! Run by `cargo test --benches` (no `--bench` argument) it does a small
//! run as a smoke test: it fails when a count is wrong, never on a time.

use std::fs::File;
use std::hint::black_box;
use std::io::{BufReader, BufWriter, Write};
use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{ensure, Context};
use clap::Parser;
use rayon::prelude::*;
use smsflow::campaign::audience::{CsvAudience, Seen};
use smsflow::campaign::preview::{prepare_batch, preview, PreviewOptions, Prices, BATCH};
use smsflow::campaign::render::Texts;
use smsflow::message::{Connection, OutboundMessage, Priority};
use smsflow::schema;
use smsflow::sms::numbers::{normalize, Country};

#[derive(Parser, Debug)]
struct Args {
    /// Data rows in the generated file.
    #[arg(long, default_value_t = 1_000_000)]
    rows: usize,
    /// Write every valid number in E.164 (`+2547…`): no number goes through
    /// libphonenumber (see `normalize` in the output for its cost).
    #[arg(long)]
    e164: bool,
    /// Passed by `cargo bench`; without it (`cargo test --benches`) the run is a smoke test.
    #[arg(long)]
    bench: bool,
}

/// Peak and current RSS in MB, from /proc/self/status.
fn rss_mb() -> (f64, f64) {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name)?.strip_prefix(':'))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
            .map_or(f64::NAN, |kb| kb / 1024.0)
    };
    (field("VmHWM"), field("VmRSS"))
}

/// What the generator wrote.
struct Made {
    rows: usize,
    invalid: u64,
    duplicates: u64,
    second_language: u64,
}

fn generate(path: &Path, rows: usize, e164: bool) -> anyhow::Result<Made> {
    const NAMES: [&str; 6] = ["Amina", "Otieno", "Wanjiru", "Kamau", "Achieng", "Mwangi"];
    const WIDE: [&str; 2] = ["Дмитрий", "李明"];
    const CITIES: [&str; 5] = ["Nairobi", "Mombasa", "Kisumu", "Nakuru", "Eldoret"];
    let mut out = BufWriter::new(File::create(path)?);
    writeln!(out, "phone,name,city,language")?;
    let mut made = Made {
        rows,
        invalid: 0,
        duplicates: 0,
        second_language: 0,
    };
    for i in 0..rows {
        // A subscriber number unique per row: 7 + 8 digits.
        let n = 10_000_000 + i;
        let phone = match i % 100 {
            37 => {
                made.invalid += 1;
                format!("07{n}x")
            }
            // The same number as the row before, written another way.
            73 => {
                made.duplicates += 1;
                if e164 {
                    format!("+2547{}", n - 1)
                } else {
                    format!("07{}", n - 1)
                }
            }
            _ if e164 => format!("+2547{n}"),
            x if x % 3 == 0 => format!("+2547{n}"),
            x if x % 3 == 1 => format!("2547{n}"),
            _ => format!("07{n}"),
        };
        let name = if i % 20 == 5 {
            WIDE[i / 20 % 2]
        } else {
            NAMES[i % NAMES.len()]
        };
        let language = if i % 10 == 3 {
            // Counted when the row is sent (not invalid, not a duplicate).
            if !matches!(i % 100, 37 | 73) {
                made.second_language += 1;
            }
            "sw"
        } else {
            ""
        };
        writeln!(
            out,
            "{phone},{name},{},{language}",
            CITIES[i % CITIES.len()]
        )?;
    }
    out.flush()?;
    Ok(made)
}

fn texts() -> Texts {
    Texts {
        texts: [
            ("en".to_owned(), "Hello {name}, the {city} clinic is open on Saturday from 8 to 12. Bring your card. Reply STOP to opt out.".to_owned()),
            ("sw".to_owned(), "Habari {name}, kliniki ya {city} iko wazi Jumamosi saa 2 hadi 6. Leta kadi yako. Jibu STOP kuacha.".to_owned()),
        ]
        .into(),
        default_language: "en".into(),
        defaults: Default::default(),
    }
}

/// Totals of an expansion, to check both runs did the same work.
#[derive(Debug, PartialEq, Default)]
struct Expanded {
    messages: u64,
    segments: u64,
    bytes: u64,
}

/// Read, parse, normalise, dedupe, render, count and encode every recipient.
fn expand(path: &Path, texts: &Texts) -> anyhow::Result<Expanded> {
    let codec = schema::outbound();
    let campaign = uuid::Uuid::new_v5(&uuid::Uuid::NAMESPACE_OID, b"bench-campaign");
    let campaign_id = campaign.to_string();
    let mut audience = CsvAudience::new(BufReader::new(File::open(path)?), Country::parse("KE"))?;
    let mut seen = Seen::new();
    let mut total = Expanded::default();
    loop {
        let batch = audience.next_batch(BATCH)?;
        if batch.is_empty() {
            return Ok(total);
        }
        let unique: Vec<_> = batch
            .into_iter()
            .filter_map(Result::ok)
            .filter(|r| seen.first(&r.phone))
            .collect();
        let prepared = prepare_batch(texts, unique, &|_| None);
        let (messages, segments, bytes) = prepared
            .into_par_iter()
            .filter_map(Result::ok)
            .map(|p| {
                let id = uuid::Uuid::new_v5(&campaign, p.recipient.phone.as_bytes());
                let mut m =
                    OutboundMessage::new(Connection::new("bulk", p.recipient.phone), p.text);
                m.id = id.to_string();
                m.campaign_id = Some(campaign_id.clone());
                m.priority = Priority::Bulk;
                m.encoding = Some(p.encoding);
                m.segments = p.segments;
                let encoded = codec.encode(&m).map(|v| v.len() as u64).unwrap_or(0);
                (1u64, p.segments as u64, black_box(encoded))
            })
            .reduce(|| (0, 0, 0), |a, b| (a.0 + b.0, a.1 + b.1, a.2 + b.2));
        total.messages += messages;
        total.segments += segments;
        total.bytes += bytes;
    }
}

/// The process's CPU time so far (user + system, all threads).
fn cpu() -> Duration {
    // SAFETY: getrusage only writes the struct it is given.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    if unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut usage) } != 0 {
        return Duration::ZERO;
    }
    let tv = |t: libc::timeval| Duration::new(t.tv_sec as u64, t.tv_usec as u32 * 1000);
    tv(usage.ru_utime) + tv(usage.ru_stime)
}

/// Wall time; the CPU time is printed, as on a shared machine the wall time
/// of several threads also measures the other processes.
fn timed<T>(f: impl FnOnce() -> anyhow::Result<T>) -> anyhow::Result<(T, Duration)> {
    let (start, cpu_start) = (Instant::now(), cpu());
    let out = f()?;
    let wall = start.elapsed();
    println!(
        "  [wall {:.2} s, cpu {:.2} s]",
        wall.as_secs_f64(),
        (cpu() - cpu_start).as_secs_f64()
    );
    Ok((out, wall))
}

fn main() -> anyhow::Result<()> {
    let mut args = Args::parse();
    if !args.bench {
        args.rows = args.rows.min(20_000);
    }
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("audience.csv");
    let (made, took) = timed(|| generate(&path, args.rows, args.e164))?;
    let size = std::fs::metadata(&path)?.len() as f64 / 1e6;
    println!(
        "campaign audience: {} rows, {size:.1} MB, generated in {:.2} s; rayon threads: {}",
        made.rows,
        took.as_secs_f64(),
        rayon::current_num_threads()
    );

    let texts = texts();
    let prices = Prices {
        per_segment: 0.8,
        prefixes: [("+2547".to_owned(), 0.5)].into(),
    };
    let mut opts = PreviewOptions::new(&texts, &prices);
    opts.region = Country::parse("KE");
    let (p, took) =
        timed(|| preview(BufReader::new(File::open(&path)?), &opts).context("preview"))?;
    let (peak, _) = rss_mb();
    println!(
        "preview:  {:>6.2} s  ({:.0} lines/s)  to_send {} invalid {} duplicates {} segments {} gsm7 {} ucs2 {} languages {:?} cost {:.1}; peak RSS {peak:.0} MB",
        took.as_secs_f64(),
        p.lines as f64 / took.as_secs_f64(),
        p.to_send,
        p.invalid,
        p.duplicates,
        p.segments,
        p.encodings.gsm7,
        p.encodings.ucs2,
        p.languages,
        p.cost,
    );
    ensure!(
        p.lines == made.rows as u64,
        "lines {} != rows {}",
        p.lines,
        made.rows
    );
    ensure!(
        p.invalid == made.invalid,
        "invalid {} != {}",
        p.invalid,
        made.invalid
    );
    ensure!(
        p.duplicates == made.duplicates,
        "duplicates {} != {}",
        p.duplicates,
        made.duplicates
    );
    ensure!(
        p.languages.get("sw") == Some(&made.second_language),
        "{:?}",
        p.languages
    );

    // Normalising alone: national numbers go through libphonenumber.
    let national: Vec<String> = (0..args.rows.min(200_000))
        .map(|i| format!("07{}", 10_000_000 + i))
        .collect();
    let ke = Country::parse("KE");
    let normalise = || {
        national
            .par_iter()
            .filter(|n| normalize(n, ke).is_ok_and(|e| e.starts_with('+')))
            .count()
    };
    let (ok_wide, took_norm_wide) = timed(|| Ok(normalise()))?;
    let one = rayon::ThreadPoolBuilder::new().num_threads(1).build()?;
    let (ok_one, took_norm_one) = timed(|| Ok(one.install(normalise)))?;
    ensure!(
        ok_wide == national.len() && ok_one == ok_wide,
        "normalised {ok_wide} and {ok_one} of {}",
        national.len()
    );
    println!(
        "normalize (07… with region KE), {} numbers: {:.2} µs each on {} threads, {:.2} µs on 1 (speed-up {:.2}×)",
        national.len(),
        took_norm_wide.as_secs_f64() * 1e6 / national.len() as f64,
        rayon::current_num_threads(),
        took_norm_one.as_secs_f64() * 1e6 / national.len() as f64,
        took_norm_one.as_secs_f64() / took_norm_wide.as_secs_f64(),
    );

    let (wide, took_wide) = timed(|| expand(&path, &texts))?;
    let (peak, _) = rss_mb();
    println!(
        "expand, {} threads: {:>6.2} s  ({:.0} messages/s, {} segments, {:.1} MB of Avro); peak RSS {peak:.0} MB",
        rayon::current_num_threads(),
        took_wide.as_secs_f64(),
        wide.messages as f64 / took_wide.as_secs_f64(),
        wide.segments,
        wide.bytes as f64 / 1e6,
    );
    let (single, took_one) = timed(|| one.install(|| expand(&path, &texts)))?;
    let (peak, _) = rss_mb();
    println!(
        "expand, 1 thread:  {:>6.2} s  ({:.0} messages/s); speed-up {:.2}×; peak RSS {peak:.0} MB",
        took_one.as_secs_f64(),
        single.messages as f64 / took_one.as_secs_f64(),
        took_one.as_secs_f64() / took_wide.as_secs_f64(),
    );
    ensure!(wide == single, "the runs differ: {wide:?} vs {single:?}");
    ensure!(
        wide.messages == p.to_send && wide.segments == p.segments,
        "expand {wide:?} vs preview to_send {} segments {}",
        p.to_send,
        p.segments
    );
    Ok(())
}
