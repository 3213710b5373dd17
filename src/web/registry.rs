//! A read-only, Confluent-compatible schema registry over smsflow's own
//! schemas, so that tools reading Confluent-framed topics (ClickHouse's
//! `AvroConfluent`, Kafka Connect, confluent-kafka's `AvroDeserializer`)
//! can resolve the ids without a registry of their own.
//!
//! Subjects are `<topic>-value` for every Avro topic of the pipeline
//! ([`crate::schema::registry::subjects`]); their versions are the schema
//! file's released versions (`schemas/history/`, then today's). Ids are smsflow's own (from the
//! schema's fingerprint), or the external registry's when
//! `kafka.schema_registry` is set. Writes answer 405.

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::{header, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use serde_json::{json, Value};

use super::actions::HttpState;
use crate::schema::registry::{subjects, Subject};
use crate::schema::{by_id, id_of, versions, Known};

type S = State<Arc<HttpState>>;

const CONTENT_TYPE: &str = "application/vnd.schemaregistry.v1+json";

pub fn routes() -> Router<Arc<HttpState>> {
    Router::new()
        .route("/schemas/ids/{id}", get(schema_by_id).fallback(read_only))
        .route(
            "/schemas/ids/{id}/schema",
            get(raw_by_id).fallback(read_only),
        )
        .route(
            "/schemas/ids/{id}/versions",
            get(versions_of_id).fallback(read_only),
        )
        .route("/schemas/types", get(|| async { answer(json!(["AVRO"])) }))
        .route("/subjects", get(list_subjects).fallback(read_only))
        .route(
            "/subjects/{subject}/versions",
            get(subject_versions).fallback(read_only),
        )
        .route(
            "/subjects/{subject}/versions/{version}",
            get(subject_version).fallback(read_only),
        )
        .route(
            "/subjects/{subject}/versions/{version}/schema",
            get(subject_raw).fallback(read_only),
        )
        .route(
            "/config",
            get(|| async { answer(json!({"compatibilityLevel": "BACKWARD"})) }).fallback(read_only),
        )
}

fn answer(body: Value) -> Response {
    ([(header::CONTENT_TYPE, CONTENT_TYPE)], body.to_string()).into_response()
}

/// A refusal in Confluent's error shape: `{"error_code": 40401, "message": ...}`.
struct Refusal(StatusCode, u32, String);

impl IntoResponse for Refusal {
    fn into_response(self) -> Response {
        let Refusal(status, code, message) = self;
        (
            status,
            [(header::CONTENT_TYPE, CONTENT_TYPE)],
            json!({"error_code": code, "message": message}).to_string(),
        )
            .into_response()
    }
}

type Answer = Result<Response, Refusal>;

async fn read_only(method: Method) -> Refusal {
    Refusal(
        StatusCode::METHOD_NOT_ALLOWED,
        405,
        format!("{method} refused: smsflow's schema registry is read-only (its schemas are the ones compiled into smsflow; set kafka.schema_registry to use a registry of your own)"),
    )
}

/// The known schema with id `raw`.
fn schema(raw: &str) -> Result<&'static Known, Refusal> {
    let not_found = |what: String| Refusal(StatusCode::NOT_FOUND, 40403, what);
    let id: u32 = raw.parse().map_err(|_| {
        not_found(format!(
            "schema {raw:?} not found: ids are positive integers"
        ))
    })?;
    by_id(id).ok_or_else(|| not_found(format!("schema {id} not found")))
}

/// A schema's text as JSON (the `.avsc` file, compiled in: it parses).
fn raw(known: &Known) -> Response {
    answer(serde_json::from_str(known.json).unwrap_or(Value::Null))
}

async fn schema_by_id(Path(id): Path<String>) -> Answer {
    Ok(answer(json!({ "schema": schema(&id)?.json })))
}

async fn raw_by_id(Path(id): Path<String>) -> Answer {
    Ok(raw(schema(&id)?))
}

async fn versions_of_id(State(state): S, Path(id): Path<String>) -> Answer {
    let known = schema(&id)?;
    let uses: Vec<Value> = subjects(&state.pipeline)
        .iter()
        .filter(|s| s.known.file == known.file)
        .map(|s| json!({"subject": s.name(), "version": known.version}))
        .collect();
    Ok(answer(Value::Array(uses)))
}

async fn list_subjects(State(state): S) -> Response {
    let names: Vec<String> = subjects(&state.pipeline)
        .iter()
        .map(Subject::name)
        .collect();
    answer(json!(names))
}

/// The subject `subject`.
fn find(state: &HttpState, subject: &str) -> Result<Subject, Refusal> {
    subjects(&state.pipeline)
        .into_iter()
        .find(|s| s.name() == subject)
        .ok_or_else(|| {
            Refusal(
                StatusCode::NOT_FOUND,
                40401,
                format!("subject {subject:?} not found: subjects are <topic>-value for the pipeline's Avro topics (GET /subjects lists them)"),
            )
        })
}

/// Version `version` of `subject`'s schema: 1, 2, ... (the schema files'
/// released versions, `schemas/history/`), `latest` or `-1`.
fn version_of(
    state: &HttpState,
    subject: &str,
    version: &str,
) -> Result<(Subject, &'static Known), Refusal> {
    let s = find(state, subject)?;
    let all = versions(s.known.file);
    let found = match version {
        "latest" | "-1" => all.last().copied(),
        v => match v.parse::<u32>() {
            Ok(n) => all.iter().copied().find(|k| k.version == n),
            Err(_) if v.parse::<i64>().is_ok() => None,
            Err(_) => {
                return Err(Refusal(
                    StatusCode::UNPROCESSABLE_ENTITY,
                    42202,
                    format!("version {v:?} is not a version: expected a number or `latest`"),
                ))
            }
        },
    };
    let known = found.ok_or_else(|| {
        Refusal(
            StatusCode::NOT_FOUND,
            40402,
            format!(
                "version {version} not found: {subject} has versions 1 to {}",
                all.len()
            ),
        )
    })?;
    Ok((s, known))
}

/// The id records of `known` carry: the external registry's for today's
/// version when one is set, else smsflow's own.
fn id(known: &'static Known) -> u32 {
    match known.latest {
        true => id_of(known),
        false => known.id,
    }
}

async fn subject_versions(State(state): S, Path(subject): Path<String>) -> Answer {
    let s = find(&state, &subject)?;
    let numbers: Vec<u32> = versions(s.known.file).iter().map(|k| k.version).collect();
    Ok(answer(json!(numbers)))
}

async fn subject_version(
    State(state): S,
    Path((subject, version)): Path<(String, String)>,
) -> Answer {
    let (s, known) = version_of(&state, &subject, &version)?;
    Ok(answer(json!({
        "subject": s.name(),
        "version": known.version,
        "id": id(known),
        "schema": known.json,
    })))
}

async fn subject_raw(State(state): S, Path((subject, version)): Path<(String, String)>) -> Answer {
    Ok(raw(version_of(&state, &subject, &version)?.1))
}
