//! What the pages share: a parsed form, its errors by field, and the HTML
//! of inputs, options and not-found pages.

use std::collections::HashMap;
use std::sync::Arc;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;

use crate::http::form_pairs;
use crate::web::actions::HttpState;
use crate::web::html::{esc, field_error, page};

pub(super) type S = State<Arc<HttpState>>;

/// Field name → what is wrong with it.
pub(super) type Errors = HashMap<String, String>;

/// A form body or query string, in order, repeats kept.
pub(super) struct Form(pub(super) Vec<(String, String)>);

impl Form {
    pub(super) fn parse(raw: &[u8]) -> Form {
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

    pub(super) fn query(raw: Option<String>) -> Form {
        Form::parse(raw.unwrap_or_default().as_bytes())
    }

    pub(super) fn has(&self, name: &str) -> bool {
        self.0.iter().any(|(k, _)| k == name)
    }

    /// The last value of `name`, or empty.
    pub(super) fn get(&self, name: &str) -> String {
        self.0
            .iter()
            .rev()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.clone())
            .unwrap_or_default()
    }

    pub(super) fn all(&self, name: &str) -> Vec<String> {
        self.0
            .iter()
            .filter(|(k, _)| k == name)
            .map(|(_, v)| v.clone())
            .collect()
    }
}

/// A comma (or newline) separated field as its items, blanks dropped.
pub(super) fn items(text: &str) -> Vec<String> {
    text.split([',', '\n', ';'])
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .collect()
}

pub(super) fn not_found(what: &str) -> Response {
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

pub(super) fn input(id: &str, label: &str, value: &str, errors: &Errors, extra: &str) -> String {
    format!(
        "<label><span class=\"label\">{label}</span><input id=\"{id}\" name=\"{id}\" value=\"{}\"{extra}>{}</label>",
        esc(value),
        field_error(id, errors.get(id))
    )
}

pub(super) fn options(choices: &[(String, String)], selected: &str) -> String {
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

pub(super) fn plural(n: usize, one: &str, many: &str) -> String {
    if n == 1 {
        format!("1 {one}")
    } else {
        format!("{n} {many}")
    }
}
