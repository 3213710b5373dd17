//! The message log page: search by number, contact, text, direction and
//! dates; newest first, paginated.

use axum::extract::{RawQuery, State};
use axum::http::StatusCode;
use axum::response::Response;

use super::form::{input, options, Errors, Form, S};
use crate::message::Direction;
use crate::state::messagelog::Query;
use crate::web::html::{date_ms, day_after, esc, field_error, page, pager, time, url};

pub(super) async fn log_page(State(s): S, RawQuery(raw): RawQuery) -> Response {
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
