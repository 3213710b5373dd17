//! The campaigns' JSON API under `/api/campaigns`: preview, start, list,
//! one campaign's progress, pause, resume, cancel.
//!
//! A preview or a start takes `{"campaign": {...}, "csv": "..."}` (or
//! `"csv_base64"` for a file that is not all UTF-8: its bad lines are then
//! reported one by one); the audience may also be contact `groups` alone.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use base64::prelude::{Engine as _, BASE64_STANDARD};
use serde::{Deserialize, Serialize};

use super::actions::HttpState;
use crate::campaign::control::{self, CampaignError, Command, Ctx, NewCampaign};
use crate::campaign::preview::Preview;
use crate::campaign::view::CampaignView;
use crate::http::error;
use crate::message::{now_millis, Campaign};

type S = State<Arc<HttpState>>;

pub fn routes() -> Router<Arc<HttpState>> {
    Router::new()
        .route("/api/campaigns", get(list).post(start))
        .route("/api/campaigns/preview", post(preview))
        .route("/api/campaigns/{id}", get(one))
        .route("/api/campaigns/{id}/{command}", post(command))
}

/// The body of a preview or a start.
#[derive(Debug, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Upload {
    pub campaign: NewCampaign,
    /// The audience as CSV text.
    #[serde(default)]
    pub csv: Option<String>,
    /// The audience as the file's bytes, base64.
    #[serde(default)]
    pub csv_base64: Option<String>,
    /// The file's name, kept with the campaign.
    #[serde(default)]
    pub file: Option<String>,
}

impl Upload {
    fn csv(&self) -> Result<Option<Vec<u8>>, CampaignError> {
        match (&self.csv, &self.csv_base64) {
            (Some(_), Some(_)) => Err(CampaignError {
                field: "csv",
                message: "give csv or csv_base64, not both".into(),
            }),
            (Some(text), None) => Ok(Some(text.as_bytes().to_vec())),
            (None, Some(b64)) => {
                BASE64_STANDARD
                    .decode(b64.trim())
                    .map(Some)
                    .map_err(|e| CampaignError {
                        field: "csv_base64",
                        message: format!("not base64: {e}"),
                    })
            }
            (None, None) => Ok(None),
        }
    }
}

/// What a start answers.
#[derive(Debug, Serialize)]
pub struct Started {
    pub campaign: Campaign,
    pub preview: Preview,
}

fn ctx(s: &HttpState) -> Ctx<'_> {
    Ctx {
        pipeline: &s.pipeline,
        tables: &s.tables,
        producer: &s.producer,
    }
}

fn refused(e: CampaignError) -> Response {
    match e.field {
        "bus" => error(StatusCode::SERVICE_UNAVAILABLE, Some("bus"), e.message),
        "campaigns" => error(StatusCode::NOT_FOUND, None, e.message),
        field => error(StatusCode::BAD_REQUEST, Some(field), e.message),
    }
}

fn parse(body: &[u8]) -> Result<Upload, Box<Response>> {
    let mut de = serde_json::Deserializer::from_slice(body);
    let upload: Upload = serde_path_to_error::deserialize(&mut de).map_err(|e| {
        let path = e.path().to_string();
        Box::new(error(
            StatusCode::BAD_REQUEST,
            Some(if path == "." { "body" } else { path.as_str() }),
            format!(r#"expected {{"campaign": {{"backend": ..., "texts": {{"en": ...}}, ...}}, "csv": ...}}: {}"#, e.inner()),
        ))
    })?;
    de.end()
        .map_err(|e| Box::new(error(StatusCode::BAD_REQUEST, Some("body"), e.to_string())))?;
    Ok(upload)
}

async fn preview(State(s): S, body: Bytes) -> Response {
    let upload = match parse(&body) {
        Ok(u) => u,
        Err(r) => return *r,
    };
    let csv = match upload.csv() {
        Ok(c) => c,
        Err(e) => return refused(e),
    };
    let s2 = s.clone();
    // Reading a large file is CPU work: off the async threads.
    let done = tokio::task::spawn_blocking(move || {
        control::preview(&ctx(&s2), &upload.campaign, csv.as_deref())
    })
    .await;
    match done {
        Ok(Ok(p)) => Json(p).into_response(),
        Ok(Err(e)) => refused(e),
        Err(e) => error(
            StatusCode::INTERNAL_SERVER_ERROR,
            None,
            format!("the preview failed: {e}"),
        ),
    }
}

async fn start(State(s): S, body: Bytes) -> Response {
    let upload = match parse(&body) {
        Ok(u) => u,
        Err(r) => return *r,
    };
    let csv = match upload.csv() {
        Ok(c) => c,
        Err(e) => return refused(e),
    };
    let now = chrono::Utc::now();
    match control::start(&ctx(&s), upload.campaign, upload.file, csv.as_deref(), now).await {
        Ok((campaign, preview)) => {
            (StatusCode::CREATED, Json(Started { campaign, preview })).into_response()
        }
        Err(e) => refused(e),
    }
}

/// Every campaign with its progress, newest first.
pub fn views(s: &HttpState) -> Vec<CampaignView> {
    let book = &s.tables.campaigns;
    let now = now_millis();
    book.list()
        .into_iter()
        .map(|c| {
            let p = book.progress(&c.id);
            CampaignView::new(c, p, now)
        })
        .collect()
}

/// One campaign with its progress.
pub fn view(s: &HttpState, id: &str) -> Option<CampaignView> {
    let book = &s.tables.campaigns;
    let c = book.get(id)?;
    Some(CampaignView::new(c, book.progress(id), now_millis()))
}

async fn list(State(s): S) -> Response {
    Json(views(&s)).into_response()
}

async fn one(State(s): S, Path(id): Path<String>) -> Response {
    match view(&s, &id) {
        Some(v) => Json(v).into_response(),
        None => error(StatusCode::NOT_FOUND, None, format!("no campaign {id:?}")),
    }
}

async fn command(State(s): S, Path((id, command)): Path<(String, String)>) -> Response {
    let command = match command.as_str() {
        "pause" => Command::Pause,
        "resume" => Command::Resume,
        "cancel" => Command::Cancel,
        other => {
            return error(
                StatusCode::NOT_FOUND,
                None,
                format!("no command {other:?}: expected pause, resume or cancel"),
            )
        }
    };
    match control::command(&ctx(&s), &id, command).await {
        Ok(_) => match view(&s, &id) {
            Some(v) => Json(v).into_response(),
            None => error(StatusCode::NOT_FOUND, None, format!("no campaign {id:?}")),
        },
        Err(e) if e.field == "id" => error(StatusCode::NOT_FOUND, None, e.message),
        Err(e) if e.field == "state" => error(StatusCode::CONFLICT, Some("state"), e.message),
        Err(e) => refused(e),
    }
}
