//! `languages:`: codes, the default, and the texts of each language.

use crate::config::node::Path;
use crate::config::types::Pipeline;
use crate::sms::template;

/// Languages: codes unique, the default among them, texts only for them, and
/// every text a valid template.
pub(super) fn check(p: &Pipeline, report: &mut impl FnMut(Path, String)) {
    let at = Path::default().key("languages");
    let l = &p.languages;
    let codes: Vec<String> = l.available.iter().map(|x| x.code.to_lowercase()).collect();
    for (i, lang) in l.available.iter().enumerate() {
        let code = lang.code.trim();
        if code.is_empty()
            || code.len() > 16
            || !code
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        {
            report(
                at.key("available").index(i).key("code"),
                format!("{code:?} is not a language code: expected a tag such as en, fr or pt-BR"),
            );
        } else if codes[..i].contains(&code.to_lowercase()) {
            report(
                at.key("available").index(i).key("code"),
                format!("language {code:?} is listed twice"),
            );
        }
        if lang.name.trim().is_empty() {
            report(
                at.key("available").index(i).key("name"),
                "a language needs a name, such as French".into(),
            );
        }
    }
    if !codes.contains(&l.default.to_lowercase()) {
        report(
            at.key("default"),
            format!(
                "default language {:?} is not among `available` ({})",
                l.default,
                codes.join(", ")
            ),
        );
    }
    for (lang, texts) in &l.texts {
        let here = at.key("texts").key(lang);
        if !codes.contains(&lang.to_lowercase()) {
            report(
                here.clone(),
                format!(
                    "texts for {lang:?}, which is not among `languages.available` ({})",
                    codes.join(", ")
                ),
            );
        }
        for (key, text) in texts {
            if !key.contains('.') {
                report(here.key(key), format!("text key {key:?} names no app: expected `<app>.<text>`, such as registration.registered"));
            }
            if let Err(why) = template::placeholders(text) {
                report(here.key(key), why);
            }
        }
    }
}
