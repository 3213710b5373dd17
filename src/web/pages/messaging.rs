//! Send a message, and the poll pages (which send a poll the same way).

use std::collections::{BTreeSet, HashSet};

use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::http::StatusCode;
use axum::response::Response;

use super::form::{input, items, not_found, Errors, Form, S};
use crate::apps::messaging::{Recipients, Sent};
use crate::state::messagelog::PER_PAGE;
use crate::web::actions::HttpState;
use crate::web::actions::{find_poll, polls, search_contacts, send_message, PollDef, Refused};
use crate::web::html::{csrf_field, esc, field_error, page, pager, url};

/// Group names the groups field suggests at most.
const MAX_KNOWN_GROUPS: usize = 200;

/// Which contacts the messaging page lists: a search and a page of it.
pub(super) struct ContactsPage {
    q: String,
    page: usize,
}

impl ContactsPage {
    fn of(f: &Form) -> Self {
        ContactsPage {
            q: f.get("q"),
            page: f.get("page").trim().parse().unwrap_or(1),
        }
    }
}

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

    /// The fields; `contacts` adds a checkbox per contact of `page` (the
    /// contacts matching its search, [`PER_PAGE`] at a time) and per
    /// contact already chosen.
    fn render(&self, s: &HttpState, errors: &Errors, contacts: Option<&ContactsPage>) -> String {
        let all = s.tables.contacts.list();
        let mut out = format!(
            "<fieldset id=\"recipients\"><legend>Recipients</legend>{}\n",
            field_error("recipients", errors.get("recipients"))
        );
        if let Some(page) = contacts {
            out += &format!(
                "<div><span class=\"label\">Contacts</span>{}<div class=\"choices\" id=\"contacts\">\n",
                field_error("contacts", errors.get("contacts"))
            );
            let found = search_contacts(s, &page.q);
            let pages = found.len().div_ceil(PER_PAGE).max(1);
            let current = page.page.clamp(1, pages);
            let shown = all
                .iter()
                .filter(|c| self.contacts.contains(&c.id))
                .chain(found.iter().skip((current - 1) * PER_PAGE).take(PER_PAGE));
            let mut seen = HashSet::new();
            for c in shown {
                if !seen.insert(c.id.as_str()) {
                    continue;
                }
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
            } else if found.is_empty() {
                out += "<span class=\"muted\">No contact matches the search.</span>\n";
            }
            out += "</div>";
            out += &pager(current, pages, |n| {
                format!("/messaging/?q={}&page={n}", url(&page.q))
            });
            out += "</div>\n";
        }
        let groups: BTreeSet<&str> = all
            .iter()
            .flat_map(|c| c.groups.iter().map(String::as_str))
            .collect();
        let known: String = groups
            .iter()
            .take(MAX_KNOWN_GROUPS)
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
    (to, list): (&RecipientsForm, &ContactsPage),
    errors: &Errors,
    done: &str,
) -> Response {
    let body = format!(
        "<h1>Send a message</h1>\n{done}{}\
         <form method=\"get\" action=\"/messaging/\" class=\"search\" id=\"contact-search\">\
         <input name=\"q\" id=\"q\" value=\"{}\" placeholder=\"name or number\" aria-label=\"search contacts\">\
         <button type=\"submit\" id=\"search-contacts\">Search contacts</button></form>\n<form method=\"post\" action=\"/messaging/\" class=\"stacked\" id=\"send-form\">{}\n\
         <label><span class=\"label\">Message</span><textarea id=\"text\" name=\"text\" rows=\"4\">{}</textarea>{}</label>\n{}\
         <button type=\"submit\" id=\"send\">Send</button>\n</form>\n",
        form_error(errors),
        esc(&list.q),
        csrf_field(),
        esc(text),
        field_error("text", errors.get("text")),
        to.render(s, errors, Some(list))
    );
    page(status, "Send a message", "/messaging/", &body)
}

pub(super) async fn messaging_page(State(s): S, RawQuery(raw): RawQuery) -> Response {
    let list = ContactsPage::of(&Form::query(raw));
    messaging_form(
        &s,
        StatusCode::OK,
        "",
        (&RecipientsForm::default(), &list),
        &Errors::new(),
        "",
    )
}

pub(super) async fn send(State(s): S, body: Bytes) -> Response {
    let f = Form::parse(&body);
    let text = f.get("text");
    let to = RecipientsForm::parse(&f);
    let mut errors = Errors::new();
    let result = send_message(&s, &text, &to.recipients()).await;
    let (status, done) = sent_or_errors(result, &mut errors);
    let list = ContactsPage::of(&f);
    if status.is_success() {
        // Sent: a fresh form under the confirmation.
        let fresh = RecipientsForm::default();
        return messaging_form(&s, status, "", (&fresh, &list), &errors, &done);
    }
    messaging_form(&s, status, &text, (&to, &list), &errors, &done)
}

// Polls.

pub(super) async fn polls_page(State(s): S) -> Response {
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
         {done}{}<form method=\"post\" action=\"/polls/{}/send\" class=\"stacked\" id=\"poll-form\">{}\n{}\
         <button type=\"submit\" id=\"send-poll\">Send the question</button>\n</form>\n",
        form_error(errors),
        url(poll.name),
        csrf_field(),
        to.render(s, errors, None)
    );
    page(status, &format!("Poll {}", poll.name), "/polls/", &body)
}

pub(super) async fn poll_page(State(s): S, Path(name): Path<String>) -> Response {
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

pub(super) async fn send_poll(State(s): S, Path(name): Path<String>, body: Bytes) -> Response {
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
