//! What every page shares: escaping, the layout with its nav bar, page
//! links, and dates (UTC) in and out.

use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Response};
use percent_encoding::{utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};

/// `text` safe inside an element or a quoted attribute.
pub fn esc(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// Everything but RFC 3986's unreserved characters.
const RESERVED: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// `text` as one path segment or query value of a URL.
pub fn url(text: &str) -> String {
    utf8_percent_encode(text, RESERVED).to_string()
}

/// The nav bar's pages, in order.
const NAV: [(&str, &str); 8] = [
    ("/tester/", "Message tester"),
    ("/log/", "Message log"),
    ("/contacts/", "Contacts"),
    ("/messaging/", "Send a message"),
    ("/campaigns/", "Campaigns"),
    ("/polls/", "Polls"),
    ("/status/", "Message status"),
    ("/dashboard/", "Dashboard"),
];

tokio::task_local! {
    /// Whether the pipeline answering has `campaigns:` (the nav links the
    /// campaigns page only then).
    static CAMPAIGNS: bool;
}

/// `answer` made with the nav linking the campaigns page when `campaigns`.
pub async fn with_campaigns<F: std::future::Future>(campaigns: bool, answer: F) -> F::Output {
    CAMPAIGNS.scope(campaigns, answer).await
}

/// The pages' style sheet, served at `/static/style.css`.
/// The contact import page's file picker, served at `/static/import.js`.
pub const IMPORT_SCRIPT: &str = include_str!("import.js");

pub const STYLE: &str = include_str!("style.css");

/// The hidden field every POST form carries (see [`crate::http::guard`]).
pub fn csrf_field() -> String {
    format!(
        "<input type=\"hidden\" name=\"{}\" value=\"{}\">",
        crate::http::guard::CSRF_FIELD,
        crate::http::guard::form_token()
    )
}

/// A whole page: `body` (already HTML) under the nav bar, `active` being
/// the nav entry's path.
pub fn page(status: StatusCode, title: &str, active: &str, body: &str) -> Response {
    let mut nav = String::new();
    let campaigns = CAMPAIGNS.try_with(|c| *c).unwrap_or(false);
    for (path, label) in NAV {
        if path == "/campaigns/" && !campaigns {
            continue;
        }
        let current = if path == active {
            " aria-current=\"page\""
        } else {
            ""
        };
        nav += &format!("<a href=\"{path}\"{current}>{label}</a>");
    }
    let html = format!(
        "<!doctype html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
         <title>smsflow · {title}</title>\n\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n\
         <link rel=\"stylesheet\" href=\"/static/style.css\">\n</head>\n<body>\n<nav>{nav}</nav>\n<main>\n{body}\n</main>\n</body>\n</html>\n",
        title = esc(title),
    );
    (status, Html(html)).into_response()
}

/// `<span class="error">` after a field, or nothing.
pub fn field_error(id: &str, message: Option<&String>) -> String {
    match message {
        Some(m) => format!(
            "<span class=\"error\" id=\"error-{}\" role=\"alert\">{}</span>",
            esc(id),
            esc(m)
        ),
        None => String::new(),
    }
}

/// Page links (RapidSMS's paginator: 2 at each end, 2 either side of the
/// current one); `link(n)` is page n's URL.
pub fn pager(page: usize, pages: usize, link: impl Fn(usize) -> String) -> String {
    if pages <= 1 {
        return String::new();
    }
    let shown = |n: usize| n <= 2 || n + 2 > pages || n.abs_diff(page) <= 2;
    let mut out = String::from("<nav class=\"pages\" aria-label=\"pages\">");
    if page > 1 {
        out += &format!("<a rel=\"prev\" href=\"{}\">«</a>", esc(&link(page - 1)));
    }
    let mut gap = false;
    for n in 1..=pages {
        if !shown(n) {
            if !gap {
                out += "<span>…</span>";
                gap = true;
            }
            continue;
        }
        gap = false;
        if n == page {
            out += &format!("<span class=\"current\" aria-current=\"page\">{n}</span>");
        } else {
            out += &format!("<a href=\"{}\">{n}</a>", esc(&link(n)));
        }
    }
    if page < pages {
        out += &format!("<a rel=\"next\" href=\"{}\">»</a>", esc(&link(page + 1)));
    }
    out + "</nav>"
}

/// Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's
/// `days_from_civil`).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let doy = (153 * ((m + 9) % 12) + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// The date of a day since 1970-01-01 (H. Hinnant's `civil_from_days`).
fn civil_from_days(z: i64) -> (i64, i64, i64) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    (yoe + era * 400 + i64::from(m <= 2), m, d)
}

const DAY_MS: i64 = 86_400_000;

/// Midnight (UTC, in ms since the epoch) of a `YYYY-MM-DD` date.
pub fn date_ms(text: &str) -> Option<i64> {
    let mut parts = text.trim().splitn(3, '-');
    let mut next = || parts.next()?.parse::<i64>().ok();
    let (y, m, d) = (next()?, next()?, next()?);
    if !(1..=9999).contains(&y) || !(1..=12).contains(&m) || !(1..=31).contains(&d) {
        return None;
    }
    let days = days_from_civil(y, m, d);
    // 2023-02-30 comes back as 2023-03-02: not a date.
    (civil_from_days(days) == (y, m, d)).then_some(days * DAY_MS)
}

/// The day after `date_ms` of a date: a "to" date includes its whole day.
pub fn day_after(ms: i64) -> i64 {
    ms + DAY_MS
}

/// `YYYY-MM-DD HH:MM:SS` (UTC) of ms since the epoch.
pub fn time(ms: i64) -> String {
    let (days, rest) = (ms.div_euclid(DAY_MS), ms.rem_euclid(DAY_MS) / 1000);
    let (y, m, d) = civil_from_days(days);
    format!(
        "{y:04}-{m:02}-{d:02} {:02}:{:02}:{:02}",
        rest / 3600,
        rest / 60 % 60,
        rest % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_markup_and_quotes() {
        assert_eq!(
            esc(r#"<a href="x">Tom & 'Jerry'</a>"#),
            "&lt;a href=&quot;x&quot;&gt;Tom &amp; &#39;Jerry&#39;&lt;/a&gt;"
        );
        assert_eq!(url("a b/c?d&e=f-g"), "a%20b%2Fc%3Fd%26e%3Df-g");
    }

    #[test]
    fn dates_round_trip() {
        assert_eq!(date_ms("1970-01-01"), Some(0));
        assert_eq!(date_ms("2024-02-29"), Some(1_709_164_800_000));
        assert_eq!(date_ms("2023-02-29"), None);
        assert_eq!(date_ms("2024-13-01"), None);
        assert_eq!(date_ms("yesterday"), None);
        assert_eq!(date_ms("2024-1"), None);
        assert_eq!(time(1_709_164_800_000 + 3_723_000), "2024-02-29 01:02:03");
        assert_eq!(time(-1000), "1969-12-31 23:59:59");
        for day in [-800_000, -1, 0, 59, 365 * 30, 2_000_000] {
            let (y, m, d) = civil_from_days(day);
            assert_eq!(days_from_civil(y, m, d), day);
        }
    }

    #[test]
    fn page_links_skip_the_middle() {
        let p = pager(7, 20, |n| format!("?page={n}"));
        for shown in [
            "?page=1\"",
            "?page=2\"",
            "?page=5\"",
            "?page=9\"",
            "?page=19\"",
            "?page=20\"",
        ] {
            assert!(p.contains(shown), "{shown} missing from {p}");
        }
        assert!(!p.contains("?page=3\"") && !p.contains("?page=12\""), "{p}");
        assert!(p.contains("<span class=\"current\" aria-current=\"page\">7</span>"));
        assert_eq!(pager(1, 1, |n| n.to_string()), "");
    }
}
