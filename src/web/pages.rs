//! The web pages, rendered on the server: the message log, contacts (list,
//! add, edit, delete, CSV import), send a message, polls, message status.
//!
//! Forms post to their own page. A form with a mistake comes back (400)
//! with the user's input kept and the reason next to the field that is
//! wrong; a saved contact redirects to the list (post/redirect/get).

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::Router;

use super::html::{date_ms, day_after, esc, field_error, page, pager, time, url};
use super::{
    delete_contact, find_poll, import_contacts, polls, save_contact, search_contacts, send_message,
    ContactInput, PollDef, Refused,
};
use crate::contacts::ContactBook;
use crate::http::{form_pairs, HttpState};
use crate::message::{Connection, Contact, Direction};
use crate::messagelog::{Query, PER_PAGE};
use crate::messaging::{Recipients, Sent};

type S = State<Arc<HttpState>>;

/// Field name → what is wrong with it.
type Errors = HashMap<String, String>;

pub fn routes() -> Router<Arc<HttpState>> {
    let mut r = Router::new()
        .route("/log/", get(log_page))
        .route("/contacts/", get(contacts_page))
        .route("/contacts/new", get(new_contact).post(create_contact))
        .route("/contacts/import", get(import_page).post(import_csv))
        .route(
            "/contacts/{id}/edit",
            get(edit_contact).post(update_contact),
        )
        .route("/contacts/{id}/delete", get(confirm_delete).post(delete))
        .route("/messaging/", get(messaging_page).post(send))
        .route("/polls/", get(polls_page))
        .route("/polls/{name}", get(poll_page))
        .route("/polls/{name}/send", post(send_poll))
        .route("/status/", get(status_page));
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

// The message log.

async fn log_page(State(s): S, RawQuery(raw): RawQuery) -> Response {
    let title = "Message log";
    let log = match s.tables.log().await {
        Ok(Some(log)) => log,
        Ok(None) => return page(
            StatusCode::NOT_FOUND,
            title,
            "/log/",
            "<h1>Message log</h1>\n<p class=\"notice\" id=\"notice\">The message log is off: add <code>messagelog:</code> to the pipeline.</p>",
        ),
        Err(e) => return page(
            StatusCode::SERVICE_UNAVAILABLE,
            title,
            "/log/",
            &format!("<h1>Message log</h1>\n<p class=\"error\" id=\"notice\">Cannot read the log: {}</p>", esc(&e.to_string())),
        ),
    };
    let f = Form::query(raw);
    let mut errors = Errors::new();
    let mut q = Query {
        number: f.get("number").trim().to_owned(),
        contact: f.get("contact").trim().to_owned(),
        text: f.get("text"),
        page: f.get("page").trim().parse().ok(),
        ..Query::default()
    };
    match f.get("direction").as_str() {
        d @ ("in" | "out") => q.direction = d.to_owned(),
        "" => {}
        other => {
            errors.insert(
                "direction".into(),
                format!("{other:?} is not a direction: in or out"),
            );
        }
    }
    for (field, date) in [("from", f.get("from")), ("to", f.get("to"))] {
        if date.trim().is_empty() {
            continue;
        }
        match date_ms(&date) {
            Some(ms) if field == "from" => q.since = Some(ms),
            Some(ms) => q.until = Some(day_after(ms)),
            None => {
                errors.insert(
                    field.into(),
                    format!("{date:?} is not a date: expected YYYY-MM-DD"),
                );
            }
        }
    }
    let directions = [
        (String::new(), "Both".to_owned()),
        ("in".to_owned(), "Incoming".to_owned()),
        ("out".to_owned(), "Outgoing".to_owned()),
    ];
    let mut body = format!(
        "<h1>Message log</h1>\n<form method=\"get\" action=\"/log/\" class=\"search\" id=\"search\">{}{}{}\
         <label><span class=\"label\">Direction</span><select id=\"direction\" name=\"direction\">{}</select>{}</label>{}{}\
         <button type=\"submit\" id=\"search-button\">Search</button></form>\n",
        input("number", "Number", &q.number, &errors, ""),
        input("contact", "Contact", &q.contact, &errors, ""),
        input("text", "Text", &q.text, &errors, ""),
        options(&directions, &q.direction),
        field_error("direction", errors.get("direction")),
        input("from", "From date", &f.get("from"), &errors, " type=\"date\""),
        input("to", "To date", &f.get("to"), &errors, " type=\"date\""),
    );
    if !errors.is_empty() {
        return page(StatusCode::BAD_REQUEST, title, "/log/", &body);
    }
    let found = log.search(&q);
    body += &format!(
        "<p class=\"muted\" id=\"count\">{} {}, newest first; dates in UTC.</p>\n",
        found.total,
        if found.total == 1 {
            "message"
        } else {
            "messages"
        }
    );
    body += "<table id=\"log\"><thead><tr><th>Date</th><th>Direction</th><th>Contact</th><th>Number</th><th>Text</th></tr></thead><tbody>\n";
    for e in &found.entries {
        let (class, direction) = match e.direction {
            Direction::In => ("in", "Incoming"),
            Direction::Out => ("out", "Outgoing"),
        };
        let contact = match &e.contact_id {
            Some(id) => format!(
                "<a href=\"/contacts/{}/edit\">{}</a>",
                url(id),
                esc(&e.contact_name)
            ),
            None => String::new(),
        };
        body += &format!(
            "<tr class=\"{class}\"><td class=\"date\">{}</td><td class=\"direction\">{direction}</td><td class=\"contact\">{contact}</td>\
             <td class=\"number\" title=\"{}\">{}</td><td class=\"text\">{}</td></tr>\n",
            time(e.at),
            esc(&e.connection.backend),
            esc(&e.connection.identity),
            esc(&e.text)
        );
    }
    body += "</tbody></table>\n";
    let keep: Vec<(&str, String)> = ["number", "contact", "text", "direction", "from", "to"]
        .into_iter()
        .map(|k| (k, f.get(k)))
        .filter(|(_, v)| !v.is_empty())
        .collect();
    body += &pager(found.page, found.pages, |n| {
        let mut link = String::from("/log/?");
        for (k, v) in &keep {
            link += &format!("{k}={}&", url(v));
        }
        link + &format!("page={n}")
    });
    page(StatusCode::OK, title, "/log/", &body)
}

// Contacts.

async fn contacts_page(State(s): S, RawQuery(raw): RawQuery) -> Response {
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

    fn parse(body: &[u8]) -> Self {
        let f = Form::parse(body);
        let mut rows = Vec::new();
        for i in 0..1000 {
            let (b, n) = (format!("backend-{i}"), format!("identity-{i}"));
            if !f.has(&b) && !f.has(&n) {
                break;
            }
            let identity = f.get(&n).trim().to_owned();
            // A row with no number is a blank row, or a number removed.
            if !identity.is_empty() {
                rows.push((f.get(&b).trim().to_owned(), identity));
            }
        }
        ContactForm {
            name: f.get("name"),
            language: f.get("language"),
            groups: f.get("groups"),
            rows,
        }
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
        "<form method=\"post\" action=\"{}\" class=\"stacked\" id=\"contact\">\n{}\n\
         <label><span class=\"label\">Language</span><select id=\"language\" name=\"language\">{}</select>{}</label>\n{}\n\
         <fieldset id=\"connections\"><legend>Phone numbers</legend>{}\n",
        esc(&action),
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

async fn new_contact(State(s): S) -> Response {
    contact_form(
        &s,
        StatusCode::OK,
        None,
        &ContactForm::default(),
        &Errors::new(),
    )
}

async fn edit_contact(State(s): S, Path(id): Path<String>) -> Response {
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

async fn create_contact(State(s): S, body: Bytes) -> Response {
    save_form(&s, None, ContactForm::parse(&body)).await
}

async fn update_contact(State(s): S, Path(id): Path<String>, body: Bytes) -> Response {
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

async fn confirm_delete(State(s): S, Path(id): Path<String>) -> Response {
    let Some(c) = s.tables.contacts.get(&id) else {
        return not_found(&format!("No contact with id {id}"));
    };
    let body = format!(
        "<h1>Delete {name}?</h1>\n<p>The contact and its phone numbers are removed; the message log keeps its messages.</p>\n\
         <form method=\"post\" action=\"/contacts/{id}/delete\" class=\"actions\"><button type=\"submit\" id=\"confirm-delete\">Delete {name}</button>\
         <a href=\"/contacts/{id}/edit\">Cancel</a></form>\n",
        name = esc(&c.name),
        id = url(&id)
    );
    page(StatusCode::OK, "Delete a contact", "/contacts/", &body)
}

async fn delete(State(s): S, Path(id): Path<String>) -> Response {
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
        "<form method=\"post\" action=\"/contacts/import\" class=\"stacked\" id=\"import-form\">\n\
         <p>One contact per line: <code>name, backend, identity</code>. A number that already has a contact renames it.</p>\n\
         <label><span class=\"label\">CSV file</span><input type=\"file\" id=\"file\" accept=\".csv,text/csv,text/plain\"></label>\n\
         <label><span class=\"label\">Or paste the lines</span><textarea id=\"csv\" name=\"csv\" rows=\"10\" placeholder=\"Ada Lovelace, message_tester, +15550001111\">{}</textarea></label>\n\
         <button type=\"submit\" id=\"upload\">Import</button>\n</form>\n\
         <script>\n\
         document.getElementById('file').addEventListener('change', async ev => {{\n\
           const file = ev.target.files[0];\n\
           if (file) document.getElementById('csv').value = await file.text();\n\
         }});\n\
         </script>\n",
        esc(csv)
    )
}

async fn import_page() -> Response {
    let body = format!("<h1>Import contacts</h1>\n{}", import_form(""));
    page(StatusCode::OK, "Import contacts", "/contacts/", &body)
}

fn plural(n: usize, one: &str, many: &str) -> String {
    if n == 1 {
        format!("1 {one}")
    } else {
        format!("{n} {many}")
    }
}

async fn import_csv(State(s): S, body: Bytes) -> Response {
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

// Messaging.

/// The recipients part of a sending form, as typed.
#[derive(Default)]
struct RecipientsForm {
    contacts: Vec<String>,
    groups: String,
    numbers: String,
}

impl RecipientsForm {
    fn parse(f: &Form) -> Self {
        RecipientsForm {
            contacts: f.all("contacts"),
            groups: f.get("groups"),
            numbers: f.get("numbers"),
        }
    }

    fn recipients(&self) -> Recipients {
        Recipients {
            contacts: self.contacts.clone(),
            groups: items(&self.groups),
            numbers: items(&self.numbers),
        }
    }

    /// The fields; `contacts` adds a checkbox per contact.
    fn render(&self, s: &HttpState, errors: &Errors, contacts: bool) -> String {
        let all = s.tables.contacts.list();
        let mut out = format!(
            "<fieldset id=\"recipients\"><legend>Recipients</legend>{}\n",
            field_error("recipients", errors.get("recipients"))
        );
        if contacts {
            out += &format!(
                "<div><span class=\"label\">Contacts</span>{}<div class=\"choices\" id=\"contacts\">\n",
                field_error("contacts", errors.get("contacts"))
            );
            for c in &all {
                let checked = if self.contacts.contains(&c.id) {
                    " checked"
                } else {
                    ""
                };
                // RapidSMS's label: `<name> (<backend> - <identity>)`, for
                // the connection a message goes to.
                let (label, disabled) = match c.connections.first() {
                    Some(n) => (format!("{} ({} - {})", c.name, n.backend, n.identity), ""),
                    None => (format!("{} (no number)", c.name), " disabled"),
                };
                out += &format!(
                    "<label><input type=\"checkbox\" name=\"contacts\" id=\"contact-{id}\" value=\"{id}\"{checked}{disabled}> {}</label>\n",
                    esc(&label),
                    id = esc(&c.id)
                );
            }
            if all.is_empty() {
                out += "<span class=\"muted\">No contacts yet.</span>\n";
            }
            out += "</div></div>\n";
        }
        let groups: BTreeSet<&str> = all
            .iter()
            .flat_map(|c| c.groups.iter().map(String::as_str))
            .collect();
        let known: String = groups
            .iter()
            .map(|g| format!("<option value=\"{}\">", esc(g)))
            .collect();
        out += &format!(
            "{}<datalist id=\"known-groups\">{known}</datalist>\n",
            input(
                "groups",
                "Groups <span class=\"muted\">(comma separated)</span>",
                &self.groups,
                errors,
                " list=\"known-groups\""
            )
        );
        out += &format!(
            "<label><span class=\"label\">Numbers <span class=\"muted\">(one per line or comma separated; <code>backend:number</code> picks a backend)</span></span>\
             <textarea id=\"numbers\" name=\"numbers\" rows=\"2\">{}</textarea>{}</label>\n</fieldset>\n",
            esc(&self.numbers),
            field_error("numbers", errors.get("numbers"))
        );
        out
    }
}

/// What a send did, or what stopped it (on `errors`, with its status).
fn sent_or_errors(result: Result<Sent, Refused>, errors: &mut Errors) -> (StatusCode, String) {
    match result {
        Ok(sent) => (
            StatusCode::OK,
            format!(
                "<p class=\"success\"><span id=\"confirmation\">{}</span> <a id=\"status-link\" href=\"/status/?id={}\">See its status</a></p>\n",
                esc(&sent.confirmation),
                url(&sent.send_id)
            ),
        ),
        Err(Refused::Invalid { field, message }) => {
            errors.insert(field.to_owned(), message);
            (StatusCode::BAD_REQUEST, String::new())
        }
        Err(Refused::NotFound(message)) => {
            errors.insert("form".to_owned(), message);
            (StatusCode::NOT_FOUND, String::new())
        }
        Err(Refused::Bus(message)) => {
            errors.insert("form".to_owned(), format!("{message}; try again"));
            (StatusCode::SERVICE_UNAVAILABLE, String::new())
        }
    }
}

fn form_error(errors: &Errors) -> String {
    match errors.get("form") {
        Some(e) => format!(
            "<p class=\"error\" id=\"error-form\" role=\"alert\">{}</p>\n",
            esc(e)
        ),
        None => String::new(),
    }
}

fn messaging_form(
    s: &HttpState,
    status: StatusCode,
    text: &str,
    to: &RecipientsForm,
    errors: &Errors,
    done: &str,
) -> Response {
    let body = format!(
        "<h1>Send a message</h1>\n{done}{}<form method=\"post\" action=\"/messaging/\" class=\"stacked\" id=\"send-form\">\n\
         <label><span class=\"label\">Message</span><textarea id=\"text\" name=\"text\" rows=\"4\">{}</textarea>{}</label>\n{}\
         <button type=\"submit\" id=\"send\">Send</button>\n</form>\n",
        form_error(errors),
        esc(text),
        field_error("text", errors.get("text")),
        to.render(s, errors, true)
    );
    page(status, "Send a message", "/messaging/", &body)
}

async fn messaging_page(State(s): S) -> Response {
    messaging_form(
        &s,
        StatusCode::OK,
        "",
        &RecipientsForm::default(),
        &Errors::new(),
        "",
    )
}

async fn send(State(s): S, body: Bytes) -> Response {
    let f = Form::parse(&body);
    let text = f.get("text");
    let to = RecipientsForm::parse(&f);
    let mut errors = Errors::new();
    let result = send_message(&s, &text, &to.recipients()).await;
    let (status, done) = sent_or_errors(result, &mut errors);
    if status.is_success() {
        // Sent: a fresh form under the confirmation.
        return messaging_form(&s, status, "", &RecipientsForm::default(), &errors, &done);
    }
    messaging_form(&s, status, &text, &to, &errors, &done)
}

// Polls.

async fn polls_page(State(s): S) -> Response {
    let all = polls(&s.pipeline);
    let mut body = String::from("<h1>Polls</h1>\n");
    if all.is_empty() {
        body += "<p class=\"notice\">This pipeline has no polls: add an app of <code>type: poll</code>.</p>\n";
    } else {
        body += "<table id=\"polls\"><thead><tr><th>Poll</th><th>Question</th><th>Choices</th><th>Answers</th></tr></thead><tbody>\n";
        for p in &all {
            let r = p.results(&s);
            body += &format!(
                "<tr><td class=\"name\"><a href=\"/polls/{}\">{}</a></td><td class=\"question\">{}</td><td>{}</td><td class=\"total\">{}</td></tr>\n",
                url(p.name),
                esc(p.name),
                esc(p.question),
                esc(&p.choices.join(", ")),
                r.total
            );
        }
        body += "</tbody></table>\n";
    }
    page(StatusCode::OK, "Polls", "/polls/", &body)
}

fn poll_view(
    s: &HttpState,
    status: StatusCode,
    poll: &PollDef<'_>,
    to: &RecipientsForm,
    errors: &Errors,
    done: &str,
) -> Response {
    let r = poll.results(s);
    let mut body = format!(
        "<h1>Poll {}</h1>\n<p class=\"question\" id=\"question\">{}</p>\n\
         <table id=\"results\"><thead><tr><th>Choice</th><th>Answers</th><th>Share</th></tr></thead><tbody>\n",
        esc(poll.name),
        esc(poll.question)
    );
    for (choice, n) in &r.choices {
        let share = (*n * 100).checked_div(r.total).unwrap_or(0);
        body += &format!(
            "<tr data-choice=\"{c}\"><td class=\"choice\">{c}</td><td class=\"count\">{n}</td><td class=\"share\">{share}%</td></tr>\n",
            c = esc(choice)
        );
    }
    body += &format!(
        "</tbody><tfoot><tr><th>Total</th><th id=\"total\">{}</th><th></th></tr></tfoot></table>\n",
        r.total
    );
    body += &format!(
        "<h2>Send the question</h2>\n<p class=\"muted\">Each recipient gets it in their language, with how to answer.</p>\n\
         {done}{}<form method=\"post\" action=\"/polls/{}/send\" class=\"stacked\" id=\"poll-form\">\n{}\
         <button type=\"submit\" id=\"send-poll\">Send the question</button>\n</form>\n",
        form_error(errors),
        url(poll.name),
        to.render(s, errors, false)
    );
    page(status, &format!("Poll {}", poll.name), "/polls/", &body)
}

async fn poll_page(State(s): S, Path(name): Path<String>) -> Response {
    match find_poll(&s.pipeline, &name) {
        Ok(p) => poll_view(
            &s,
            StatusCode::OK,
            &p,
            &RecipientsForm::default(),
            &Errors::new(),
            "",
        ),
        Err(Refused::NotFound(m)) => not_found(&m),
        Err(_) => not_found(&format!("No poll {name:?}")),
    }
}

async fn send_poll(State(s): S, Path(name): Path<String>, body: Bytes) -> Response {
    let poll = match find_poll(&s.pipeline, &name) {
        Ok(p) => p,
        Err(Refused::NotFound(m)) => return not_found(&m),
        Err(_) => return not_found(&format!("No poll {name:?}")),
    };
    let to = RecipientsForm::parse(&Form::parse(&body));
    let mut errors = Errors::new();
    let result = poll.send(&s, &to.recipients()).await;
    let (status, done) = sent_or_errors(result, &mut errors);
    if status.is_success() {
        return poll_view(
            &s,
            status,
            &poll,
            &RecipientsForm::default(),
            &errors,
            &done,
        );
    }
    poll_view(&s, status, &poll, &to, &errors, &done)
}

// Message status.

async fn status_page(State(s): S, RawQuery(raw): RawQuery) -> Response {
    let id = Form::query(raw).get("id").trim().to_owned();
    let mut body = format!(
        "<h1>Message status</h1>\n<form method=\"get\" action=\"/status/\" class=\"search\">\
         <label><span class=\"label\">Message or send id</span><input id=\"id\" name=\"id\" value=\"{}\" size=\"40\"></label>\
         <button type=\"submit\" id=\"show\">Show</button></form>\n",
        esc(&id)
    );
    if id.is_empty() {
        return page(StatusCode::OK, "Message status", "/status/", &body);
    }
    let report = match s.tables.status().await {
        Ok(status) => status.report(&id),
        Err(e) => {
            body += &format!(
                "<p class=\"error\" id=\"summary\">Cannot read the delivery events: {}</p>\n",
                esc(&e.to_string())
            );
            return page(
                StatusCode::SERVICE_UNAVAILABLE,
                "Message status",
                "/status/",
                &body,
            );
        }
    };
    let Some(report) = report else {
        body += &format!(
            "<p class=\"notice\" id=\"summary\">No message or send with id {} (yet: a message shows here once its first event is read; reload in a moment).</p>\n",
            esc(&id)
        );
        return page(StatusCode::NOT_FOUND, "Message status", "/status/", &body);
    };
    let counts: Vec<String> = report
        .counts
        .iter()
        .map(|(status, n)| format!("{n} {status}"))
        .collect();
    let what = if report.kind == "send" {
        "Send"
    } else {
        "Message"
    };
    body += &format!(
        "<p id=\"summary\">{what} <code>{}</code>: {}: {}.</p>\n",
        esc(&report.id),
        plural(report.recipients.len(), "recipient", "recipients"),
        counts.join(", ")
    );
    body += "<table id=\"recipients\"><thead><tr><th>Number</th><th>Contact</th><th>Backend</th><th>Status</th><th>Time (UTC)</th><th>Error</th><th>Message id</th></tr></thead><tbody>\n";
    for r in &report.recipients {
        let contact = s
            .tables
            .contacts
            .by_connection(&r.connection)
            .map(|c| c.name)
            .unwrap_or_default();
        body += &format!(
            "<tr><td class=\"number\">{}</td><td class=\"contact\">{}</td><td class=\"backend\">{}</td><td class=\"status\">{}</td>\
             <td class=\"time\">{}</td><td class=\"error-text\">{}</td><td class=\"id\"><code>{}</code></td></tr>\n",
            esc(&r.connection.identity),
            esc(&contact),
            esc(&r.connection.backend),
            esc(r.status),
            time(r.at),
            esc(r.error.as_deref().unwrap_or_default()),
            esc(&r.message_id)
        );
    }
    body += "</tbody></table>\n";
    page(StatusCode::OK, "Message status", "/status/", &body)
}
