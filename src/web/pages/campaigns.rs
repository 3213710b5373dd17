//! The campaigns pages: the list, and one campaign's progress with its
//! chart and its Pause / Resume / Cancel buttons. (The form that starts one
//! is [`super::campaign_form`].)
//!
//! Both pages reload themselves (an HTTP `Refresh` header, which browsers
//! treat as `<meta http-equiv="refresh">`) while a campaign is sending:
//! no script.

use axum::extract::{Path, RawQuery, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};

use super::campaign_chart::per_minute_chart;
use super::form::{not_found, Form, S};
use crate::campaign::control::{self, Command, Ctx};
use crate::campaign::view::{CampaignView, ProgressView};
use crate::message::{now_millis, Campaign, CampaignState};
use crate::web::actions::HttpState;
use crate::web::campaigns::{view, views};
use crate::web::html::{csrf_field, esc, page, time, url};

/// The nav entry of every campaigns page.
pub(super) const NAV: &str = "/campaigns/";

/// Seconds between reloads of a page whose campaign is sending.
const REFRESH_RUNNING: &str = "2";
/// Seconds between reloads of a page whose campaign waits for its start.
const REFRESH_SCHEDULED: &str = "10";

/// What the operations need, from the server's state.
pub(super) fn ctx(s: &HttpState) -> Ctx<'_> {
    Ctx {
        pipeline: &s.pipeline,
        tables: &s.tables,
        producer: &s.producer,
    }
}

/// The 404 page of a pipeline without `campaigns:`, or `None` when it has it.
pub(super) fn campaigns_off(s: &HttpState) -> Option<Response> {
    s.pipeline.campaigns.is_none().then(|| {
        not_found(
            "Campaigns are off in this pipeline: add a campaigns: section to its configuration \
             (campaigns: {} turns them on with every setting at its default) and restart it",
        )
    })
}

/// A cost in the operator's currency: 2 decimals, up to 4 when they matter.
pub(super) fn money(x: f64) -> String {
    let mut s = format!("{x:.4}");
    while s.ends_with('0') && s.len() - s.find('.').unwrap_or(s.len()) > 3 {
        s.pop();
    }
    s
}

/// A percentage that says 100 only when everything is done.
pub(super) fn percent(p: f64) -> String {
    if p >= 100.0 {
        "100 %".to_owned()
    } else {
        format!("{:.1} %", (p.max(0.0) * 10.0).floor() / 10.0)
    }
}

fn duration(seconds: u64) -> String {
    match seconds {
        s if s >= 3600 => format!("{} h {} min", s / 3600, s / 60 % 60),
        s if s >= 60 => format!("{} min {} s", s / 60, s % 60),
        s => format!("{s} s"),
    }
}

fn rate(p: &ProgressView) -> String {
    p.delivery_rate
        .map_or_else(|| "—".to_owned(), |r| format!("{:.1} %", r * 100.0))
}

/// `<progress>` with its percentage beside it (`id` on both, suffixed).
fn progress_bar(p: &ProgressView, id: &str) -> String {
    format!(
        "<span class=\"bar\"><progress id=\"{id}\" max=\"100\" value=\"{:.2}\">{pct}</progress> \
         <span id=\"{id}-percent\" class=\"percent\">{pct}</span></span>",
        p.percent.clamp(0.0, 100.0),
        pct = percent(p.percent),
    )
}

fn state_label(c: &Campaign) -> String {
    format!("<span class=\"state state-{0}\">{0}</span>", c.state.name())
}

/// How often the page of a campaign in `state` with `p` reloads, if at all.
fn refresh_of(state: CampaignState, p: &ProgressView) -> Option<&'static str> {
    match state {
        CampaignState::Running => Some(REFRESH_RUNNING),
        // Outcomes of what was released still come in.
        _ if p.queued > 0 && !state.is_final() => Some(REFRESH_RUNNING),
        CampaignState::Scheduled => Some(REFRESH_SCHEDULED),
        _ => None,
    }
}

fn refreshing(mut res: Response, every: Option<&'static str>) -> Response {
    if let Some(seconds) = every {
        res.headers_mut()
            .insert(header::REFRESH, HeaderValue::from_static(seconds));
    }
    res
}

pub(super) async fn list_page(State(s): S) -> Response {
    if let Some(off) = campaigns_off(&s) {
        return off;
    }
    let all = views(&s);
    let mut body = String::from(
        "<h1>Campaigns</h1>\n<div class=\"actions\"><a href=\"/campaigns/new\" id=\"new\">New campaign</a></div>\n",
    );
    if all.is_empty() {
        body += "<p class=\"muted\" id=\"none\">No campaigns yet.</p>\n";
        return page(StatusCode::OK, "Campaigns", NAV, &body);
    }
    body += "<table id=\"campaigns\"><thead><tr><th>Campaign</th><th>Backend</th><th>State</th><th>Progress</th>\
             <th>Sent</th><th>Delivered</th><th>Failed or expired</th><th>Suppressed</th><th>Delivery rate</th><th>Segments</th><th>Cost</th>\
             </tr></thead><tbody>\n";
    let mut every = None;
    for v in &all {
        let (c, p) = (&v.campaign, &v.progress);
        let name = if c.name.is_empty() { &c.id } else { &c.name };
        body += &format!(
            "<tr data-id=\"{id_attr}\"><td class=\"name\"><a href=\"/campaigns/{id_url}\">{name}</a> <code class=\"muted\">{id_attr}</code></td>\
             <td class=\"backend\">{backend}</td><td class=\"state\">{state}</td><td class=\"progress\">{bar}</td>\
             <td class=\"sent\">{}</td><td class=\"delivered\">{}</td><td class=\"failed\">{}</td><td class=\"suppressed\">{}</td>\
             <td class=\"rate\">{}</td><td class=\"segments\">{}</td><td class=\"cost\">{}</td></tr>\n",
            p.sent,
            p.delivered,
            p.failed + p.expired,
            p.suppressed,
            rate(p),
            p.segments,
            money(p.cost),
            id_attr = esc(&c.id),
            id_url = url(&c.id),
            name = esc(name),
            backend = esc(&c.backend),
            state = state_label(c),
            bar = progress_bar(p, &format!("progress-{}", esc(&c.id))),
        );
        if refresh_of(c.state, p) == Some(REFRESH_RUNNING) {
            every = Some(REFRESH_RUNNING);
        }
    }
    body += "</tbody></table>\n";
    refreshing(page(StatusCode::OK, "Campaigns", NAV, &body), every)
}

pub(super) async fn campaign_page(
    State(s): S,
    Path(id): Path<String>,
    RawQuery(raw): RawQuery,
) -> Response {
    if let Some(off) = campaigns_off(&s) {
        return off;
    }
    let f = Form::query(raw);
    let flash = match f.get("done").as_str() {
        "started" => Some("Started."),
        "pause" => Some("Paused."),
        "resume" => Some("Resumed."),
        "cancel" => Some("Cancelled."),
        _ => None,
    };
    detail(&s, &id, StatusCode::OK, flash.map(|m| (true, m.to_owned())))
}

/// Campaign `id`'s page, with a message above it: (success, text).
fn detail(
    s: &HttpState,
    id: &str,
    status: StatusCode,
    message: Option<(bool, String)>,
) -> Response {
    let Some(v) = view(s, id) else {
        return not_found(&format!("No campaign with id {id}"));
    };
    let CampaignView {
        campaign: c,
        progress: p,
    } = &v;
    let title = if c.name.is_empty() { &c.id } else { &c.name };
    let mut body = format!(
        "<h1 id=\"name\">{}</h1>\n<p class=\"muted\">Campaign <code id=\"campaign-id\">{}</code> on backend <code id=\"backend\">{}</code>. \
         <a href=\"/campaigns/\">All campaigns</a></p>\n",
        esc(title),
        esc(&c.id),
        esc(&c.backend)
    );
    if let Some((ok, text)) = message {
        let (class, id) = if ok {
            ("success", "flash")
        } else {
            ("error", "error-form")
        };
        body += &format!(
            "<p class=\"{class}\" id=\"{id}\" role=\"status\">{}</p>\n",
            esc(&text)
        );
    }
    body +=
        &format!(
        "<p>State: <strong id=\"state\">{}</strong>{}</p>\n<div class=\"progress-line\">{}</div>\n",
        c.state.name(),
        c.state_reason
            .as_deref()
            .map(|r| format!(" <span id=\"state-reason\" class=\"muted\">({})</span>", esc(r)))
            .unwrap_or_default(),
        progress_bar(p, "progress"),
    );
    body += &counts(p);
    body += &format!(
        "<table id=\"stats\" class=\"facts\"><tbody>\
         <tr><th>Delivery rate</th><td id=\"delivery-rate\">{}</td></tr>\
         <tr><th>Segments sent</th><td id=\"segments\">{}</td></tr>\
         <tr><th>Cost</th><td id=\"cost\">{}</td></tr>\
         <tr><th>Rate now</th><td id=\"rate\">{} messages/min</td></tr>\
         <tr><th>Time left</th><td id=\"eta\">{}</td></tr>\
         <tr><th>Last error</th><td id=\"last-error\">{}</td></tr>\
         </tbody></table>\n",
        rate(p),
        p.segments,
        money(p.cost),
        p.per_minute_now,
        p.eta_seconds.map_or_else(|| "—".to_owned(), duration),
        p.last_error
            .as_deref()
            .map_or_else(|| "none".to_owned(), esc),
    );
    body += &format!(
        "<h2>Messages sent per minute</h2>\n{}\n",
        per_minute_chart(&p.per_minute, now_millis())
    );
    body += &commands(c);
    body += &definition(c);
    let res = page(status, &format!("Campaign {title}"), NAV, &body);
    refreshing(res, refresh_of(c.state, p))
}

fn counts(p: &ProgressView) -> String {
    let rows = [
        ("recipients", "Recipients", p.recipients),
        ("reached", "Dealt with", p.reached),
        ("queued", "Queued", p.queued),
        ("sent", "Sent, no report yet", p.sent),
        ("delivered", "Delivered", p.delivered),
        ("failed", "Failed", p.failed),
        ("expired", "Expired", p.expired),
        (
            "suppressed",
            "Suppressed (opted out, blocked)",
            p.suppressed,
        ),
        ("not-sent", "Not sent (cancelled or ended)", p.not_sent),
    ];
    let mut out = String::from("<table id=\"counts\" class=\"facts\"><tbody>");
    for (id, label, n) in rows {
        out += &format!("<tr><th>{label}</th><td id=\"count-{id}\">{n}</td></tr>");
    }
    out + "</tbody></table>\n"
}

/// The buttons the campaign's state allows.
fn commands(c: &Campaign) -> String {
    use CampaignState::*;
    let allowed: &[(&str, &str)] = match c.state {
        Running | Scheduled => &[("pause", "Pause"), ("cancel", "Cancel")],
        Paused => &[("resume", "Resume"), ("cancel", "Cancel")],
        Completed | Cancelled => &[],
    };
    if allowed.is_empty() {
        return String::new();
    }
    let mut out = String::from("<div class=\"actions\" id=\"commands\">");
    for (command, label) in allowed {
        out += &format!(
            "<form method=\"post\" action=\"/campaigns/{}/{command}\">{}<button type=\"submit\" id=\"{command}\">{label}</button></form>",
            url(&c.id),
            csrf_field()
        );
    }
    out + "</div>\n"
}

fn definition(c: &Campaign) -> String {
    let opt = |v: Option<String>| v.map_or_else(|| "—".to_owned(), |v| esc(&v));
    let mut rows: Vec<String> = Vec::new();
    for (lang, text) in &c.texts {
        let default = if *lang == c.default_language {
            " (default)"
        } else {
            ""
        };
        rows.push(format!(
            "<th>Text, {0}{default}</th><td class=\"text\" data-language=\"{0}\">{1}</td>",
            esc(lang),
            esc(text)
        ));
    }
    let defaults: Vec<String> = c.defaults.iter().map(|(k, v)| format!("{k}={v}")).collect();
    let a = &c.audience;
    let from = match (&c.quiet_from, &c.quiet_until) {
        (Some(f), Some(u)) => Some(format!("{f} to {u}")),
        _ => None,
    };
    let fields = [
        (
            "defaults",
            "Defaults",
            opt((!defaults.is_empty()).then(|| defaults.join(", "))),
        ),
        ("file", "Audience file", opt(a.file.clone())),
        (
            "groups",
            "Contact groups",
            opt((!a.groups.is_empty()).then(|| a.groups.join(", "))),
        ),
        (
            "region",
            "Region of national numbers",
            opt(a.region.clone()),
        ),
        ("frozen", "Recipients frozen", a.recipients.to_string()),
        (
            "estimate",
            "Estimated segments and cost",
            format!("{} segments, {}", a.segments, money(a.cost)),
        ),
        ("start", "Start (UTC)", opt(c.start_at.map(time))),
        ("end", "End (UTC)", opt(c.end_at.map(time))),
        (
            "mps",
            "Messages per second",
            opt(c.messages_per_second.map(|r| r.to_string())),
        ),
        (
            "sps",
            "Segments per second",
            opt(c.segments_per_second.map(|r| r.to_string())),
        ),
        ("cap", "Daily cap", opt(c.daily_cap.map(|n| n.to_string()))),
        ("quiet", "Quiet hours", opt(from)),
        ("timezone", "Time zone", esc(&c.timezone)),
        (
            "auto-pause",
            "Auto-pause after errors in a row",
            match c.auto_pause_errors {
                0 => "never".to_owned(),
                n => n.to_string(),
            },
        ),
        ("created", "Created (UTC)", time(c.created_at)),
    ];
    for (id, label, value) in fields {
        rows.push(format!("<th>{label}</th><td id=\"def-{id}\">{value}</td>"));
    }
    let mut out =
        String::from("<h2>Definition</h2>\n<table id=\"definition\" class=\"facts\"><tbody>");
    for row in rows {
        out += &format!("<tr>{row}</tr>");
    }
    out + "</tbody></table>\n"
}

pub(super) async fn command(State(s): S, Path((id, command)): Path<(String, String)>) -> Response {
    if let Some(off) = campaigns_off(&s) {
        return off;
    }
    let cmd = match command.as_str() {
        "pause" => Command::Pause,
        "resume" => Command::Resume,
        "cancel" => Command::Cancel,
        other => {
            return not_found(&format!(
                "No command {other:?}: expected pause, resume or cancel"
            ))
        }
    };
    match control::command(&ctx(&s), &id, cmd).await {
        Ok(_) => Redirect::to(&format!("/campaigns/{}?done={command}", url(&id))).into_response(),
        Err(e) if e.field == "id" => not_found(&e.message),
        Err(e) if e.field == "state" => {
            detail(&s, &id, StatusCode::CONFLICT, Some((false, e.message)))
        }
        Err(e) => detail(
            &s,
            &id,
            StatusCode::SERVICE_UNAVAILABLE,
            Some((false, format!("{}; try again", e.message))),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_read_as_an_operator_expects() {
        assert_eq!(money(0.0), "0.00");
        assert_eq!(money(0.02), "0.02");
        assert_eq!(money(0.015), "0.015");
        assert_eq!(money(12.3456), "12.3456");
        assert_eq!(money(3.0), "3.00");
        assert_eq!(percent(99.99), "99.9 %", "100 only when done");
        assert_eq!(percent(100.0), "100 %");
        assert_eq!(percent(0.0), "0.0 %");
        assert_eq!(duration(45), "45 s");
        assert_eq!(duration(200), "3 min 20 s");
        assert_eq!(duration(7260), "2 h 1 min");
    }

    fn campaign(id: &str, state: CampaignState) -> Campaign {
        Campaign {
            id: id.into(),
            name: "<script>alert(1)</script>".into(),
            backend: "bulk".into(),
            texts: [("en".to_owned(), "Hi <b>{name}</b>".to_owned())].into(),
            default_language: "en".into(),
            defaults: [("name".to_owned(), "<i>friend</i>".to_owned())].into(),
            audience: crate::message::Audience::default(),
            start_at: None,
            end_at: None,
            messages_per_second: None,
            segments_per_second: None,
            daily_cap: None,
            quiet_from: None,
            quiet_until: None,
            timezone: "UTC".into(),
            auto_pause_errors: 10,
            state,
            state_reason: None,
            created_at: 0,
            updated_at: 0,
        }
    }

    #[test]
    fn the_definition_is_escaped() {
        let html = definition(&campaign("x", CampaignState::Running));
        assert!(html.contains("Hi &lt;b&gt;{name}&lt;/b&gt;"), "{html}");
        assert!(html.contains("name=&lt;i&gt;friend&lt;/i&gt;"), "{html}");
        assert!(!html.contains("<b>") && !html.contains("<i>"), "{html}");
    }

    #[test]
    fn buttons_follow_the_state() {
        let mut c = campaign("a<b", CampaignState::Running);
        let html = commands(&c);
        assert!(
            html.contains("id=\"pause\"")
                && html.contains("id=\"cancel\"")
                && !html.contains("id=\"resume\""),
            "{html}"
        );
        assert!(html.contains("/campaigns/a%3Cb/pause"), "{html}");
        c.state = CampaignState::Paused;
        let html = commands(&c);
        assert!(
            html.contains("id=\"resume\"") && !html.contains("id=\"pause\""),
            "{html}"
        );
        c.state = CampaignState::Completed;
        assert_eq!(commands(&c), "");
    }
}
