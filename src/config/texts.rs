//! Translation files (`languages.files`): read confined to the pipeline's
//! directory, size-capped, and checked to be shaped like `languages.texts`.
//! What the texts mean is [`crate::i18n`]'s business.

use std::collections::BTreeMap;
use std::io::Read;
use std::path::Path;

use super::node::{Kind, Node};

/// The largest translations file read (`languages.files`).
pub const MAX_TEXTS_FILE: u64 = 1 << 20;

/// Texts by language, then by key, as a translations file holds them.
pub type TextsByLanguage = BTreeMap<String, BTreeMap<String, String>>;

/// Read the translations file `name` (from `languages.files`), relative to
/// `dir`, the pipeline file's directory.
///
/// The file must stay inside `dir` (no absolute path, no `..` or symlink
/// leading out: the path is resolved before it is checked), be a regular
/// file of at most [`MAX_TEXTS_FILE`] bytes, and be shaped like
/// `languages.texts`. Errors name the file, and a line and column, never its
/// contents: a pipeline pointed at `/etc/shadow` must not print it.
pub fn read_texts_file(dir: &Path, name: &str) -> Result<TextsByLanguage, String> {
    if Path::new(name).is_absolute() {
        return Err(format!(
            "{name:?} is an absolute path: expected a path relative to the pipeline file's directory"
        ));
    }
    let base = if dir.as_os_str().is_empty() {
        Path::new(".")
    } else {
        dir
    };
    let base = base.canonicalize().map_err(|e| {
        format!(
            "cannot resolve the pipeline's directory {}: {e}",
            base.display()
        )
    })?;
    let path = base
        .join(name)
        .canonicalize()
        .map_err(|e| format!("cannot read {name:?}: {e}"))?;
    if !path.starts_with(&base) {
        return Err(format!(
            "{name:?} leads outside the pipeline file's directory ({}): translation files must be inside it",
            base.display()
        ));
    }
    let file = std::fs::File::open(&path).map_err(|e| format!("cannot read {name:?}: {e}"))?;
    let meta = file
        .metadata()
        .map_err(|e| format!("cannot read {name:?}: {e}"))?;
    if !meta.is_file() {
        return Err(format!("{name:?} is not a regular file"));
    }
    // Bounded even if the file grows (or lies about its size) meanwhile.
    let mut bytes = Vec::new();
    file.take(MAX_TEXTS_FILE + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| format!("cannot read {name:?}: {e}"))?;
    if bytes.len() as u64 > MAX_TEXTS_FILE {
        return Err(format!(
            "{name:?} is larger than {} KiB, the most a translations file may be",
            MAX_TEXTS_FILE >> 10
        ));
    }
    let text = String::from_utf8(bytes).map_err(|e| {
        format!(
            "{name:?} is not UTF-8 text (byte {} is not)",
            e.utf8_error().valid_up_to()
        )
    })?;
    parse_texts(&text).map_err(|(line, column, why)| {
        format!("{name:?} is not a translations file: line {line}, column {column}: {why}; expected `<language>: {{<app>.<text>: template}}`")
    })
}

/// A translations file's text, with errors that say where and what kind,
/// quoting nothing of it.
fn parse_texts(text: &str) -> Result<TextsByLanguage, (u32, u32, String)> {
    let root = Node::parse(text).map_err(|e| (e.line, e.column, "invalid YAML syntax".into()))?;
    let Kind::Map(languages) = &root.kind else {
        return Err((
            root.line,
            root.column,
            format!("expected a mapping of languages, found {}", kind_of(&root)),
        ));
    };
    let mut out = TextsByLanguage::new();
    for (lang, texts) in languages {
        let Some(lang) = lang.as_str() else {
            return Err((
                lang.line,
                lang.column,
                format!("a language code is a string, found {}", kind_of(lang)),
            ));
        };
        let Kind::Map(entries) = &texts.kind else {
            return Err((
                texts.line,
                texts.column,
                format!("expected a mapping of texts, found {}", kind_of(texts)),
            ));
        };
        let own = out.entry(lang.to_owned()).or_default();
        for (key, value) in entries {
            let Some(key) = key.as_str() else {
                return Err((
                    key.line,
                    key.column,
                    format!("a text key is a string, found {}", kind_of(key)),
                ));
            };
            let value = match &value.kind {
                Kind::Str(s) => s.clone(),
                Kind::Int(_) | Kind::Float(_) | Kind::Bool(_) => value.describe(),
                _ => {
                    return Err((
                        value.line,
                        value.column,
                        format!("a template is a string, found {}", kind_of(value)),
                    ))
                }
            };
            own.insert(key.to_owned(), value);
        }
    }
    Ok(out)
}

/// What kind of value `node` is, without its value.
fn kind_of(node: &Node) -> &'static str {
    match node.kind {
        Kind::Null => "null",
        Kind::Bool(_) => "a boolean",
        Kind::Int(_) | Kind::Float(_) => "a number",
        Kind::Str(_) => "a string",
        Kind::Seq(_) => "a list",
        Kind::Map(_) => "a mapping",
    }
}
