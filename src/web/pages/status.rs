//! The message status page.

use axum::extract::{RawQuery, State};
use axum::http::StatusCode;
use axum::response::Response;

use super::form::{plural, Form, S};
use crate::web::html::{esc, page, time};

pub(super) async fn status_page(State(s): S, RawQuery(raw): RawQuery) -> Response {
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
