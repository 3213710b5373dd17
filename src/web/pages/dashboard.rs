//! The dashboard: the statistics of `sms.stats` as charts drawn on the
//! server ([`super::dashboard_chart`]): messages per window by direction
//! and by status, the delivery rate, latency percentiles per backend and
//! the top keywords, over the last hour by minute (`?range=hour`, the
//! default), the last day by hour (`day`) or the last 30 days by day
//! (`month`). Each chart has a table with the same numbers beside it.
//!
//! The page reloads itself (an HTTP `Refresh` header, as the campaign
//! pages do): no script.

use axum::extract::{RawQuery, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::Response;

use super::dashboard_chart::{bar_chart, line_chart, Line, Row};
use super::form::{Form, S};
use crate::message::{now_millis, StatsDimension, StatsWindow};
use crate::state::stats::{Percentiles, Range, Totals};
use crate::web::html::{esc, page, time};

pub(super) const NAV: &str = "/dashboard/";

/// The keywords the top list shows.
const TOP_KEYWORDS: usize = 10;

/// A choice of the range selector: its name, label, window, windows shown,
/// an x-axis label every so many windows, the label's part of
/// `YYYY-MM-DD HH:MM:SS`, and seconds between reloads.
struct View {
    name: &'static str,
    label: &'static str,
    window: StatsWindow,
    span: i64,
    tick_every: usize,
    clock: std::ops::Range<usize>,
    refresh: &'static str,
}

const VIEWS: [View; 3] = [
    View {
        name: "hour",
        label: "Last hour, by minute",
        window: StatsWindow::Minute,
        span: 60,
        tick_every: 15,
        clock: 11..16,
        refresh: "5",
    },
    View {
        name: "day",
        label: "Last day, by hour",
        window: StatsWindow::Hour,
        span: 24,
        tick_every: 6,
        clock: 11..16,
        refresh: "60",
    },
    View {
        name: "month",
        label: "Last 30 days, by day",
        window: StatsWindow::Day,
        span: 30,
        tick_every: 7,
        clock: 5..10,
        refresh: "300",
    },
];

const COLOURS: [(&str, &str); 6] = [
    ("inbound", "#3b7dd8"),
    ("outbound", "#d8803b"),
    ("sent", "#6f42c1"),
    ("delivered", "#1a7f37"),
    ("failed", "#b00020"),
    ("suppressed", "#8a8a8a"),
];

fn colour(name: &str) -> &'static str {
    COLOURS
        .iter()
        .find(|(n, _)| *n == name)
        .map_or("#222", |(_, c)| c)
}

/// A count as text (counts are whole numbers).
fn count(v: f64) -> String {
    format!("{}", v.round() as i64)
}

fn percent(v: f64) -> String {
    format!("{v:.1} %")
}

/// Milliseconds, read easily: `120 ms`, `3.5 s`, `2.0 min`, `1.5 h`.
pub(super) fn ms(v: f64) -> String {
    match v {
        v if v >= 3_600_000.0 => format!("{:.1} h", v / 3_600_000.0),
        v if v >= 60_000.0 => format!("{:.1} min", v / 60_000.0),
        v if v >= 1_000.0 => format!("{:.1} s", v / 1_000.0),
        v => format!("{} ms", v.round() as i64),
    }
}

fn rate_text(t: &Totals) -> String {
    t.delivery_rate()
        .map_or_else(|| "—".to_owned(), |r| percent(r * 100.0))
}

/// The statistics of the selected range, as the page shows them.
struct Data {
    slots: Vec<i64>,
    /// The total per slot (zeros where no record is).
    totals: Vec<Totals>,
    sum: Totals,
    backends: Vec<(String, Totals)>,
    keywords: Vec<(String, Totals)>,
}

fn data(book: &crate::state::stats::StatsBook, v: &View, now: i64) -> Data {
    let len = v.window.millis();
    let to = v.window.start_of(now) + len;
    let range = Range {
        window: v.window,
        from: to - v.span * len,
        to,
    };
    let slots: Vec<i64> = (0..v.span).map(|i| range.from + i * len).collect();
    let series = book.series(range, StatsDimension::Total, "");
    let totals = slots
        .iter()
        .map(|s| {
            series
                .iter()
                .find(|p| p.start == *s)
                .map(|p| p.totals.clone())
                .unwrap_or_default()
        })
        .collect();
    Data {
        slots,
        totals,
        sum: book.total(range, StatsDimension::Total, ""),
        backends: book
            .values(range, StatsDimension::Backend)
            .into_iter()
            .collect(),
        keywords: book
            .top(range, StatsDimension::Keyword, "inbound", TOP_KEYWORDS)
            .unwrap_or_default(),
    }
}

/// A chart of the counts `names` per slot, and its table.
fn counts_section(id: &str, heading: &str, d: &Data, v: &View, names: &[&'static str]) -> String {
    let clock = |s: i64| time(s)[v.clock.clone()].to_owned();
    let lines: Vec<Line> = names
        .iter()
        .map(|n| Line {
            name: n,
            colour: colour(n),
            values: d
                .totals
                .iter()
                .map(|t| t.count(n).map(|c| c as f64))
                .collect(),
        })
        .collect();
    let title = format!("{heading} per {}", v.window.name());
    let svg = line_chart(
        &format!("chart-{id}"),
        &title,
        "messages",
        &d.slots,
        &clock,
        v.tick_every,
        &lines,
        &count,
        0.0,
    );
    let mut table = format!(
        "<table id=\"table-{id}\"><thead><tr><th>{} (UTC)</th>",
        v.window.name()
    );
    for n in names {
        table += &format!("<th>{n}</th>");
    }
    table += "</tr></thead><tbody>";
    for (s, t) in d.slots.iter().zip(&d.totals) {
        table += &format!("<tr><td class=\"time\">{}</td>", time(*s));
        for n in names {
            table += &format!("<td class=\"number {n}\">{}</td>", t.count(n).unwrap_or(0));
        }
        table += "</tr>";
    }
    table += "</tbody></table>";
    format!(
        "<section id=\"{id}\"><h2>{}</h2>\n{svg}\n<details><summary>The numbers as a table</summary>{table}</details></section>\n",
        esc(&title)
    )
}

fn rate_section(d: &Data, v: &View) -> String {
    let clock = |s: i64| time(s)[v.clock.clone()].to_owned();
    let values = d
        .totals
        .iter()
        .map(|t| t.delivery_rate().map(|r| r * 100.0))
        .collect();
    let line = Line {
        name: "delivered",
        colour: colour("delivered"),
        values,
    };
    let svg = line_chart(
        "chart-rate",
        &format!("Delivery rate per {} (delivered / sent)", v.window.name()),
        "delivered / sent, %",
        &d.slots,
        &clock,
        v.tick_every,
        &[line],
        &percent,
        100.0,
    );
    let mut table = format!(
        "<table id=\"table-rate\"><thead><tr><th>{} (UTC)</th><th>sent</th><th>delivered</th><th>rate</th></tr></thead><tbody>",
        v.window.name()
    );
    for (s, t) in d.slots.iter().zip(&d.totals) {
        table += &format!(
            "<tr><td class=\"time\">{}</td><td class=\"number\">{}</td><td class=\"number\">{}</td><td class=\"number rate\">{}</td></tr>",
            time(*s),
            t.sent,
            t.delivered,
            rate_text(t)
        );
    }
    table += "</tbody></table>";
    format!(
        "<section id=\"rate\"><h2>Delivery rate</h2>\n<p class=\"muted\">Delivery reports of a window over the messages \
         sent in it; a window without sends shows no point (— in the table). Reports come after the send, so a short \
         window's rate can pass 100 %.</p>\n{svg}\n<details><summary>The numbers as a table</summary>{table}</details></section>\n"
    )
}

/// One of a total's latency histograms.
type LatencyOf = fn(&Totals) -> &crate::message::Latency;

fn latency_section(d: &Data) -> String {
    let mut out = String::from(
        "<section id=\"latency\"><h2>Latency per backend</h2>\n<p class=\"muted\">Percentiles from the merged \
         histograms: each is its bucket's upper bound (1-2-3-5-7 per decade).</p>\n",
    );
    let kinds: [(&str, &str, LatencyOf); 2] = [
        ("sent", "accepted → sent", |t| &t.accepted_to_sent),
        ("delivered", "sent → delivered", |t| &t.sent_to_delivered),
    ];
    for (id, what, of) in kinds {
        let rows: Vec<Row> = d
            .backends
            .iter()
            .filter(|(_, t)| of(t).count > 0)
            .map(|(b, t)| {
                let p = Percentiles::of(of(t));
                let v = |x: Option<i64>| x.unwrap_or(0) as f64;
                Row {
                    label: b.clone(),
                    bars: vec![
                        ("p50", "#9ec5fe", v(p.p50_ms)),
                        ("p95", "#3b7dd8", v(p.p95_ms)),
                        ("p99", "#1a4a8a", v(p.p99_ms)),
                    ],
                }
            })
            .collect();
        out += &format!("<h3>{what}</h3>\n");
        out += &bar_chart(
            &format!("chart-latency-{id}"),
            &format!("Latency {what}, per backend"),
            what,
            &rows,
            &ms,
        );
        out += "\n";
    }
    out +=
        "<table id=\"table-latency\"><thead><tr><th>backend</th><th>latency</th><th>messages</th>\
            <th>p50</th><th>p95</th><th>p99</th><th>max</th></tr></thead><tbody>";
    for (b, t) in &d.backends {
        for (_, what, of) in kinds {
            let p = Percentiles::of(of(t));
            let v = |x: Option<i64>| x.map_or_else(|| "—".to_owned(), |x| ms(x as f64));
            out += &format!(
                "<tr><td>{}</td><td>{what}</td><td class=\"number\">{}</td><td class=\"number\">{}</td>\
                 <td class=\"number\">{}</td><td class=\"number\">{}</td><td class=\"number\">{}</td></tr>",
                esc(b),
                p.count,
                v(p.p50_ms),
                v(p.p95_ms),
                v(p.p99_ms),
                v(p.max_ms)
            );
        }
    }
    if d.backends.is_empty() {
        out +=
            "<tr><td colspan=\"7\" class=\"muted\">No backend statistics in this range.</td></tr>";
    }
    out + "</tbody></table></section>\n"
}

fn keywords_section(d: &Data) -> String {
    let rows: Vec<Row> = d
        .keywords
        .iter()
        .map(|(k, t)| Row {
            label: k.clone(),
            bars: vec![("inbound", colour("inbound"), t.inbound as f64)],
        })
        .collect();
    let mut out = format!(
        "<section id=\"keywords\"><h2>Top keywords</h2>\n{}\n<table id=\"table-keywords\"><thead><tr><th>#</th>\
         <th>keyword</th><th>inbound</th><th>outbound</th></tr></thead><tbody>",
        bar_chart(
            "chart-keywords",
            &format!("The {TOP_KEYWORDS} keywords most received"),
            "messages",
            &rows,
            &count
        )
    );
    for (i, (k, t)) in d.keywords.iter().enumerate() {
        out += &format!(
            "<tr><td class=\"number\">{}</td><td class=\"keyword\">{}</td><td class=\"number inbound\">{}</td>\
             <td class=\"number outbound\">{}</td></tr>",
            i + 1,
            esc(k),
            t.inbound,
            t.outbound
        );
    }
    if d.keywords.is_empty() {
        out += "<tr><td colspan=\"4\" class=\"muted\">No keywords in this range.</td></tr>";
    }
    out + "</tbody></table></section>\n"
}

fn totals_table(t: &Totals) -> String {
    let mut out = String::from("<table class=\"facts\" id=\"totals\"><tbody>");
    for n in [
        "inbound",
        "outbound",
        "sent",
        "delivered",
        "failed",
        "suppressed",
    ] {
        out += &format!(
            "<tr><th>{n}</th><td class=\"number\" id=\"total-{n}\">{}</td></tr>",
            t.count(n).unwrap_or(0)
        );
    }
    out + &format!(
        "<tr><th>delivery rate</th><td class=\"number\" id=\"total-rate\">{}</td></tr></tbody></table>\n",
        rate_text(t)
    )
}

pub(super) async fn dashboard_page(State(s): S, RawQuery(raw): RawQuery) -> Response {
    let f = Form::query(raw);
    let asked = f.get("range");
    let Some(v) = VIEWS.iter().find(|v| asked.is_empty() || v.name == asked) else {
        let body = format!(
            "<h1>Dashboard</h1>\n<p class=\"error\" id=\"error\">No range {}: choose hour, day or month.</p>\n\
             <p><a href=\"/dashboard/\">The last hour</a></p>",
            esc(&format!("{asked:?}"))
        );
        return page(StatusCode::BAD_REQUEST, "Dashboard", NAV, &body);
    };
    let book = match s.tables.stats().await {
        Ok(b) => b,
        Err(e) => {
            let body = format!(
                "<h1>Dashboard</h1>\n<p class=\"error\" id=\"error\">The statistics cannot be read: {}. \
                 Reload the page to try again.</p>",
                esc(&e.to_string())
            );
            return page(StatusCode::SERVICE_UNAVAILABLE, "Dashboard", NAV, &body);
        }
    };
    let now = now_millis();
    let d = data(book, v, now);
    // Not a <nav>: the style sheet draws the first <nav> as the site's bar.
    let mut body = String::from(
        "<h1>Dashboard</h1>\n<div class=\"actions\" id=\"ranges\" role=\"navigation\" aria-label=\"time range\">",
    );
    for other in &VIEWS {
        body += &match other.name == v.name {
            true => format!("<strong aria-current=\"page\">{}</strong>", other.label),
            false => format!(
                "<a href=\"/dashboard/?range={}\">{}</a>",
                other.name, other.label
            ),
        };
    }
    body += &format!(
        "</div>\n<p class=\"muted\" id=\"updated\">Statistics from <code>{}</code> by event time, as of {} UTC; \
         this page reloads every {} s.</p>\n",
        esc(&s.pipeline.topics.stats),
        time(now),
        v.refresh
    );
    if d.sum == Totals::empty() {
        body += "<p class=\"notice\" id=\"empty\">No statistics in this range yet: the analytics stage writes them.</p>\n";
    }
    body += &totals_table(&d.sum);
    body += &counts_section(
        "direction",
        "Messages by direction",
        &d,
        v,
        &["inbound", "outbound"],
    );
    body += &counts_section(
        "status",
        "Messages by status",
        &d,
        v,
        &["sent", "delivered", "failed", "suppressed"],
    );
    body += &rate_section(&d, v);
    body += &latency_section(&d);
    body += &keywords_section(&d);
    let mut res = page(StatusCode::OK, "Dashboard", NAV, &body);
    res.headers_mut()
        .insert(header::REFRESH, HeaderValue::from_static(v.refresh));
    res
}
