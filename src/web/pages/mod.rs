//! The web pages, rendered on the server: the message log, contacts (list,
//! add, edit, delete, CSV import), send a message, polls, message status,
//! the statistics' dashboard.
//!
//! The campaigns pages are there only when the pipeline has `campaigns:`
//! (the nav links them then; without it they answer 404 saying so).
//!
//! Forms post to their own page. A form with a mistake comes back (400)
//! with the user's input kept and the reason next to the field that is
//! wrong; a saved contact redirects to the list (post/redirect/get).

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::middleware::{from_fn_with_state, Next};
use axum::response::{Redirect, Response};
use axum::routing::{get, post};
use axum::Router;

use crate::web::actions::HttpState;
use crate::web::html::with_campaigns;

mod campaign_chart;
mod campaign_form;
mod campaign_preview;
mod campaigns;
mod contacts;
mod dashboard;
mod dashboard_chart;
mod form;
mod log;
mod messaging;
mod status;

/// The pages of the server whose state is `state`.
pub fn routes(state: &Arc<HttpState>) -> Router<Arc<HttpState>> {
    let mut r = Router::new()
        .route("/log/", get(log::log_page))
        .route("/contacts/", get(contacts::contacts_page))
        .route(
            "/contacts/new",
            get(contacts::new_contact).post(contacts::create_contact),
        )
        .route(
            "/contacts/import",
            get(contacts::import_page).post(contacts::import_csv),
        )
        .route(
            "/contacts/{id}/edit",
            get(contacts::edit_contact).post(contacts::update_contact),
        )
        .route(
            "/contacts/{id}/delete",
            get(contacts::confirm_delete).post(contacts::delete),
        )
        .route(
            "/messaging/",
            get(messaging::messaging_page).post(messaging::send),
        )
        .route("/polls/", get(messaging::polls_page))
        .route("/polls/{name}", get(messaging::poll_page))
        .route("/polls/{name}/send", post(messaging::send_poll))
        .route("/status/", get(status::status_page))
        .route("/dashboard/", get(dashboard::dashboard_page))
        .route("/campaigns/", get(campaigns::list_page))
        .route(
            "/campaigns/new",
            get(campaign_form::new_page).post(campaign_form::submit),
        )
        .route("/campaigns/{id}", get(campaigns::campaign_page))
        .route("/campaigns/{id}/{command}", post(campaigns::command));
    // The nav's pages without their trailing slash.
    for path in [
        "/log",
        "/contacts",
        "/messaging",
        "/polls",
        "/status",
        "/campaigns",
        "/dashboard",
    ] {
        r = r.route(
            path,
            get(move || async move { Redirect::permanent(&format!("{path}/")) }),
        );
    }
    r.layer(from_fn_with_state(state.pipeline.campaigns.is_some(), nav))
}

/// Every page answered with the nav this pipeline has.
async fn nav(State(campaigns): State<bool>, req: Request, next: Next) -> Response {
    with_campaigns(campaigns, next.run(req)).await
}
