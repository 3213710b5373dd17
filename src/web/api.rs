//! The JSON API under `/api/`: contacts (CRUD and CSV import), messaging,
//! message status, polls, the message log and opt-outs.
//!
//! Errors are `{"error": ..., "field": ...}` ([`crate::http::error`]): 400
//! for the caller's input (naming the field), 404 for an unknown id, 503
//! when the bus did not take a change (retry).

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::de::{DeserializeOwned, IgnoredAny};
use serde::Deserialize;
use serde_json::{json, Value};

use super::actions::HttpState;
use super::actions::{
    delete_contact, find_poll, import_contacts, polls, save_contact, search_contacts, send_message,
    ContactInput, Refused, LOG_OFF,
};
use crate::apps::messaging::Recipients;
use crate::backends::webhook::{form_text, source_error};
use crate::http::error;
use crate::message::Connection;
use crate::state::messagelog::Query;

type S = State<Arc<HttpState>>;

pub fn routes() -> Router<Arc<HttpState>> {
    Router::new()
        .route("/api/contacts", get(list_contacts).post(create_contact))
        .route("/api/contacts/import", post(import))
        .route(
            "/api/contacts/{id}",
            get(get_contact).put(update_contact).delete(remove_contact),
        )
        .route("/api/messages", post(send))
        .route("/api/status/{id}", get(status))
        .route("/api/polls", get(list_polls))
        .route("/api/polls/{name}", get(poll_results))
        .route("/api/polls/{name}/send", post(send_poll))
        .route("/api/log", get(search_log))
        .route("/api/optouts", get(optouts))
        .merge(super::stats::routes())
}

fn refused(r: Refused) -> Response {
    match r {
        Refused::Invalid { field, message } => error(StatusCode::BAD_REQUEST, Some(field), message),
        Refused::NotFound(message) => error(StatusCode::NOT_FOUND, None, message),
        Refused::Bus(message) => error(StatusCode::SERVICE_UNAVAILABLE, Some("bus"), message),
    }
}

/// A JSON body as `T`, or a 400 naming where it went wrong and the shape
/// that was expected.
fn parse<T: DeserializeOwned>(body: &[u8], expected: &str) -> Result<T, Box<Response>> {
    let bad = |field: Option<&str>, e: &serde_json::Error| {
        Box::new(error(
            StatusCode::BAD_REQUEST,
            field,
            format!("expected a JSON object {expected}: {e}"),
        ))
    };
    let mut de = serde_json::Deserializer::from_slice(body);
    let value = serde_path_to_error::deserialize(&mut de).map_err(|e| {
        let path = e.path().to_string();
        bad((path != ".").then_some(path.as_str()), e.inner())
    })?;
    // Nothing but blanks may follow the object.
    de.end().map_err(|e| bad(None, &e))?;
    Ok(value)
}

// Contacts.

const CONTACT_SHAPE: &str = r#"{"name": ..., "language": ..., "groups": [...], "connections": [{"backend": ..., "identity": ...}]}"#;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ContactBody {
    name: Option<String>,
    #[serde(default)]
    language: Option<String>,
    #[serde(default)]
    groups: Option<Vec<String>>,
    #[serde(default)]
    connections: Option<Vec<ConnectionBody>>,
    // What GET answers besides, so that a contact read can be sent back
    // changed; the id is the URL's, the times are the server's.
    #[serde(default, rename = "id")]
    _id: Option<IgnoredAny>,
    #[serde(default, rename = "created_at")]
    _created_at: Option<IgnoredAny>,
    #[serde(default, rename = "modified_at")]
    _modified_at: Option<IgnoredAny>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ConnectionBody {
    /// Default: the pipeline's first backend.
    backend: Option<String>,
    identity: String,
}

impl ContactBody {
    fn input(self, s: &HttpState) -> ContactInput {
        let first = s
            .pipeline
            .backends
            .first()
            .map(|b| b.name().to_owned())
            .unwrap_or_default();
        ContactInput {
            name: self.name.unwrap_or_default(),
            language: self.language.unwrap_or_default(),
            groups: self.groups.unwrap_or_default(),
            connections: self
                .connections
                .unwrap_or_default()
                .into_iter()
                .map(|c| Connection::new(c.backend.unwrap_or_else(|| first.clone()), c.identity))
                .collect(),
        }
    }
}

/// Items per page of a list (`GET /api/contacts`, `/api/optouts`) by default.
const DEFAULT_PER_PAGE: usize = 50;
/// The most `per_page` any list answers (contacts, the log).
pub(crate) const MAX_PER_PAGE: usize = 200;

async fn list_contacts(State(s): S, RawQuery(raw): RawQuery) -> Response {
    let params = match form_text(raw.unwrap_or_default().as_bytes()) {
        Ok(p) => p,
        Err(e) => return source_error(e),
    };
    if let Some(other) = params
        .keys()
        .find(|k| !matches!(k.as_str(), "q" | "page" | "per_page"))
    {
        return error(
            StatusCode::BAD_REQUEST,
            Some("query"),
            format!("unknown parameter {other:?}: expected q (part of a name or number), page, per_page"),
        );
    }
    let q = params.get("q").map(String::as_str).unwrap_or_default();
    match paged("contacts", search_contacts(&s, q), &params) {
        Ok(answer) => Json(answer).into_response(),
        Err(r) => refused(r),
    }
}

/// One page of `all` as `{<name>: [...], "total", "page", "pages", "per_page"}`,
/// from the `page` and `per_page` of `params` (default 1 and 50).
fn paged<T: serde::Serialize>(
    name: &str,
    all: Vec<T>,
    params: &std::collections::HashMap<String, String>,
) -> Result<Value, Refused> {
    let count = |field: &'static str| match params.get(field) {
        None => Ok(None),
        Some(v) => page_count(field, v),
    };
    let page = count("page")?.unwrap_or(1);
    let per_page = count("per_page")?.unwrap_or(DEFAULT_PER_PAGE);
    let total = all.len();
    let items: Vec<T> = all
        .into_iter()
        .skip((page - 1).saturating_mul(per_page))
        .take(per_page)
        .collect();
    Ok(json!({
        name: items,
        "total": total,
        "page": page,
        "pages": total.div_ceil(per_page).max(1),
        "per_page": per_page,
    }))
}

/// `page` or `per_page`: a number from 1 up; `per_page` at most [`MAX_PER_PAGE`].
fn page_count(field: &'static str, value: &str) -> Result<Option<usize>, Refused> {
    let n = match value.trim() {
        "" => return Ok(None),
        v => v.parse::<usize>().ok().filter(|n| *n > 0),
    };
    match n {
        Some(n) if field == "per_page" && n > MAX_PER_PAGE => Err(Refused::Invalid {
            field,
            message: format!("per_page {n} is over the limit of {MAX_PER_PAGE}"),
        }),
        Some(n) => Ok(Some(n)),
        None => Err(Refused::Invalid {
            field,
            message: format!("{value:?} is not a number from 1 up"),
        }),
    }
}

async fn create_contact(State(s): S, body: Bytes) -> Response {
    let body: ContactBody = match parse(&body, CONTACT_SHAPE) {
        Ok(b) => b,
        Err(r) => return *r,
    };
    match save_contact(&s, None, body.input(&s)).await {
        Ok(c) => (StatusCode::CREATED, Json(json!({ "contact": c }))).into_response(),
        Err(r) => refused(r),
    }
}

async fn get_contact(State(s): S, Path(id): Path<String>) -> Response {
    match s.tables.contacts.get(&id) {
        Some(c) => Json(json!({ "contact": c })).into_response(),
        None => refused(Refused::NotFound(format!("no contact with id {id}"))),
    }
}

async fn update_contact(State(s): S, Path(id): Path<String>, body: Bytes) -> Response {
    let body: ContactBody = match parse(&body, CONTACT_SHAPE) {
        Ok(b) => b,
        Err(r) => return *r,
    };
    match save_contact(&s, Some(&id), body.input(&s)).await {
        Ok(c) => Json(json!({ "contact": c })).into_response(),
        Err(r) => refused(r),
    }
}

async fn remove_contact(State(s): S, Path(id): Path<String>) -> Response {
    match delete_contact(&s, &id).await {
        Ok(_) => StatusCode::NO_CONTENT.into_response(),
        Err(r) => refused(r),
    }
}

async fn import(State(s): S, body: Bytes) -> Response {
    let Ok(text) = std::str::from_utf8(&body) else {
        return error(
            StatusCode::BAD_REQUEST,
            Some("csv"),
            "the CSV is not UTF-8: save it as UTF-8 and send it again",
        );
    };
    match import_contacts(&s, text).await {
        Ok(report) => {
            let errors: Vec<_> = report
                .errors
                .iter()
                .map(|(line, reason)| json!({ "line": line, "reason": reason }))
                .collect();
            Json(json!({ "added": report.added, "updated": report.updated, "errors": errors }))
                .into_response()
        }
        Err(r) => refused(r),
    }
}

// Messaging and status.

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
struct SendBody {
    text: String,
    contacts: Vec<String>,
    groups: Vec<String>,
    numbers: Vec<String>,
}

impl SendBody {
    fn recipients(self) -> (String, Recipients) {
        let to = Recipients {
            contacts: self.contacts,
            groups: self.groups,
            numbers: self.numbers,
        };
        (self.text, to)
    }
}

async fn send(State(s): S, body: Bytes) -> Response {
    let body: SendBody = match parse(
        &body,
        r#"{"text": ..., "contacts": [ids], "groups": [names], "numbers": ["+1555...", "backend:+1555..."]}"#,
    ) {
        Ok(b) => b,
        Err(r) => return *r,
    };
    let (text, to) = body.recipients();
    match send_message(&s, &text, &to).await {
        Ok(sent) => (StatusCode::ACCEPTED, Json(sent)).into_response(),
        Err(r) => refused(r),
    }
}

async fn status(State(s): S, Path(id): Path<String>) -> Response {
    let status = match s.tables.status().await {
        Ok(t) => t,
        Err(e) => return refused(Refused::Bus(format!("cannot read the events: {e}"))),
    };
    match status.report(id.trim()) {
        Some(r) => Json(r).into_response(),
        None => refused(Refused::NotFound(format!(
            "no message or send with id {id}"
        ))),
    }
}

// Polls.

async fn list_polls(State(s): S) -> Response {
    let all: Vec<_> = polls(&s.pipeline)
        .iter()
        .map(|p| {
            json!({
                "name": p.name,
                "question": p.question,
                "choices": p.choices,
                "results": p.results(&s),
            })
        })
        .collect();
    Json(json!({ "polls": all })).into_response()
}

async fn poll_results(State(s): S, Path(name): Path<String>) -> Response {
    match find_poll(&s.pipeline, &name) {
        Ok(p) => Json(p.results(&s)).into_response(),
        Err(r) => refused(r),
    }
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
struct PollSendBody {
    contacts: Vec<String>,
    groups: Vec<String>,
    numbers: Vec<String>,
}

async fn send_poll(State(s): S, Path(name): Path<String>, body: Bytes) -> Response {
    let poll = match find_poll(&s.pipeline, &name) {
        Ok(p) => p,
        Err(r) => return refused(r),
    };
    let body: PollSendBody = match parse(
        &body,
        r#"{"contacts": [ids], "groups": [names], "numbers": ["+1555..."]}"#,
    ) {
        Ok(b) => b,
        Err(r) => return *r,
    };
    let to = Recipients {
        contacts: body.contacts,
        groups: body.groups,
        numbers: body.numbers,
    };
    match poll.send(&s, &to).await {
        Ok(sent) => (StatusCode::ACCEPTED, Json(sent)).into_response(),
        Err(r) => refused(r),
    }
}

// The message log and opt-outs.

/// A log search from query parameters, each checked by name.
pub(crate) fn log_query(raw: &str) -> Result<Query, Refused> {
    let params = form_text(raw.as_bytes()).map_err(|e| Refused::Invalid {
        field: "query",
        message: e.to_string(),
    })?;
    let mut q = Query::default();
    for (name, value) in params {
        let number = |field: &'static str, what: &str| {
            value.trim().parse::<i64>().map_err(|_| Refused::Invalid {
                field,
                message: format!("{value:?} is not {what}"),
            })
        };
        let when = "a time in milliseconds since the epoch (for example 1714000000000)";
        match name.as_str() {
            "number" => q.number = value.trim().to_owned(),
            "contact" => q.contact = value.trim().to_owned(),
            "text" => q.text = value.clone(),
            "direction" => {
                q.direction = match value.trim() {
                    "" => String::new(),
                    d @ ("in" | "out") => d.to_owned(),
                    other => {
                        return Err(Refused::Invalid {
                            field: "direction",
                            message: format!("{other:?} is not a direction: expected in or out"),
                        })
                    }
                }
            }
            "since" if !value.trim().is_empty() => q.since = Some(number("since", when)?),
            "until" if !value.trim().is_empty() => q.until = Some(number("until", when)?),
            "since" | "until" => {}
            "page" => q.page = page_count("page", &value)?,
            "per_page" => q.per_page = page_count("per_page", &value)?,
            other => {
                return Err(Refused::Invalid {
                    field: "query",
                    message: format!(
                        "unknown parameter {other:?}: expected number, contact, text, direction, since, until, page, per_page"
                    ),
                })
            }
        }
    }
    Ok(q)
}

async fn search_log(State(s): S, RawQuery(raw): RawQuery) -> Response {
    let log = match s.tables.log().await {
        Ok(Some(log)) => log,
        Ok(None) => return refused(Refused::NotFound(LOG_OFF.into())),
        Err(e) => return refused(Refused::Bus(format!("cannot read the log: {e}"))),
    };
    match log_query(raw.as_deref().unwrap_or_default()) {
        Ok(q) => Json(log.search(&q)).into_response(),
        Err(r) => refused(r),
    }
}

async fn optouts(State(s): S, RawQuery(raw): RawQuery) -> Response {
    let params = match form_text(raw.unwrap_or_default().as_bytes()) {
        Ok(p) => p,
        Err(e) => return source_error(e),
    };
    if let Some(other) = params
        .keys()
        .find(|k| !matches!(k.as_str(), "page" | "per_page"))
    {
        return error(
            StatusCode::BAD_REQUEST,
            Some("query"),
            format!("unknown parameter {other:?}: expected page, per_page"),
        );
    }
    match paged("optouts", s.tables.optouts.list(), &params) {
        Ok(answer) => Json(answer).into_response(),
        Err(r) => refused(r),
    }
}
