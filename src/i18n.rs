//! Languages and reply texts.
//!
//! RapidSMS left translation to each app (`translation.override` around
//! every reply, `group_connections` before every broadcast). Here every reply
//! text has a key, `<app>.<text>`, and [`Texts`] picks its template for a
//! language: the contact's language, then its primary subtag (`pt-BR` →
//! `pt`), then the pipeline's default language, then the app's built-in
//! English. Built-in apps and user apps ([`crate::apps::Context::text`]) use
//! the same mechanism; a broadcast is rendered once per language group.

use std::collections::{BTreeMap, HashMap};
use std::io::Read;
use std::path::Path;

use crate::apps::template;
use crate::config::{Kind, Language, Node, Pipeline};
use crate::message::Contact;

/// The languages of a pipeline and its texts in each.
#[derive(Debug, Clone)]
pub struct Texts {
    default: String,
    available: Vec<Language>,
    texts: HashMap<String, HashMap<String, String>>,
    project: String,
}

impl Texts {
    pub fn new(p: &Pipeline) -> Texts {
        Texts {
            default: p.languages.default.clone(),
            available: p.languages.available.clone(),
            texts: p
                .languages
                .texts
                .iter()
                .map(|(lang, texts)| {
                    let texts = texts.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
                    (lang.to_lowercase(), texts)
                })
                .collect(),
            project: p.project.clone(),
        }
    }

    /// The default language's code.
    pub fn default_language(&self) -> &str {
        &self.default
    }

    /// The languages contacts can choose.
    pub fn available(&self) -> &[Language] {
        &self.available
    }

    /// The language `text` names, by code or by name, ignoring case and
    /// surrounding blanks.
    pub fn find_language(&self, text: &str) -> Option<&Language> {
        let wanted = text.trim().to_lowercase();
        self.available
            .iter()
            .find(|l| l.code.to_lowercase() == wanted || l.name.to_lowercase() == wanted)
    }

    /// The language to speak to `contact` in.
    pub fn language_of<'a>(&'a self, contact: Option<&'a Contact>) -> &'a str {
        match contact {
            Some(c) if !c.language.is_empty() => &c.language,
            _ => &self.default,
        }
    }

    /// The template of `key` for `language`, or `builtin` when no language has it.
    pub fn template<'a>(&'a self, language: &str, key: &str, builtin: &'a str) -> &'a str {
        let language = language.to_lowercase();
        let primary = language.split(['-', '_']).next().unwrap_or_default();
        let default = self.default.to_lowercase();
        let found = [language.as_str(), primary, default.as_str()]
            .into_iter()
            .find_map(|l| self.texts.get(l)?.get(key));
        match found {
            Some(t) => t,
            None => builtin,
        }
    }

    /// `key` rendered for `language`: `{name}` placeholders from `vars`, and
    /// `{project}`, the project name.
    pub fn render(
        &self,
        language: &str,
        key: &str,
        builtin: &str,
        vars: &[(&str, &str)],
    ) -> String {
        template::render(self.template(language, key, builtin), |name| {
            vars.iter()
                .find(|(k, _)| *k == name)
                .map(|(_, v)| (*v).to_owned())
                .or_else(|| (name == "project").then(|| self.project.clone()))
        })
    }

    /// Contacts grouped by the language to speak to them in (RapidSMS
    /// `group_connections`), in the order each language first appears.
    pub fn group_by_language<'a>(
        &'a self,
        contacts: &'a [Contact],
    ) -> Vec<(&'a str, Vec<&'a Contact>)> {
        let mut groups: Vec<(&str, Vec<&Contact>)> = Vec::new();
        for c in contacts {
            let lang = self.language_of(Some(c));
            match groups.iter_mut().find(|(l, _)| *l == lang) {
                Some((_, members)) => members.push(c),
                None => groups.push((lang, vec![c])),
            }
        }
        groups
    }
}

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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config;

    fn texts() -> Texts {
        let p = config::load_str(
            r#"
backends: [{type: tester}]
apps: [{type: echo}]
languages:
  default: en
  available: [{code: en, name: English}, {code: fr, name: French}, {code: pt-BR, name: Português}]
  texts:
    fr: {echo.help: "Pour répéter, envoyez ECHO <texte>", default.response: "Désolé, {project} ne comprend pas."}
    en: {echo.help: "Send ECHO <text>"}
"#,
            &|_| None,
        )
        .unwrap();
        Texts::new(&p)
    }

    #[test]
    fn falls_back_from_the_contact_language_to_the_default_to_builtin() {
        let t = texts();
        assert_eq!(
            t.template("fr", "echo.help", "B"),
            "Pour répéter, envoyez ECHO <texte>"
        );
        assert_eq!(
            t.template("FR-ca", "echo.help", "B"),
            "Pour répéter, envoyez ECHO <texte>"
        );
        assert_eq!(t.template("sw", "echo.help", "B"), "Send ECHO <text>");
        assert_eq!(t.template("fr", "ping.pong", "pong"), "pong");
        assert_eq!(
            t.render("fr", "default.response", "x", &[]),
            "Désolé, RapidSMS ne comprend pas."
        );
        assert_eq!(t.find_language("  FRENCH ").unwrap().code, "fr");
        assert_eq!(t.find_language("pt-br").unwrap().name, "Português");
        assert!(t.find_language("klingon").is_none());
    }
}
