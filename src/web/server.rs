//! The HTTP servers: the public listener (each backend's webhooks under
//! `/backend/<name>/`, `/healthz`, `/readyz`) and the admin listener (the
//! operator pages and JSON API, the message tester, `/metrics`, and the
//! probes again). [`crate::http::guard`] checks every request to either.

use std::sync::Arc;

use axum::extract::rejection::JsonRejection;
use axum::extract::{DefaultBodyLimit, Path, Query, State};
use axum::http::{header, StatusCode};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::json;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use super::actions::HttpState;
use super::html::{IMPORT_SCRIPT, STYLE};
use super::{api, campaigns, pages, registry};
use crate::backends::tester::Tester;
use crate::backends::webhook::source_error;
use crate::http::guard::{self, Guard};
use crate::http::{error, serve};
use crate::metrics;

/// The public listener's routes: webhooks and probes, nothing an operator uses.
pub fn public_router(state: Arc<HttpState>) -> Router {
    let mut router = probes().with_state(state.clone());
    for b in &state.backends {
        router = router.merge(b.clone());
    }
    router.fallback(|uri: axum::http::Uri| async move {
        error(
            StatusCode::NOT_FOUND,
            None,
            format!("nothing at {}: this is the public listener, with backends' webhooks under /backend/<name>/; \
                     operator pages, the API and the message tester are on the admin listener (http.admin.listen)", uri.path()),
        )
    })
}

/// The admin listener's routes: the operator pages and API, the tester, `/metrics`.
pub fn admin_router(state: Arc<HttpState>) -> Router {
    let web = api::routes()
        .merge(campaigns::routes())
        .merge(registry::routes())
        .merge(pages::routes(&state))
        .with_state(state.clone());
    probes()
        .route("/", get(|| async { Redirect::to("/tester/") }))
        .route("/tester/", get(|| async { Html(TESTER_PAGE) }))
        .route("/api/tester/messages", post(post_message))
        .route(
            "/api/tester/conversations/{identity}",
            get(get_conversation),
        )
        .route(
            "/metrics",
            get(|| async {
                (
                    [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
                    metrics::render(),
                )
            }),
        )
        .route("/static/{file}", get(asset))
        .with_state(state)
        .merge(web)
        .fallback(|uri: axum::http::Uri| async move {
            error(
                StatusCode::NOT_FOUND,
                None,
                format!("nothing at {}: the message tester is at /tester/, the operator pages start at /log/", uri.path()),
            )
        })
}

fn probes() -> Router<Arc<HttpState>> {
    Router::new()
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(readyz))
}

/// `router` behind `guard`. The guard reads every body within its limit
/// (`http.limits.max_body_bytes`, or `campaigns.max_upload_bytes` for a
/// campaign's upload) before any handler, so the extractors add none of
/// their own (axum's would cut an upload at the smaller one).
fn guarded(router: Router, guard: Guard) -> Router {
    router
        .layer(DefaultBodyLimit::disable())
        .layer(axum::middleware::from_fn_with_state(
            Arc::new(guard),
            guard::guard,
        ))
}

/// Both listeners, bound.
pub struct Listeners {
    pub public: TcpListener,
    pub admin: TcpListener,
}

/// The server of both listeners, to spawn: it serves until `shutdown` is
/// cancelled, in-flight requests finishing first. An admin listener that
/// must not start is an error here, before anything is served.
pub fn serve(
    listeners: Listeners,
    state: Arc<HttpState>,
    shutdown: CancellationToken,
) -> anyhow::Result<impl std::future::Future<Output = std::io::Result<()>>> {
    let p = state.pipeline.clone();
    let limits = p.http.limits.clone();
    let public = guarded(public_router(state.clone()), Guard::public(&p));
    let admin = guarded(admin_router(state), Guard::admin(&p)?);
    Ok(async move {
        let (a, b) = tokio::join!(
            serve::serve(
                listeners.public,
                public,
                limits.clone(),
                "public",
                shutdown.clone()
            ),
            serve::serve(listeners.admin, admin, limits, "admin", shutdown),
        );
        a.and(b)
    })
}

/// The pages' style sheet and scripts: files of their own, so that the
/// Content-Security-Policy can forbid inline ones.
async fn asset(Path(file): Path<String>) -> Response {
    let (kind, body) = match file.as_str() {
        "style.css" => ("text/css", STYLE),
        "tester.css" => ("text/css", TESTER_STYLE),
        "tester.js" => ("text/javascript", TESTER_SCRIPT),
        "import.js" => ("text/javascript", IMPORT_SCRIPT),
        _ => {
            return error(
                StatusCode::NOT_FOUND,
                None,
                format!("no file {file:?} here"),
            )
        }
    };
    ([(header::CONTENT_TYPE, kind)], body).into_response()
}

async fn readyz(State(s): State<Arc<HttpState>>) -> Response {
    match (s.ready)() {
        Ok(()) => "ready".into_response(),
        Err(why) => (StatusCode::SERVICE_UNAVAILABLE, why).into_response(),
    }
}

fn pick_tester(s: &HttpState, backend: Option<&str>) -> Result<Arc<Tester>, Box<Response>> {
    let found = match backend {
        Some(name) => s.testers.get(name),
        None if s.testers.len() == 1 => s.testers.values().next(),
        None => None,
    };
    found
        .cloned()
        .ok_or_else(|| Box::new(no_tester(s, backend)))
}

fn no_tester(s: &HttpState, backend: Option<&str>) -> Response {
    let mut names: Vec<&str> = s.testers.keys().map(String::as_str).collect();
    names.sort();
    match backend {
        Some(b) => error(
            StatusCode::NOT_FOUND,
            Some("backend"),
            format!(
                "no tester backend {b:?} here; tester backends: {}",
                names.join(", ")
            ),
        ),
        None if names.is_empty() => error(
            StatusCode::NOT_FOUND,
            None,
            "this process runs no tester backend",
        ),
        None => error(
            StatusCode::BAD_REQUEST,
            Some("backend"),
            format!("several tester backends: name one of {}", names.join(", ")),
        ),
    }
}

#[derive(Deserialize)]
struct PostMessage {
    identity: Option<String>,
    text: Option<String>,
    backend: Option<String>,
}

async fn post_message(
    State(s): State<Arc<HttpState>>,
    body: Result<Json<PostMessage>, JsonRejection>,
) -> Response {
    let Json(body) = match body {
        Ok(b) => b,
        Err(rejection) => {
            return error(
                StatusCode::BAD_REQUEST,
                None,
                format!(
                    "expected a JSON object {{\"identity\": ..., \"text\": ...}}: {}",
                    rejection.body_text()
                ),
            )
        }
    };
    let tester = match pick_tester(&s, body.backend.as_deref()) {
        Ok(t) => t,
        Err(r) => return *r,
    };
    match tester.receive(body.identity.as_deref(), body.text.as_deref()).await {
        Ok(msg) => (StatusCode::ACCEPTED, Json(json!({ "id": msg.id, "backend": tester.name, "identity": msg.connection.identity }))).into_response(),
        Err(e) => source_error(e),
    }
}

#[derive(Deserialize)]
struct ConversationQuery {
    backend: Option<String>,
}

async fn get_conversation(
    State(s): State<Arc<HttpState>>,
    Path(identity): Path<String>,
    Query(q): Query<ConversationQuery>,
) -> Response {
    match pick_tester(&s, q.backend.as_deref()) {
        Ok(t) => Json(json!({ "backend": t.name, "identity": identity, "messages": t.conversation(&identity) })).into_response(),
        Err(r) => *r,
    }
}

const TESTER_PAGE: &str = include_str!("tester.html");
const TESTER_STYLE: &str = include_str!("tester.css");
const TESTER_SCRIPT: &str = include_str!("tester.js");
