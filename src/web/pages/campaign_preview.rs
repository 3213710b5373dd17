//! A campaign's preview as the new-campaign page shows it: the counts,
//! the problems, the first invalid lines with their numbers.

use super::campaigns::money;
use crate::campaign::preview::{Preview, LISTED};
use crate::web::html::esc;

pub(super) fn render_preview(p: &Preview) -> String {
    let mut out = String::from("<section id=\"preview-result\"><h2>Preview</h2>\n");
    if p.ok() {
        out += &format!(
            "<p class=\"success\" id=\"preview-ok\">Ready: {} to send.</p>\n",
            p.to_send
        );
    } else {
        out += "<ul class=\"error\" id=\"preview-problems\">";
        for problem in &p.problems {
            out += &format!("<li>{}</li>", esc(problem));
        }
        out += "</ul>\n";
    }
    let languages: Vec<String> = p
        .languages
        .iter()
        .map(|(l, n)| format!("{}: {n}", esc(l)))
        .collect();
    let rows = [
        ("lines", "Lines read", p.lines.to_string()),
        ("invalid", "Invalid lines", p.invalid.to_string()),
        ("duplicates", "Duplicates", p.duplicates.to_string()),
        (
            "suppressed",
            "Suppressed (opted out, blocked)",
            p.suppressed.to_string(),
        ),
        ("missing", "Missing a variable", p.missing.to_string()),
        ("to-send", "To send", p.to_send.to_string()),
        ("segments", "Segments", p.segments.to_string()),
        ("gsm7", "GSM-7 messages", p.encodings.gsm7.to_string()),
        (
            "ucs2",
            "UCS-2 (Unicode) messages",
            p.encodings.ucs2.to_string(),
        ),
        ("languages", "Languages", languages.join(", ")),
        ("columns", "Variables", esc(&p.columns.join(", "))),
        ("cost", "Estimated cost", money(p.cost)),
    ];
    out += "<table id=\"preview-counts\" class=\"facts\"><tbody>";
    for (id, label, value) in rows {
        out += &format!("<tr><th>{label}</th><td id=\"preview-{id}\">{value}</td></tr>");
    }
    out += "</tbody></table>\n";
    for (id, title, total, lines) in [
        (
            "invalid-lines",
            "Invalid lines",
            p.invalid,
            &p.invalid_lines,
        ),
        (
            "missing-lines",
            "Lines missing a variable",
            p.missing,
            &p.missing_lines,
        ),
    ] {
        if lines.is_empty() {
            continue;
        }
        let first = if total > lines.len() as u64 {
            format!(" (the first {LISTED} of {total})")
        } else {
            String::new()
        };
        out += &format!("<h3>{title}{first}</h3>\n<ul id=\"{id}\">");
        for l in lines {
            out += &format!("<li>Line {}: {}</li>", l.line, esc(&l.reason));
        }
        out += "</ul>\n";
    }
    out + "</section>\n"
}
