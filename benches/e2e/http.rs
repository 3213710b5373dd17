//! The `http` and `latency` parts: the discard backend's GET inbound under
//! `wrk`, and 1,000 messages/s through it, request→sink latency.

use std::time::Duration;

use anyhow::{ensure, Context};
use smsflow::config::Pipeline;

use crate::load::{phone, start, Observed, BACKEND, PHONES};
use crate::measure::which;

/// `wrk` with `connections` open connections against the discard
/// backend's GET inbound for `seconds`.
pub async fn http_ingress(p: Pipeline, seconds: u64, connections: u32) -> anyhow::Result<String> {
    let wrk = which("wrk").context(
        "wrk is not installed: `apt-get install wrk` (scripts/bench and scripts/test install it)",
    )?;
    let observed = Observed::new(usize::MAX >> 4);
    let running = start(p, &observed, true).await?;
    let addr = running
        .http_addr()
        .context("the HTTP server is not listening")?;
    let dir = tempfile::tempdir()?;
    let script = dir.path().join("inbound.lua");
    std::fs::write(
        &script,
        format!(
            r#"-- a different phone number per request, Kannel-style GET
local n = 0
request = function()
  n = n + 1
  return wrk.format("GET", string.format("/backend/{BACKEND}/?identity=%%2B1555%07d&text=echo+hi", n % {PHONES}))
end
"#
        ),
    )?;
    let out = tokio::process::Command::new(wrk)
        .args(["-t1", &format!("-c{connections}"), &format!("-d{seconds}s")])
        .args(["--latency", "-s"])
        .arg(&script)
        .arg(format!("http://{addr}/"))
        .output()
        .await?;
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    ensure!(
        out.status.success(),
        "wrk failed: {text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let field = |prefix: &str| -> Option<String> {
        text.lines()
            .map(str::trim)
            .find_map(|l| l.strip_prefix(prefix))
            .map(|v| v.trim().to_owned())
    };
    let rate: f64 = field("Requests/sec:")
        .and_then(|v| v.parse().ok())
        .with_context(|| format!("no Requests/sec in wrk's output:\n{text}"))?;
    let total: u64 = text
        .lines()
        .find_map(|l| {
            l.trim()
                .split_once(" requests in ")
                .map(|(n, _)| n.trim().parse().ok())
        })
        .flatten()
        .with_context(|| format!("no request count in wrk's output:\n{text}"))?;
    let refused: u64 = field("Non-2xx or 3xx responses:")
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    let p99 = field("99%").unwrap_or_default();
    // Every request answered OK must reach the sink.
    observed
        .wait_for(total - refused, Duration::from_secs(120))
        .await?;
    running.shutdown().await?;
    ensure!(
        refused == 0,
        "{refused} of {total} requests were refused:\n{text}"
    );
    Ok(format!(
        "wrk -t1 -c{connections} {seconds}s: {total} requests, {rate:.0} req/s, p99 {p99}, all {total} at the sink"
    ))
}

/// `rate` messages per second through the HTTP ingress for `seconds`;
/// latency from sending the request to the sink's send call.
pub async fn moderate_latency(p: Pipeline, seconds: u64, rate: u64) -> anyhow::Result<String> {
    let observed = Observed::new(usize::MAX >> 4);
    let running = start(p, &observed, true).await?;
    let addr = running
        .http_addr()
        .context("the HTTP server is not listening")?;
    let client = reqwest::Client::new();
    let url = format!("http://{addr}/backend/{BACKEND}/");
    // Warm up: connections, group joins.
    for i in 0..50 {
        let phone = phone(i);
        let r = client
            .get(&url)
            .query(&[("identity", phone.as_str()), ("text", "echo warm up")])
            .send()
            .await?;
        ensure!(r.status().is_success(), "warm-up request: {}", r.status());
    }
    observed.wait_for(50, Duration::from_secs(60)).await?;
    observed
        .latency
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .reset();
    let n = seconds * rate;
    let mut tick = tokio::time::interval(Duration::from_secs(1) / rate as u32);
    let mut requests = tokio::task::JoinSet::new();
    for i in 0..n {
        tick.tick().await;
        let (client, url, text) = (client.clone(), url.clone(), observed.stamp());
        requests.spawn(async move {
            let phone = phone(i);
            client
                .get(&url)
                .query(&[("identity", phone.as_str()), ("text", text.as_str())])
                .send()
                .await
                .map(|r| r.status())
        });
    }
    // What went wrong, with how many times each: a status or an error.
    let mut failed = std::collections::BTreeMap::<String, usize>::new();
    while let Some(r) = requests.join_next().await {
        let what = match r {
            Ok(Ok(status)) if status.is_success() => continue,
            Ok(Ok(status)) => status.to_string(),
            Ok(Err(e)) => e.to_string(),
            Err(e) => e.to_string(),
        };
        *failed.entry(what).or_default() += 1;
    }
    let count: usize = failed.values().sum();
    ensure!(count == 0, "{count} of {n} requests failed: {failed:?}");
    observed.wait_for(50 + n, Duration::from_secs(60)).await?;
    running.shutdown().await?;
    Ok(format!(
        "{rate} msg/s for {seconds} s through HTTP: request→sink {}",
        observed.percentiles()
    ))
}
