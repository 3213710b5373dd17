//! Languages and reply texts.
//!
//! RapidSMS left translation to each app (`translation.override` around
//! every reply, `group_connections` before every broadcast). Here every reply
//! text has a key, `<app>.<text>`, and [`Texts`] picks its template for a
//! language: the contact's language, then its primary subtag (`pt-BR` →
//! `pt`), then the pipeline's default language, then the app's built-in
//! English. Built-in apps and user apps ([`crate::apps::Context::text`]) use
//! the same mechanism; a broadcast is rendered once per language group.

use std::collections::HashMap;

use crate::config::{Language, Pipeline};
use crate::message::Contact;
use crate::sms::template;

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
            &[],
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
