//! The web pages, rendered on the server: the message log, contacts (list,
//! add, edit, delete, CSV import), send a message, polls, message status.
//!
//! Forms post to their own page. A form with a mistake comes back (400)
//! with the user's input kept and the reason next to the field that is
//! wrong; a saved contact redirects to the list (post/redirect/get).

use std::collections::HashMap;
use std::sync::Arc;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{Redirect, Response};
use axum::routing::{get, post};
use axum::Router;

use super::html::{esc, field_error, page};
use crate::http::{form_pairs, HttpState};

mod contacts;
mod log;
mod messaging;
mod status;

type S = State<Arc<HttpState>>;

/// Field name → what is wrong with it.
type Errors = HashMap<String, String>;

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

/// A form body or query string, in order, repeats kept.
struct Form(Vec<(String, String)>);

impl Form {
    fn parse(raw: &[u8]) -> Form {
        Form(
            form_pairs(raw)
                .map(|(k, v)| {
                    (
                        String::from_utf8_lossy(&k).into_owned(),
                        String::from_utf8_lossy(&v).into_owned(),
                    )
                })
                .collect(),
        )
    }

    fn query(raw: Option<String>) -> Form {
        Form::parse(raw.unwrap_or_default().as_bytes())
    }

    fn has(&self, name: &str) -> bool {
        self.0.iter().any(|(k, _)| k == name)
    }

    /// The last value of `name`, or empty.
    fn get(&self, name: &str) -> String {
        self.0
            .iter()
            .rev()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.clone())
            .unwrap_or_default()
    }

    fn all(&self, name: &str) -> Vec<String> {
        self.0
            .iter()
            .filter(|(k, _)| k == name)
            .map(|(_, v)| v.clone())
            .collect()
    }
}

/// A comma (or newline) separated field as its items, blanks dropped.
fn items(text: &str) -> Vec<String> {
    text.split([',', '\n', ';'])
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .collect()
}

fn not_found(what: &str) -> Response {
    page(
        StatusCode::NOT_FOUND,
        "not found",
        "",
        &format!(
            "<h1>Not found</h1>\n<p class=\"notice\" id=\"notice\">{}.</p>",
            esc(what)
        ),
    )
}

fn input(id: &str, label: &str, value: &str, errors: &Errors, extra: &str) -> String {
    format!(
        "<label><span class=\"label\">{label}</span><input id=\"{id}\" name=\"{id}\" value=\"{}\"{extra}>{}</label>",
        esc(value),
        field_error(id, errors.get(id))
    )
}

fn options(choices: &[(String, String)], selected: &str) -> String {
    choices
        .iter()
        .map(|(value, label)| {
            let sel = if value == selected { " selected" } else { "" };
            format!(
                "<option value=\"{}\"{sel}>{}</option>",
                esc(value),
                esc(label)
            )
        })
        .collect()
}

fn plural(n: usize, one: &str, many: &str) -> String {
    if n == 1 {
        format!("1 {one}")
    } else {
        format!("{n} {many}")
    }
}
