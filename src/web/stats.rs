//! The statistics' JSON API, from `sms.stats` ([`crate::state::stats`]):
//!
//! - `GET /api/stats?window=minute&dimension=backend&value=kannel&from=…&to=…`:
//!   one dimension value's windows in a range, and their total;
//! - `GET /api/stats/top?window=hour&dimension=keyword&by=inbound&n=10`:
//!   the values of a dimension with the highest count over a range.
//!
//! `from` and `to` are milliseconds since the epoch or RFC 3339 times; the
//! windows starting in `from..to` count. By default `to` is the end of the
//! current window and `from` 60 minutes, 24 hours or 30 days before it.
//! A bad parameter is a 400 naming it.

use std::sync::Arc;

use axum::extract::{RawQuery, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde_json::{json, Value};

use super::actions::HttpState;
use crate::backends::webhook::form_text;
use crate::http::error;
use crate::message::{now_millis, StatsDimension, StatsWindow};
use crate::state::stats::{Range, Totals, COUNTS};

type S = State<Arc<HttpState>>;

/// The most windows one question may span.
pub const MAX_WINDOWS: i64 = 10_000;
/// The most values `/api/stats/top` lists.
pub const MAX_TOP: usize = 100;

pub fn routes() -> Router<Arc<HttpState>> {
    Router::new()
        .route("/api/stats", get(series))
        .route("/api/stats/top", get(top))
}

/// A parameter that is wrong, and why.
#[derive(Debug, PartialEq)]
pub struct Bad {
    pub field: &'static str,
    pub message: String,
}

fn bad(field: &'static str, message: impl Into<String>) -> Bad {
    Bad {
        field,
        message: message.into(),
    }
}

/// A question to `/api/stats` or `/api/stats/top`.
#[derive(Debug, PartialEq)]
pub struct Question {
    pub range: Range,
    pub dimension: StatsDimension,
    pub value: String,
    /// `top` only: the count to order by, and how many values.
    pub by: String,
    pub n: usize,
}

pub fn window_named(name: &str) -> Option<StatsWindow> {
    [StatsWindow::Minute, StatsWindow::Hour, StatsWindow::Day]
        .into_iter()
        .find(|w| w.name() == name)
}

pub fn dimension_named(name: &str) -> Option<StatsDimension> {
    use StatsDimension::*;
    [Total, Backend, App, Keyword, Campaign]
        .into_iter()
        .find(|d| d.name() == name)
}

/// How many windows a range spans by default: an hour of minutes, a day of
/// hours, 30 days.
pub fn default_span(w: StatsWindow) -> i64 {
    match w {
        StatsWindow::Minute => 60,
        StatsWindow::Hour => 24,
        StatsWindow::Day => 30,
    }
}

/// A time: ms since the epoch, or RFC 3339.
fn time(field: &'static str, text: &str) -> Result<i64, Bad> {
    let text = text.trim();
    if let Ok(ms) = text.parse::<i64>() {
        return Ok(ms);
    }
    chrono::DateTime::parse_from_rfc3339(text)
        .map(|t| t.timestamp_millis())
        .map_err(|_| {
            bad(
                field,
                format!(
                    "{text:?} is not a time: give milliseconds since the epoch \
                     (1764000000000) or an RFC 3339 time (2025-11-24T16:00:00Z)"
                ),
            )
        })
}

/// The question in the query `raw`, for the top list when `top`, with the
/// clock at `now`.
pub fn question(raw: &str, top: bool, now: i64) -> Result<Question, Bad> {
    let params = form_text(raw.as_bytes()).map_err(|e| bad("query", e.to_string()))?;
    let allowed: &[&str] = match top {
        true => &["window", "dimension", "from", "to", "by", "n"],
        false => &["window", "dimension", "value", "from", "to"],
    };
    let mut names: Vec<&String> = params.keys().collect();
    names.sort();
    if let Some(other) = names.into_iter().find(|k| !allowed.contains(&k.as_str())) {
        return Err(bad(
            "query",
            format!(
                "unknown parameter {other:?}: expected {}",
                allowed.join(", ")
            ),
        ));
    }
    let get = |k: &str| params.get(k).map(|v| v.trim()).filter(|v| !v.is_empty());
    let window = match get("window") {
        None => StatsWindow::Minute,
        Some(w) => window_named(w).ok_or_else(|| {
            bad(
                "window",
                format!("{w:?} is not a window: expected minute, hour or day"),
            )
        })?,
    };
    let dimension = match get("dimension") {
        None if top => {
            return Err(bad(
                "dimension",
                "name the dimension to rank: backend, app, keyword or campaign",
            ))
        }
        None => StatsDimension::Total,
        Some(d) => dimension_named(d).ok_or_else(|| {
            bad(
                "dimension",
                format!(
                    "{d:?} is not a dimension: expected total, backend, app, keyword or campaign"
                ),
            )
        })?,
    };
    let value = get("value").unwrap_or_default().to_owned();
    match (top, dimension) {
        (true, StatsDimension::Total) => {
            return Err(bad(
                "dimension",
                "total has a single value: rank backend, app, keyword or campaign",
            ))
        }
        (false, StatsDimension::Total) if !value.is_empty() => {
            return Err(bad("value", "total has no value: leave value out"))
        }
        (false, d) if d != StatsDimension::Total && value.is_empty() => {
            return Err(bad(
                "value",
                format!("name the {} whose statistics you want", d.name()),
            ))
        }
        _ => {}
    }
    let len = window.millis();
    let to = match get("to") {
        Some(t) => time("to", t)?,
        None => window.start_of(now) + len,
    };
    let from = match get("from") {
        Some(f) => time("from", f)?,
        None => to - default_span(window) * len,
    };
    if from >= to {
        return Err(bad(
            "from",
            format!("from ({from}) must be before to ({to})"),
        ));
    }
    if (to - from) / len > MAX_WINDOWS {
        return Err(bad(
            "from",
            format!(
                "the range spans {} {}s: ask for at most {MAX_WINDOWS} at a time",
                (to - from) / len,
                window.name()
            ),
        ));
    }
    let by = match get("by") {
        Some(b) if COUNTS.contains(&b) => b.to_owned(),
        Some(b) => {
            return Err(bad(
                "by",
                format!(
                    "{b:?} is not a count: expected one of {}",
                    COUNTS.join(", ")
                ),
            ))
        }
        None => match dimension {
            StatsDimension::Keyword | StatsDimension::App => "inbound".into(),
            _ => "outbound".into(),
        },
    };
    let n = match get("n") {
        None => 10,
        Some(n) => match n.parse::<usize>() {
            Ok(n) if (1..=MAX_TOP).contains(&n) => n,
            _ => {
                return Err(bad(
                    "n",
                    format!("{n:?} is not a number from 1 to {MAX_TOP}"),
                ))
            }
        },
    };
    Ok(Question {
        range: Range { window, from, to },
        dimension,
        value,
        by,
        n,
    })
}

/// `t` as JSON, with `extra` fields first.
fn summary(extra: Value, t: &Totals) -> Value {
    let mut v = extra;
    if let (Some(obj), Ok(Value::Object(s))) =
        (v.as_object_mut(), serde_json::to_value(t.summary()))
    {
        obj.extend(s);
    }
    v
}

async fn answer(s: &HttpState, raw: Option<String>, top: bool) -> Response {
    let q = match question(raw.as_deref().unwrap_or_default(), top, now_millis()) {
        Ok(q) => q,
        Err(b) => return error(StatusCode::BAD_REQUEST, Some(b.field), b.message),
    };
    let book = match s.tables.stats().await {
        Ok(b) => b,
        Err(e) => {
            return error(
                StatusCode::SERVICE_UNAVAILABLE,
                Some("bus"),
                format!("cannot read the statistics: {e}"),
            )
        }
    };
    let r = q.range;
    let head = json!({
        "window": r.window.name(),
        "dimension": q.dimension.name(),
        "from": r.from,
        "to": r.to,
    });
    let mut body = head;
    if top {
        // Known to be a count: checked by `question`.
        let values = book.top(r, q.dimension, &q.by, q.n).unwrap_or_default();
        body["by"] = json!(q.by);
        body["top"] = values
            .iter()
            .map(|(v, t)| summary(json!({ "value": v }), t))
            .collect();
    } else {
        let len = r.window.millis();
        let points = book.series(r, q.dimension, &q.value);
        body["value"] = json!(q.value);
        body["points"] = points
            .iter()
            .map(|p| summary(json!({ "start": p.start, "end": p.start + len }), &p.totals))
            .collect();
        body["total"] = summary(json!({}), &book.total(r, q.dimension, &q.value));
    }
    Json(body).into_response()
}

async fn series(State(s): S, RawQuery(raw): RawQuery) -> Response {
    answer(&s, raw, false).await
}

async fn top(State(s): S, RawQuery(raw): RawQuery) -> Response {
    answer(&s, raw, true).await
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: i64 = 1_764_000_030_000; // 2025-11-24 16:00:30 UTC

    fn field(raw: &str, top: bool) -> &'static str {
        question(raw, top, NOW).unwrap_err().field
    }

    #[test]
    fn defaults_cover_the_last_hour_of_minutes() {
        let q = question("", false, NOW).unwrap();
        assert_eq!(q.range.window, StatsWindow::Minute);
        assert_eq!(q.range.to, 1_764_000_060_000);
        assert_eq!(q.range.from, 1_764_000_060_000 - 3_600_000);
        assert_eq!((q.dimension, q.value.as_str()), (StatsDimension::Total, ""));
        let q = question("window=day&dimension=keyword&by=sent&n=3", true, NOW).unwrap();
        assert_eq!((q.by.as_str(), q.n), ("sent", 3));
        assert_eq!(q.range.to - q.range.from, 30 * 86_400_000);
        let q = question("dimension=keyword", true, NOW).unwrap();
        assert_eq!(q.by, "inbound");
        let q = question(
            "dimension=backend&value=kannel&from=2025-11-24T15:00:00Z&to=1764000000000",
            false,
            NOW,
        )
        .unwrap();
        assert_eq!(
            (q.range.from, q.range.to),
            (1_763_996_400_000, 1_764_000_000_000)
        );
    }

    #[test]
    fn each_bad_parameter_is_named() {
        assert_eq!(field("window=week", false), "window");
        assert_eq!(field("dimension=country&value=x", false), "dimension");
        assert_eq!(field("dimension=backend", false), "value");
        assert_eq!(field("value=kannel", false), "value");
        assert_eq!(field("from=yesterday", false), "from");
        assert_eq!(field("to=soon", false), "to");
        assert_eq!(field("from=2000&to=1000", false), "from");
        assert_eq!(field("from=0", false), "from", "too many windows");
        assert_eq!(field("colour=red", false), "query");
        assert_eq!(field("n=3", false), "query", "n is for top lists");
        assert_eq!(field("", true), "dimension");
        assert_eq!(field("dimension=total", true), "dimension");
        assert_eq!(field("dimension=keyword&by=joy", true), "by");
        assert_eq!(field("dimension=keyword&n=0", true), "n");
        assert_eq!(field("dimension=keyword&n=101", true), "n");
        assert_eq!(field("dimension=keyword&value=x", true), "query");
        let e = question("window=week", false, NOW).unwrap_err();
        assert!(e.message.contains("\"week\""), "{e:?}");
    }
}
