//! The form that starts a campaign: its fields, the audience CSV (a file
//! picker fills a textarea, so the form stays URL-encoded and carries its
//! CSRF token), "Preview" (what would be sent, on the same page, the form
//! kept filled in) and "Start" (then its page).

use std::collections::BTreeMap;

use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use chrono::{DateTime, NaiveDateTime, Utc};

use super::campaign_preview::render_preview;
use super::campaigns::{campaigns_off, ctx, NAV};
use super::form::{input, items, options, Errors, Form, S};
use crate::campaign::control::{self, CampaignError, NewCampaign};
use crate::campaign::preview::Preview;
use crate::config::Backend;
use crate::web::actions::HttpState;
use crate::web::html::{csrf_field, esc, field_error, page, url};

/// The form's fields as typed (kept as typed when it comes back).
#[derive(Default)]
struct CampaignForm {
    id: String,
    name: String,
    backend: String,
    /// Language code → text.
    texts: BTreeMap<String, String>,
    defaults: String,
    groups: String,
    start_at: String,
    end_at: String,
    messages_per_second: String,
    segments_per_second: String,
    daily_cap: String,
    quiet_from: String,
    quiet_until: String,
    timezone: String,
    auto_pause_errors: String,
    csv: String,
    /// The name of the file the picker read (kept with the campaign).
    file: String,
}

/// A field's label, for messages that name it.
fn label(field: &str) -> String {
    let known = match field {
        "id" => "Id",
        "name" => "Name",
        "backend" => "Backend",
        "texts" => "Texts",
        "defaults" => "Defaults",
        "groups" => "Contact groups",
        "start_at" => "Start (UTC)",
        "end_at" => "End (UTC)",
        "messages_per_second" => "Messages per second",
        "segments_per_second" => "Segments per second",
        "daily_cap" => "Daily cap",
        "quiet_from" => "Quiet hours from",
        "quiet_until" => "Quiet hours until",
        "timezone" => "Time zone",
        "auto_pause_errors" => "Auto-pause after errors",
        "audience" => "Audience",
        _ => return field.to_owned(),
    };
    known.to_owned()
}

type Invalid = (&'static str, String);

fn number<T: std::str::FromStr>(
    field: &'static str,
    text: &str,
    like: &str,
) -> Result<Option<T>, Invalid> {
    let t = text.trim();
    if t.is_empty() {
        return Ok(None);
    }
    t.parse().map(Some).map_err(|_| {
        (
            field,
            format!("{t:?} is not a number: expected one like {like}"),
        )
    })
}

/// A `datetime-local` value (`2026-12-31T18:00`, seconds optional), in UTC.
fn utc_time(field: &'static str, text: &str) -> Result<Option<DateTime<Utc>>, Invalid> {
    let t = text.trim();
    if t.is_empty() {
        return Ok(None);
    }
    [
        "%Y-%m-%dT%H:%M",
        "%Y-%m-%dT%H:%M:%S",
        "%Y-%m-%d %H:%M",
        "%Y-%m-%d %H:%M:%S",
    ]
    .iter()
    .find_map(|f| NaiveDateTime::parse_from_str(t, f).ok())
    .map(|n| Some(n.and_utc()))
    .ok_or_else(|| {
        (
            field,
            format!("{t:?} is not a date and time: expected one like 2026-12-31T18:00 (UTC)"),
        )
    })
}

fn optional(text: &str) -> Option<String> {
    let t = text.trim();
    (!t.is_empty()).then(|| t.to_owned())
}

impl CampaignForm {
    fn parse(f: &Form) -> Self {
        let mut texts = BTreeMap::new();
        for (k, v) in &f.0 {
            if let Some(lang) = k.strip_prefix("text-") {
                texts.insert(lang.to_owned(), v.clone());
            }
        }
        CampaignForm {
            id: f.get("id"),
            name: f.get("name"),
            backend: f.get("backend"),
            texts,
            defaults: f.get("defaults"),
            groups: f.get("groups"),
            start_at: f.get("start_at"),
            end_at: f.get("end_at"),
            messages_per_second: f.get("messages_per_second"),
            segments_per_second: f.get("segments_per_second"),
            daily_cap: f.get("daily_cap"),
            quiet_from: f.get("quiet_from"),
            quiet_until: f.get("quiet_until"),
            timezone: f.get("timezone"),
            auto_pause_errors: f.get("auto_pause_errors"),
            csv: f.get("csv"),
            file: f.get("file"),
        }
    }

    /// The campaign the form describes, or the first field that cannot be read.
    fn campaign(&self) -> Result<NewCampaign, Invalid> {
        let mut defaults = BTreeMap::new();
        for (n, line) in self.defaults.lines().enumerate() {
            if line.trim().is_empty() {
                continue;
            }
            match line.split_once('=') {
                Some((k, v)) if !k.trim().is_empty() => {
                    defaults.insert(k.trim().to_owned(), v.trim().to_owned());
                }
                _ => {
                    return Err((
                        "defaults",
                        format!("line {}: {:?} is not name=value", n + 1, line.trim()),
                    ))
                }
            }
        }
        Ok(NewCampaign {
            id: optional(&self.id),
            name: self.name.trim().to_owned(),
            backend: self.backend.trim().to_owned(),
            texts: self
                .texts
                .iter()
                .filter(|(_, t)| !t.trim().is_empty())
                .map(|(l, t)| (l.clone(), t.clone()))
                .collect(),
            default_language: None,
            defaults,
            groups: items(&self.groups),
            start_at: utc_time("start_at", &self.start_at)?,
            end_at: utc_time("end_at", &self.end_at)?,
            messages_per_second: number(
                "messages_per_second",
                &self.messages_per_second,
                "20 or 2.5",
            )?,
            segments_per_second: number(
                "segments_per_second",
                &self.segments_per_second,
                "30 or 2.5",
            )?,
            daily_cap: number("daily_cap", &self.daily_cap, "10000")?,
            quiet_from: optional(&self.quiet_from),
            quiet_until: optional(&self.quiet_until),
            timezone: optional(&self.timezone),
            auto_pause_errors: number(
                "auto_pause_errors",
                &self.auto_pause_errors,
                "10 (0: never)",
            )?,
        })
    }
}

/// The backends a campaign can go out on: every one (the campaign's own
/// checks say why one cannot), a provider or discard one first, being what
/// a campaign is for; the message tester last.
fn campaign_backends(s: &HttpState) -> Vec<(String, String)> {
    let mut all: Vec<&Backend> = s.pipeline.backends.iter().collect();
    all.sort_by_key(|b| matches!(b, Backend::Tester { .. }));
    all.iter()
        .map(|b| (b.name().to_owned(), b.name().to_owned()))
        .collect()
}

/// (code, name) of each language a text can be written in, the default first.
fn languages(s: &HttpState) -> Vec<(String, String)> {
    let texts = &s.tables.texts;
    let default = texts.default_language().to_owned();
    let mut out: Vec<(String, String)> = texts
        .available()
        .iter()
        .map(|l| (l.code.clone(), l.name.clone()))
        .collect();
    out.sort_by_key(|(code, _)| *code != default);
    if !out.iter().any(|(code, _)| *code == default) {
        out.insert(0, (default.clone(), default));
    }
    out
}

fn textarea(id: &str, label: &str, value: &str, errors: &Errors, extra: &str) -> String {
    format!(
        "<label><span class=\"label\">{label}</span><textarea id=\"{id}\" name=\"{id}\"{extra}>{}</textarea>{}</label>",
        esc(value),
        field_error(id, errors.get(id))
    )
}

fn form_page(
    s: &HttpState,
    status: StatusCode,
    form: &CampaignForm,
    errors: &Errors,
    preview: Option<&Preview>,
) -> Response {
    let mut body = String::from("<h1>New campaign</h1>\n");
    if let Some(e) = errors.get("form") {
        body += &format!(
            "<p class=\"error\" id=\"error-form\" role=\"alert\">{}</p>\n",
            esc(e)
        );
    }
    if let Some(p) = preview {
        body += &render_preview(p);
    }
    let backends = campaign_backends(s);
    if backends.is_empty() {
        body += "<p class=\"notice\" id=\"no-backend\">This pipeline has no backend: add one to send a campaign.</p>\n";
    }
    let langs = languages(s);
    let default = s.tables.texts.default_language();
    body += &format!(
        "<form method=\"post\" action=\"/campaigns/new\" class=\"stacked\" id=\"campaign\">{}\n{}\n{}\n\
         <label><span class=\"label\">Backend</span><select id=\"backend\" name=\"backend\">{}</select>{}</label>\n\
         <fieldset id=\"texts\"><legend>Text per language</legend>{}\
         <p class=\"muted\">Write <code>{{column}}</code> for a column of the CSV file (<code>{{name}}</code> is also a contact's name). \
         Each recipient gets the text of their language (the CSV's <code>language</code> column, or their contact's), \
         else the default language's ({}). Leave a language empty to use the default's.</p>\n",
        csrf_field(),
        input("name", "Name", &form.name, errors, " maxlength=\"200\""),
        input("id", "Id <span class=\"muted\">(optional: letters, digits, - and _)</span>", &form.id, errors, " maxlength=\"64\""),
        options(&backends, &form.backend),
        field_error("backend", errors.get("backend")),
        field_error("texts", errors.get("texts")),
        esc(default),
    );
    for (code, name) in &langs {
        let id = format!("text-{code}");
        let value = form.texts.get(code).map(String::as_str).unwrap_or_default();
        body += &textarea(
            &id,
            &format!("{} ({})", esc(name), esc(code)),
            value,
            errors,
            " rows=\"3\"",
        );
        body += "\n";
    }
    body += "</fieldset>\n";
    body += &textarea(
        "defaults",
        "Defaults <span class=\"muted\">(one <code>name=value</code> a line: the value of a variable a recipient lacks)</span>",
        &form.defaults,
        errors,
        " rows=\"3\" placeholder=\"name=friend\"",
    );
    body += &format!(
        "\n<fieldset id=\"audience-fields\"><legend>Audience</legend>{}\n\
         <p>A CSV file (UTF-8) with a <code>phone</code> column, and any columns the texts use; a <code>language</code> column picks each recipient's text, \
         a <code>timezone</code> column their quiet hours. Its contents are sent with the form: a file over the upload limit \
         (<code>campaigns.max_upload_bytes</code>, {} bytes as sent, where a comma or a letter beyond ASCII takes 3 bytes or more) goes through <code>smsflow campaign</code> or the API instead.</p>\n\
         <label><span class=\"label\">CSV file</span><input type=\"file\" id=\"file\" accept=\".csv,text/csv,text/plain\"></label>\n\
         <input type=\"hidden\" id=\"file-name\" name=\"file\" value=\"{}\">{}\n{}\n</fieldset>\n",
        field_error("audience", errors.get("audience")),
        s.pipeline.campaigns.as_ref().map_or(0, |c| c.max_upload_bytes),
        esc(&form.file),
        textarea("csv", "Or paste its lines", &form.csv, errors, " rows=\"10\" placeholder=\"phone,name,language\""),
        input("groups", "Contact groups <span class=\"muted\">(comma separated; their members on this backend are recipients too)</span>", &form.groups, errors, ""),
    );
    body += &format!(
        "<fieldset id=\"schedule\"><legend>Schedule and limits</legend>\
         <p class=\"muted\">Times are UTC. No start: at once.</p>\n{}\n{}\n{}\n{}\n{}\n{}\n{}\n{}\n{}\n</fieldset>\n",
        input("start_at", "Start (UTC)", &form.start_at, errors, " type=\"datetime-local\""),
        input("end_at", "End (UTC) <span class=\"muted\">(recipients not reached by then are not sent)</span>", &form.end_at, errors, " type=\"datetime-local\""),
        input("messages_per_second", "Messages per second", &form.messages_per_second, errors, " inputmode=\"decimal\""),
        input("segments_per_second", "Segments per second", &form.segments_per_second, errors, " inputmode=\"decimal\""),
        input("daily_cap", "Daily cap <span class=\"muted\">(messages a day, UTC)</span>", &form.daily_cap, errors, " inputmode=\"numeric\""),
        input("quiet_from", "Quiet hours from <span class=\"muted\">(HH:MM, in each recipient's time zone)</span>", &form.quiet_from, errors, " type=\"time\""),
        input("quiet_until", "Quiet hours until", &form.quiet_until, errors, " type=\"time\""),
        input(
            "timezone",
            "Time zone <span class=\"muted\">(of recipients whose own is not known; empty: <code>campaigns.timezone</code>)</span>",
            &form.timezone,
            errors,
            " placeholder=\"Africa/Nairobi\""
        ),
        input("auto_pause_errors", "Auto-pause after this many provider errors in a row <span class=\"muted\">(empty: 10; 0: never)</span>", &form.auto_pause_errors, errors, " inputmode=\"numeric\""),
    );
    body += "<div class=\"actions\"><button type=\"submit\" name=\"action\" value=\"preview\" id=\"preview\">Preview</button>\
             <button type=\"submit\" name=\"action\" value=\"start\" id=\"start\">Start</button><a href=\"/campaigns/\">Cancel</a></div>\n\
             </form>\n<script src=\"/static/import.js\"></script>\n";
    page(status, "New campaign", NAV, &body)
}

pub(super) async fn new_page(State(s): S) -> Response {
    if let Some(off) = campaigns_off(&s) {
        return off;
    }
    let form = CampaignForm {
        backend: campaign_backends(&s)
            .first()
            .map(|(b, _)| b.clone())
            .unwrap_or_default(),
        ..CampaignForm::default()
    };
    form_page(&s, StatusCode::OK, &form, &Errors::new(), None)
}

/// Where an error about `field` shows: next to its field, or above the form.
fn error_key(field: &str, form: &CampaignForm) -> String {
    match field {
        "texts"
        | "audience"
        | "id"
        | "name"
        | "backend"
        | "defaults"
        | "groups"
        | "start_at"
        | "end_at"
        | "messages_per_second"
        | "segments_per_second"
        | "daily_cap"
        | "quiet_from"
        | "quiet_until"
        | "timezone"
        | "auto_pause_errors" => field.to_owned(),
        "csv" => "audience".to_owned(),
        f if f
            .strip_prefix("text-")
            .is_some_and(|l| form.texts.contains_key(l)) =>
        {
            f.to_owned()
        }
        _ => "form".to_owned(),
    }
}

/// The form back (400, or 503 when the bus did not answer) with `e` next
/// to its field and named above the form.
fn refused(
    s: &HttpState,
    form: &CampaignForm,
    e: CampaignError,
    preview: Option<&Preview>,
) -> Response {
    let status = match e.field {
        "bus" => StatusCode::SERVICE_UNAVAILABLE,
        _ => StatusCode::BAD_REQUEST,
    };
    let mut errors = Errors::new();
    let key = error_key(e.field, form);
    let summary = match e.field {
        "bus" => format!("Not started: {}; try again", e.message),
        field => format!("Not done: {}: {}", label(field), e.message),
    };
    if key != "form" {
        errors.insert(key, e.message);
    }
    errors.insert("form".into(), summary);
    form_page(s, status, form, &errors, preview)
}

/// "Preview" or "Start" of the form. The body is read whole from the
/// request (the guard already held it to `campaigns.max_upload_bytes`;
/// axum's `Bytes` would cut it at `http.limits.max_body_bytes`).
pub(super) async fn submit(State(s): S, req: Request) -> Response {
    if let Some(off) = campaigns_off(&s) {
        return off;
    }
    let raw = match axum::body::to_bytes(req.into_body(), usize::MAX).await {
        Ok(b) => b,
        Err(e) => {
            let f = CampaignForm::default();
            let e = CampaignError {
                field: "form",
                message: format!("the form could not be read: {e}"),
            };
            return refused(&s, &f, e, None);
        }
    };
    let f = Form::parse(&raw);
    let action = f.get("action");
    let form = CampaignForm::parse(&f);
    let new = match form.campaign() {
        Ok(n) => n,
        Err((field, message)) => return refused(&s, &form, CampaignError { field, message }, None),
    };
    // Browsers send a textarea's line ends as CRLF whatever the file had.
    let csv = (!form.csv.trim().is_empty()).then(|| form.csv.replace("\r\n", "\n").into_bytes());
    if action == "start" {
        let started = control::start(
            &ctx(&s),
            new.clone(),
            optional(&form.file),
            csv.as_deref(),
            Utc::now(),
        )
        .await;
        return match started {
            Ok((c, _)) => {
                Redirect::to(&format!("/campaigns/{}?done=started", url(&c.id))).into_response()
            }
            Err(e) => {
                // A refused audience comes back with its preview.
                let preview = match e.field {
                    "audience" => preview(&s, new, csv).await.ok(),
                    _ => None,
                };
                refused(&s, &form, e, preview.as_ref())
            }
        };
    }
    match preview(&s, new, csv).await {
        Ok(p) => form_page(&s, StatusCode::OK, &form, &Errors::new(), Some(&p)),
        Err(e) => refused(&s, &form, e, None),
    }
}

/// The preview, off the async threads (reading a large file is CPU work).
async fn preview(
    s: &std::sync::Arc<HttpState>,
    new: NewCampaign,
    csv: Option<Vec<u8>>,
) -> Result<Preview, CampaignError> {
    let s = s.clone();
    tokio::task::spawn_blocking(move || control::preview(&ctx(&s), &new, csv.as_deref()))
        .await
        .unwrap_or_else(|e| {
            Err(CampaignError {
                field: "form",
                message: format!("the preview failed: {e}"),
            })
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn form(pairs: &str) -> CampaignForm {
        CampaignForm::parse(&Form::parse(pairs.as_bytes()))
    }

    #[test]
    fn the_form_reads_into_a_campaign() {
        let f = form(
            "name=Harvest&backend=bulk&text-en=Hi+%7Bname%7D&text-sw=&defaults=name%3Dfriend%0D%0A%0D%0Acity+%3D+town\
             &groups=a%2C+b&start_at=2026-12-31T18%3A00&messages_per_second=2.5&daily_cap=100&quiet_from=21%3A00&quiet_until=08%3A00",
        );
        let c = f.campaign().unwrap();
        assert_eq!(c.id, None);
        assert_eq!(c.texts.len(), 1, "an empty language's text is left out");
        assert_eq!(c.defaults["city"], "town");
        assert_eq!(c.defaults["name"], "friend");
        assert_eq!(c.groups, ["a", "b"]);
        assert_eq!(
            c.start_at.unwrap().to_rfc3339(),
            "2026-12-31T18:00:00+00:00"
        );
        assert_eq!(c.messages_per_second, Some(2.5));
        assert_eq!(c.daily_cap, Some(100));
        assert_eq!(c.quiet_from.as_deref(), Some("21:00"));
    }

    #[test]
    fn a_field_that_cannot_be_read_is_named() {
        let bad = [
            (
                "start_at=tomorrow",
                "start_at",
                "\"tomorrow\" is not a date and time",
            ),
            (
                "end_at=2026-02-30T10%3A00",
                "end_at",
                "is not a date and time",
            ),
            (
                "messages_per_second=fast",
                "messages_per_second",
                "\"fast\" is not a number",
            ),
            ("daily_cap=1.5", "daily_cap", "is not a number"),
            (
                "defaults=name%3Dx%0Acity",
                "defaults",
                "line 2: \"city\" is not name=value",
            ),
            ("defaults=%3Dx", "defaults", "line 1"),
        ];
        for (pairs, field, words) in bad {
            let (f, m) = form(pairs).campaign().unwrap_err();
            assert_eq!(f, field, "{pairs}");
            assert!(m.contains(words), "{pairs}: {m}");
        }
    }

    #[test]
    fn errors_land_next_to_their_field() {
        let f = form("text-en=x");
        assert_eq!(error_key("start_at", &f), "start_at");
        assert_eq!(error_key("csv", &f), "audience");
        assert_eq!(error_key("text-en", &f), "text-en");
        assert_eq!(error_key("text-fr", &f), "form");
        assert_eq!(error_key("bus", &f), "form");
        assert_eq!(label("start_at"), "Start (UTC)");
    }
}
