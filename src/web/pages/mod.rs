//! The web pages, rendered on the server: the message log, contacts (list,
//! add, edit, delete, CSV import), send a message, polls, message status.
//!
//! Forms post to their own page. A form with a mistake comes back (400)
//! with the user's input kept and the reason next to the field that is
//! wrong; a saved contact redirects to the list (post/redirect/get).

use std::sync::Arc;

use axum::response::Redirect;
use axum::routing::{get, post};
use axum::Router;

use crate::web::actions::HttpState;

mod contacts;
mod form;
mod log;
mod messaging;
mod status;

pub fn routes() -> Router<Arc<HttpState>> {
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
        .route("/status/", get(status::status_page));
    // The nav's pages without their trailing slash.
    for path in ["/log", "/contacts", "/messaging", "/polls", "/status"] {
        r = r.route(
            path,
            get(move || async move { Redirect::permanent(&format!("{path}/")) }),
        );
    }
    r
}
