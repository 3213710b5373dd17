//! Secrets are never printed: an error message that would quote a secret
//! value (a password, a token, a URL's password) says `<redacted>` instead.

use super::error::ConfigError;
use super::node::{Kind, Node, Path};

/// What replaces a secret in an error message.
const REDACTED: &str = "<redacted>";

/// Secrets shorter than this are hidden only in errors about themselves:
/// elsewhere, hiding every `1` or `ab` would garble messages.
const SCRUB_EVERYWHERE: usize = 4;

/// Hide secret values in `errors`, whichever check wrote them (a value of the
/// wrong type, a bad `${VAR}`, a validation): every value under a secret key
/// ([`super::path::is_secret_key`]) and the password of any `scheme://user:password@`.
pub(super) fn redact(errors: &mut [ConfigError], root: &Node) {
    let mut secrets = Vec::new();
    collect_secrets(root, &Path::default(), false, &mut secrets);
    for e in errors.iter_mut() {
        for (at, value) in &secrets {
            if e.path.0.starts_with(&at.0) || at.0.starts_with(&e.path.0) {
                let scrubbed = hide_serde_value(&scrub(&e.message, value, true));
                // An error placed above the secret (a list item read as a
                // whole) would not say which value it hid.
                if scrubbed != e.message && e.path != *at {
                    e.message = format!("{scrubbed} (the value of {at}, not shown: a secret)");
                } else {
                    e.message = scrubbed;
                }
            } else if value.chars().count() >= SCRUB_EVERYWHERE {
                e.message = scrub(&e.message, value, false);
            }
        }
        e.message = hide_url_passwords(&e.message);
    }
}

/// Every scalar under a secret key, with its path.
fn collect_secrets(node: &Node, path: &Path, secret: bool, out: &mut Vec<(Path, String)>) {
    match &node.kind {
        Kind::Map(entries) => {
            for (k, v) in entries {
                let key = k.as_str().map_or_else(|| k.describe(), str::to_owned);
                let secret = secret || super::path::is_secret_key(&key);
                collect_secrets(v, &path.key(&key), secret, out);
            }
        }
        Kind::Seq(items) => {
            for (i, item) in items.iter().enumerate() {
                collect_secrets(item, &path.index(i), secret, out);
            }
        }
        Kind::Str(s) if secret && !s.is_empty() => out.push((path.clone(), s.clone())),
        Kind::Int(_) | Kind::Float(_) if secret => out.push((path.clone(), node.describe())),
        _ => {}
    }
}

/// `message` with `value` replaced: quoted as serde and `describe` quote
/// it, and bare. A short value (`about_it`: the error is about this secret)
/// is replaced bare only where it stands as a word of its own.
fn scrub(message: &str, value: &str, about_it: bool) -> String {
    let quoted = format!("{value:?}");
    let mut out = message.replace(&quoted, REDACTED);
    if value.chars().count() >= SCRUB_EVERYWHERE {
        return out.replace(value, REDACTED);
    }
    if about_it {
        out = replace_word(&out, value);
    }
    out
}

/// serde's own rendering of a value it refused (`invalid type: floating
/// point `1.2e23``) hidden: it need not spell the value as the file did.
fn hide_serde_value(message: &str) -> String {
    let Some(kind) = ["invalid type: ", "invalid value: "]
        .into_iter()
        .find(|k| message.starts_with(k))
    else {
        return message.to_owned();
    };
    let rest = &message[kind.len()..];
    match (rest.find('`'), rest.find("`, expected")) {
        (Some(open), Some(close)) if open < close => {
            format!("{kind}{}`{REDACTED}{}", &rest[..open], &rest[close..])
        }
        _ => message.to_owned(),
    }
}

/// `text` with each occurrence of `word` not inside a longer word replaced.
fn replace_word(text: &str, word: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(i) = rest.find(word) {
        let before = rest[..i].chars().next_back();
        let after = rest[i + word.len()..].chars().next();
        let alone =
            !before.is_some_and(char::is_alphanumeric) && !after.is_some_and(char::is_alphanumeric);
        out.push_str(&rest[..i]);
        out.push_str(if alone { REDACTED } else { word });
        rest = &rest[i + word.len()..];
    }
    out.push_str(rest);
    out
}

/// `scheme://user:password@host` with the password hidden.
fn hide_url_passwords(message: &str) -> String {
    static USERINFO: std::sync::LazyLock<regex::Regex> = std::sync::LazyLock::new(|| {
        // Infallible: a constant, checked by the tests.
        regex::Regex::new(r"(?P<pre>[A-Za-z][A-Za-z0-9+.-]*://[^:/?#@\s]*:)[^@/?#\s]+@")
            .expect("a valid regex")
    });
    USERINFO
        .replace_all(message, format!("${{pre}}{REDACTED}@"))
        .into_owned()
}
