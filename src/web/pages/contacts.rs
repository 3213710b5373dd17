//! The contact pages: list, add, edit, delete, CSV import.

use std::collections::HashMap;

use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};

use super::form::{input, items, not_found, options, plural, Errors, Form, S};
use crate::message::{Connection, Contact};
use crate::state::contacts::ContactBook;
use crate::state::messagelog::PER_PAGE;
use crate::web::actions::HttpState;
use crate::web::actions::{
    delete_contact, import_contacts, save_contact, search_contacts, ContactInput, Refused,
};
use crate::web::html::{csrf_field, esc, field_error, page, pager, url};

pub(super) async fn contacts_page(State(s): S, RawQuery(raw): RawQuery) -> Response {
    let f = Form::query(raw);
    let q = f.get("q");
    let mut body = String::from("<h1>Contacts</h1>\n");
    if f.has("saved") {
        if let Some(c) = s.tables.contacts.get(&f.get("saved")) {
            body += &format!(
                "<p class=\"success\" id=\"flash\">Saved {}.</p>\n",
                esc(&c.name)
            );
        }
    }
    if f.has("deleted") {
        body += &format!(
            "<p class=\"success\" id=\"flash\">Deleted {}.</p>\n",
            esc(&f.get("deleted"))
        );
    }
    body += &format!(
        "<div class=\"actions\"><a href=\"/contacts/new\" id=\"add\">Add a contact</a>\
         <a href=\"/contacts/import\" id=\"import\">Import contacts (CSV)</a>\
         <form method=\"get\" action=\"/contacts/\" class=\"search\"><input name=\"q\" id=\"q\" value=\"{}\" placeholder=\"name or number\">\
         <button type=\"submit\">Search</button></form></div>\n",
        esc(&q)
    );
    let all = search_contacts(&s, &q);
    let pages = all.len().div_ceil(PER_PAGE).max(1);
    let current = f.get("page").trim().parse().unwrap_or(1).clamp(1, pages);
    body += "<table id=\"contacts\"><thead><tr><th>Name</th><th>Language</th><th>Groups</th><th>Identities</th></tr></thead><tbody>\n";
    for c in all.iter().skip((current - 1) * PER_PAGE).take(PER_PAGE) {
        let identities: Vec<&str> = c.connections.iter().map(|n| n.identity.as_str()).collect();
        body += &format!(
            "<tr><td class=\"name\"><a href=\"/contacts/{}/edit\">{}</a></td><td class=\"language\">{}</td>\
             <td class=\"groups\">{}</td><td class=\"identities\">{}</td></tr>\n",
            url(&c.id),
            esc(&c.name),
            esc(&c.language),
            esc(&c.groups.join(", ")),
            esc(&identities.join(", "))
        );
    }
    body += "</tbody></table>\n";
    if all.is_empty() {
        body += "<p class=\"muted\">No contacts yet.</p>\n";
    }
    body += &pager(current, pages, |n| {
        format!("/contacts/?q={}&page={n}", url(&q))
    });
    page(StatusCode::OK, "Contacts", "/contacts/", &body)
}

/// The contact form's fields as typed.
#[derive(Default)]
struct ContactForm {
    name: String,
    language: String,
    groups: String,
    /// (backend, identity) per row.
    rows: Vec<(String, String)>,
}

/// Connection rows a form may have.
const MAX_ROWS: usize = 1000;

/// Blank connection rows under the filled ones.
const BLANK_ROWS: usize = 3;

impl ContactForm {
    fn of(c: &Contact) -> Self {
        ContactForm {
            name: c.name.clone(),
            language: c.language.clone(),
            groups: c.groups.join(", "),
            rows: c
                .connections
                .iter()
                .map(|n| (n.backend.clone(), n.identity.clone()))
                .collect(),
        }
    }

    /// One pass over the pairs: rows are `backend-<i>` / `identity-<i>`
    /// from 0 up, the first missing index ending them.
    fn parse(body: &[u8]) -> Self {
        let f = Form::parse(body);
        let mut form = ContactForm::default();
        let mut cells: HashMap<usize, (String, String)> = HashMap::new();
        for (k, v) in f.0 {
            let row = |prefix: &str| {
                k.strip_prefix(prefix)
                    .and_then(|i| i.parse::<usize>().ok())
                    .filter(|i| *i < MAX_ROWS)
            };
            if let Some(i) = row("backend-") {
                cells.entry(i).or_default().0 = v;
            } else if let Some(i) = row("identity-") {
                cells.entry(i).or_default().1 = v;
            } else {
                match k.as_str() {
                    "name" => form.name = v,
                    "language" => form.language = v,
                    "groups" => form.groups = v,
                    _ => {}
                }
            }
        }
        for i in 0..MAX_ROWS {
            let Some((backend, identity)) = cells.remove(&i) else {
                break;
            };
            // A row with no number is a blank row, or a number removed.
            if !identity.trim().is_empty() {
                form.rows
                    .push((backend.trim().to_owned(), identity.trim().to_owned()));
            }
        }
        form
    }

    fn input(&self) -> ContactInput {
        ContactInput {
            name: self.name.clone(),
            language: self.language.clone(),
            groups: items(&self.groups),
            connections: self
                .rows
                .iter()
                .map(|(b, n)| Connection::new(b, n))
                .collect(),
        }
    }
}

/// The row a connection error is about: the first that is wrong on its
/// own, or the first repeat of an earlier one.
fn wrong_row(s: &HttpState, connections: &[Connection]) -> Option<usize> {
    let mut seen = Vec::new();
    for (i, c) in connections.iter().enumerate() {
        match s
            .tables
            .contacts
            .check(ContactBook::new_contact("", vec![c.clone()]))
        {
            Err(_) => return Some(i),
            Ok(checked) => {
                if seen.contains(&checked.connections) {
                    return Some(i);
                }
                seen.push(checked.connections);
            }
        }
    }
    None
}

fn contact_form(
    s: &HttpState,
    status: StatusCode,
    id: Option<&str>,
    form: &ContactForm,
    errors: &Errors,
) -> Response {
    let texts = &s.tables.texts;
    let default_name = texts
        .available()
        .iter()
        .find(|l| l.code == texts.default_language())
        .map_or(texts.default_language(), |l| l.name.as_str());
    let mut languages = vec![(String::new(), format!("Default ({default_name})"))];
    languages.extend(
        texts
            .available()
            .iter()
            .map(|l| (l.code.clone(), format!("{} ({})", l.name, l.code))),
    );
    let backends: Vec<(String, String)> = s
        .pipeline
        .backends
        .iter()
        .map(|b| (b.name().to_owned(), b.name().to_owned()))
        .collect();
    let (title, action) = match id {
        Some(id) => (
            format!("Edit {}", form.name),
            format!("/contacts/{}/edit", url(id)),
        ),
        None => ("Add a contact".to_owned(), "/contacts/new".to_owned()),
    };
    let mut body = format!("<h1>{}</h1>\n", esc(&title));
    if let Some(e) = errors.get("form") {
        body += &format!(
            "<p class=\"error\" id=\"error-form\" role=\"alert\">{}</p>\n",
            esc(e)
        );
    }
    body += &format!(
        "<form method=\"post\" action=\"{}\" class=\"stacked\" id=\"contact\">{}\n{}\n\
         <label><span class=\"label\">Language</span><select id=\"language\" name=\"language\">{}</select>{}</label>\n{}\n\
         <fieldset id=\"connections\"><legend>Phone numbers</legend>{}\n",
        esc(&action),
        csrf_field(),
        input("name", "Name", &form.name, errors, " maxlength=\"100\""),
        options(&languages, &form.language),
        field_error("language", errors.get("language")),
        input(
            "groups",
            "Groups <span class=\"muted\">(comma separated)</span>",
            &form.groups,
            errors,
            ""
        ),
        field_error("connections", errors.get("connections")),
    );
    let first = backends.first().map(|(b, _)| b.clone()).unwrap_or_default();
    let blank = (first, String::new());
    let rows = form
        .rows
        .iter()
        .chain(std::iter::repeat_n(&blank, BLANK_ROWS));
    for (i, (backend, identity)) in rows.enumerate() {
        body += &format!(
            "<div class=\"connection\"><select id=\"backend-{i}\" name=\"backend-{i}\" aria-label=\"backend\">{}</select>\
             <input id=\"identity-{i}\" name=\"identity-{i}\" value=\"{}\" placeholder=\"+15551234567\" aria-label=\"phone number\">{}</div>\n",
            options(&backends, backend),
            esc(identity),
            field_error(&format!("identity-{i}"), errors.get(&format!("identity-{i}")))
        );
    }
    body += "<p class=\"muted\">Clear a number to remove it.</p></fieldset>\n\
             <div class=\"actions\"><button type=\"submit\" id=\"save\">Save</button><a href=\"/contacts/\">Cancel</a></div>\n</form>\n";
    if let Some(id) = id {
        body += &format!(
            "<form method=\"get\" action=\"/contacts/{}/delete\"><button type=\"submit\" id=\"delete\">Delete</button></form>\n",
            url(id)
        );
    }
    page(status, &title, "/contacts/", &body)
}

pub(super) async fn new_contact(State(s): S) -> Response {
    contact_form(
        &s,
        StatusCode::OK,
        None,
        &ContactForm::default(),
        &Errors::new(),
    )
}

pub(super) async fn edit_contact(State(s): S, Path(id): Path<String>) -> Response {
    match s.tables.contacts.get(&id) {
        Some(c) => contact_form(
            &s,
            StatusCode::OK,
            Some(&id),
            &ContactForm::of(&c),
            &Errors::new(),
        ),
        None => not_found(&format!("No contact with id {id}")),
    }
}

pub(super) async fn create_contact(State(s): S, body: Bytes) -> Response {
    save_form(&s, None, ContactForm::parse(&body)).await
}

pub(super) async fn update_contact(State(s): S, Path(id): Path<String>, body: Bytes) -> Response {
    save_form(&s, Some(&id), ContactForm::parse(&body)).await
}

async fn save_form(s: &HttpState, id: Option<&str>, form: ContactForm) -> Response {
    let input = form.input();
    let connections = input.connections.clone();
    let mut errors = Errors::new();
    let status = match save_contact(s, id, input).await {
        Ok(c) => return Redirect::to(&format!("/contacts/?saved={}", url(&c.id))).into_response(),
        Err(Refused::Invalid { field, message }) => {
            let key = match field {
                "backend" | "identity" => match wrong_row(s, &connections) {
                    Some(i) => format!("identity-{i}"),
                    None => "connections".to_owned(),
                },
                "name" | "language" | "groups" => field.to_owned(),
                _ => "form".to_owned(),
            };
            errors.insert(key, message);
            StatusCode::BAD_REQUEST
        }
        Err(Refused::NotFound(m)) => return not_found(&m),
        Err(Refused::Bus(m)) => {
            errors.insert("form".into(), format!("{m}; try again"));
            StatusCode::SERVICE_UNAVAILABLE
        }
    };
    contact_form(s, status, id, &form, &errors)
}

pub(super) async fn confirm_delete(State(s): S, Path(id): Path<String>) -> Response {
    let Some(c) = s.tables.contacts.get(&id) else {
        return not_found(&format!("No contact with id {id}"));
    };
    let body = format!(
        "<h1>Delete {name}?</h1>\n<p>The contact and its phone numbers are removed; the message log keeps its messages.</p>\n\
         <form method=\"post\" action=\"/contacts/{id}/delete\" class=\"actions\">{csrf}<button type=\"submit\" id=\"confirm-delete\">Delete {name}</button>\
         <a href=\"/contacts/{id}/edit\">Cancel</a></form>\n",
        name = esc(&c.name),
        id = url(&id),
        csrf = csrf_field()
    );
    page(StatusCode::OK, "Delete a contact", "/contacts/", &body)
}

pub(super) async fn delete(State(s): S, Path(id): Path<String>) -> Response {
    match delete_contact(&s, &id).await {
        Ok(c) => Redirect::to(&format!("/contacts/?deleted={}", url(&c.name))).into_response(),
        Err(Refused::Bus(m)) => page(
            StatusCode::SERVICE_UNAVAILABLE,
            "Delete a contact",
            "/contacts/",
            &format!(
                "<h1>Not deleted</h1>\n<p class=\"error\" id=\"error-form\">{}; try again.</p>",
                esc(&m)
            ),
        ),
        Err(Refused::NotFound(m) | Refused::Invalid { message: m, .. }) => not_found(&m),
    }
}

fn import_form(csv: &str) -> String {
    format!(
        "<form method=\"post\" action=\"/contacts/import\" class=\"stacked\" id=\"import-form\">{}\n\
         <p>One contact per line: <code>name, backend, identity</code>. A number that already has a contact renames it.</p>\n\
         <label><span class=\"label\">CSV file</span><input type=\"file\" id=\"file\" accept=\".csv,text/csv,text/plain\"></label>\n\
         <label><span class=\"label\">Or paste the lines</span><textarea id=\"csv\" name=\"csv\" rows=\"10\" placeholder=\"Ada Lovelace, message_tester, +15550001111\">{}</textarea></label>\n\
         <button type=\"submit\" id=\"upload\">Import</button>\n</form>\n\
         <script src=\"/static/import.js\"></script>\n",
        csrf_field(),
        esc(csv)
    )
}

pub(super) async fn import_page() -> Response {
    let body = format!("<h1>Import contacts</h1>\n{}", import_form(""));
    page(StatusCode::OK, "Import contacts", "/contacts/", &body)
}

pub(super) async fn import_csv(State(s): S, body: Bytes) -> Response {
    let csv = Form::parse(&body).get("csv");
    let mut out = String::from("<h1>Import contacts</h1>\n");
    let status = match import_contacts(&s, &csv).await {
        Ok(report) => {
            let mut done = format!("Added {}.", plural(report.added, "contact", "contacts"));
            if report.updated > 0 {
                done += &format!(
                    " Updated {}.",
                    plural(report.updated, "contact", "contacts")
                );
            }
            let class = if report.added + report.updated > 0 {
                "success"
            } else {
                "notice"
            };
            out += &format!("<p class=\"{class}\" id=\"import-result\">{done}</p>\n");
            if !report.errors.is_empty() {
                out += "<h2>Lines not imported</h2>\n<ul id=\"import-errors\">\n";
                for (line, reason) in &report.errors {
                    out += &match line {
                        0 => format!("<li>{}</li>\n", esc(reason)),
                        n => format!("<li>Line {n}: {}</li>\n", esc(reason)),
                    };
                }
                out += "</ul>\n";
            }
            StatusCode::OK
        }
        Err(r) => {
            let m = match r {
                Refused::Bus(m) => format!("{m}; try again"),
                Refused::Invalid { message, .. } | Refused::NotFound(message) => message,
            };
            out += &format!("<p class=\"error\" id=\"error-form\">{}</p>\n", esc(&m));
            StatusCode::SERVICE_UNAVAILABLE
        }
    };
    out += &import_form(&csv);
    page(status, "Import contacts", "/contacts/", &out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_contact_form_is_read_in_one_pass() {
        let f = ContactForm::parse(
            b"name=Ada&identity-1=%2B1555002&backend-0=a&identity-0=+%2B1555001+&groups=x&backend-1=b\
              &backend-2=c&identity-2=&identity-4=%2B1555004&name=Ada+L",
        );
        assert_eq!(f.name, "Ada L", "the last of repeated names wins");
        assert_eq!(f.groups, "x");
        // Row 2 is blank, row 3 missing: row 4 is not read.
        assert_eq!(
            f.rows,
            [
                ("a".to_owned(), "+1555001".to_owned()),
                ("b".to_owned(), "+1555002".to_owned())
            ]
        );
        // 1,000 rows and a large name: every row read.
        let mut big = format!("name={}", "n".repeat(1 << 20));
        for i in 0..MAX_ROWS + 5 {
            big += &format!("&backend-{i}=t&identity-{i}=%2B1555{i:06}");
        }
        let f = ContactForm::parse(big.as_bytes());
        assert_eq!(f.rows.len(), MAX_ROWS);
        assert_eq!(f.rows[999].1, "+1555000999");
        assert_eq!(f.name.len(), 1 << 20);
    }
}
