//! A campaign's texts, one template per language, filled in per recipient.
//!
//! Templates use the `{name}` placeholders of [`crate::sms::template`]
//! (`{{` and `}}` are literal braces). A variable comes from the audience's
//! columns, from the built-ins (`phone`, `language`, `name` — the CSV's
//! `name` column or else the contact's name), or from the campaign's
//! defaults. A value that is missing or empty takes its default; with no
//! default the recipient is [`Missing`] — an empty string is never sent.

use std::cell::RefCell;
use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::sms::template;

use super::audience::Recipient;

/// The variables every recipient has without a column.
pub const BUILT_INS: [&str; 3] = ["phone", "name", "language"];

/// A campaign's texts and the defaults of their variables.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Texts {
    /// Language tag (`en`, `fr`, `fr-CA`) → template.
    pub texts: BTreeMap<String, String>,
    /// The language of recipients with none, or one without a text.
    pub default_language: String,
    /// Variable → the value used when a recipient's is missing or empty.
    #[serde(default)]
    pub defaults: BTreeMap<String, String>,
}

/// Why a campaign's texts cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TemplateError {
    #[error("the campaign has no text in its default language {default_language:?} (it has texts in {available:?})")]
    NoDefaultText {
        default_language: String,
        available: Vec<String>,
    },
    #[error("the campaign's {language:?} text is empty")]
    Empty { language: String },
    #[error("the campaign's {language:?} text is not a valid template: {reason}")]
    Malformed { language: String, reason: String },
    #[error("the campaign's {language:?} text {template:?} uses {{{name}}}, which is not an audience column, a built-in or a variable with a default (available: {available:?})")]
    UnknownVariable {
        name: String,
        language: String,
        template: String,
        available: Vec<String>,
    },
}

/// A recipient's text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rendered {
    pub text: String,
    /// The language whose template was used (a key of [`Texts::texts`]).
    pub language: String,
}

/// The variables a recipient has no value for, and no default either.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("no value and no default for {names:?}")]
pub struct Missing {
    pub names: Vec<String>,
}

/// What a recipient's contact (if the number is one) adds: its name for
/// `{name}` when the audience has no `name` value, and its language when the
/// audience has no `language` value.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ContactFields {
    pub name: Option<String>,
    pub language: Option<String>,
}

impl Texts {
    /// One text for every recipient.
    pub fn single(language: &str, template: &str) -> Self {
        Self {
            texts: BTreeMap::from([(language.to_owned(), template.to_owned())]),
            default_language: language.to_owned(),
            defaults: BTreeMap::new(),
        }
    }

    /// Check the texts against an audience's variables (`columns`): every
    /// template parses and is not empty, the default language has a text,
    /// and every variable used is a column, a built-in or has a default.
    pub fn check(&self, columns: &[String]) -> Result<(), TemplateError> {
        if !self.texts.contains_key(&self.default_language) {
            return Err(TemplateError::NoDefaultText {
                default_language: self.default_language.clone(),
                available: self.texts.keys().cloned().collect(),
            });
        }
        for (language, text) in &self.texts {
            if text.is_empty() {
                return Err(TemplateError::Empty {
                    language: language.clone(),
                });
            }
            let names =
                template::placeholders(text).map_err(|reason| TemplateError::Malformed {
                    language: language.clone(),
                    reason,
                })?;
            for name in names {
                let known = columns.contains(&name)
                    || BUILT_INS.contains(&name.as_str())
                    || self.defaults.contains_key(&name);
                if !known {
                    let mut available: Vec<String> = columns.to_vec();
                    available.extend(BUILT_INS.iter().map(|b| (*b).to_owned()));
                    available.extend(self.defaults.keys().cloned());
                    available.sort();
                    available.dedup();
                    return Err(TemplateError::UnknownVariable {
                        name,
                        language: language.clone(),
                        template: text.clone(),
                        available,
                    });
                }
            }
        }
        Ok(())
    }

    /// The language whose text a recipient gets: theirs when there is a
    /// text for it (the exact tag, then its primary subtag: `fr-CA` → `fr`;
    /// tags compared without case, `_` read as `-`), else the default.
    pub fn language_for(&self, language: Option<&str>) -> &str {
        if let Some(wanted) = language.map(str::trim).filter(|l| !l.is_empty()) {
            let same = |a: &str, b: &str| {
                a.len() == b.len()
                    && a.bytes().zip(b.bytes()).all(|(x, y)| {
                        let norm = |c: u8| {
                            if c == b'_' {
                                b'-'
                            } else {
                                c.to_ascii_lowercase()
                            }
                        };
                        norm(x) == norm(y)
                    })
            };
            let primary = wanted.split(['-', '_']).next().unwrap_or(wanted);
            for candidate in [wanted, primary] {
                if let Some(key) = self.texts.keys().find(|k| same(k, candidate)) {
                    return key;
                }
            }
        }
        &self.default_language
    }

    /// Fill in the text for a recipient of `language` whose variables'
    /// values `value` gives. A value that is `None` or empty takes its
    /// default; without one the recipient is [`Missing`] (every such name,
    /// in template order). Assumes [`Texts::check`] passed: a template that
    /// does not parse is sent as written.
    pub fn render<'v>(
        &self,
        language: Option<&str>,
        value: impl Fn(&str) -> Option<&'v str>,
    ) -> Result<Rendered, Missing> {
        let language = self.language_for(language);
        let Some(text) = self.texts.get(language) else {
            // Only when the default language has no text (check() refuses it).
            return Err(Missing {
                names: vec![format!("a text in {language:?}")],
            });
        };
        let missing: RefCell<Vec<String>> = RefCell::new(Vec::new());
        let out = template::render(text, |name| match value(name).filter(|v| !v.is_empty()) {
            Some(v) => Some(v.to_owned()),
            None => match self.defaults.get(name) {
                Some(d) => Some(d.clone()),
                None => {
                    let mut missing = missing.borrow_mut();
                    if !missing.iter().any(|m| m == name) {
                        missing.push(name.to_owned());
                    }
                    None
                }
            },
        });
        let names = missing.into_inner();
        if !names.is_empty() {
            return Err(Missing { names });
        }
        Ok(Rendered {
            text: out,
            language: language.to_owned(),
        })
    }

    /// [`Texts::render`] for a recipient of the audience, with what its
    /// contact (if any) adds.
    pub fn render_for(
        &self,
        recipient: &Recipient,
        contact: Option<&ContactFields>,
    ) -> Result<Rendered, Missing> {
        self.render(language(recipient, contact), values(recipient, contact))
    }
}

/// A recipient's language: the audience's `language` value, else its
/// contact's.
pub fn language<'a>(
    recipient: &'a Recipient,
    contact: Option<&'a ContactFields>,
) -> Option<&'a str> {
    recipient
        .language
        .as_deref()
        .or_else(|| contact.and_then(|c| c.language.as_deref()))
}

/// A recipient's variables: its columns; `phone`, and `language` (see
/// [`language`]) unless a column of that name gives them; and `name` from a
/// non-empty `name` column, else its contact's name.
pub fn values<'a>(
    recipient: &'a Recipient,
    contact: Option<&'a ContactFields>,
) -> impl Fn(&str) -> Option<&'a str> {
    move |name| {
        let column = recipient
            .vars
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
            .filter(|v| !v.is_empty());
        column.or_else(|| match name {
            "phone" => Some(recipient.phone.as_str()),
            "language" => language(recipient, contact),
            "name" => contact.and_then(|c| c.name.as_deref()),
            _ => None,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn texts() -> Texts {
        Texts {
            texts: BTreeMap::from([
                ("en".into(), "Hi {name}, rain in {city}".into()),
                ("fr".into(), "Bonjour {name}, pluie à {city}".into()),
                ("fr-CA".into(), "Allo {name}".into()),
            ]),
            default_language: "en".into(),
            defaults: BTreeMap::from([("city".into(), "your area".into())]),
        }
    }

    fn recipient(vars: &[(&str, &str)], language: Option<&str>) -> Recipient {
        Recipient {
            line: 2,
            phone: "+254712345678".into(),
            language: language.map(Into::into),
            vars: vars
                .iter()
                .map(|(n, v)| ((*n).to_owned(), (*v).to_owned()))
                .collect(),
        }
    }

    #[test]
    fn language_exact_then_primary_subtag_then_default() {
        let t = texts();
        assert_eq!(t.language_for(Some("fr-CA")), "fr-CA");
        assert_eq!(t.language_for(Some("fr_ca")), "fr-CA");
        assert_eq!(t.language_for(Some("fr-BE")), "fr");
        assert_eq!(t.language_for(Some("FR")), "fr");
        assert_eq!(t.language_for(Some("sw")), "en");
        assert_eq!(t.language_for(Some(" ")), "en");
        assert_eq!(t.language_for(None), "en");
    }

    #[test]
    fn values_defaults_and_missing() {
        let t = texts();
        let r = recipient(&[("name", "Amina"), ("city", "Mombasa")], Some("fr-BE"));
        let out = t.render_for(&r, None).unwrap();
        assert_eq!(out.text, "Bonjour Amina, pluie à Mombasa");
        assert_eq!(out.language, "fr");

        // An empty city takes the default.
        let r = recipient(&[("name", "Amina"), ("city", "")], None);
        assert_eq!(
            t.render_for(&r, None).unwrap().text,
            "Hi Amina, rain in your area"
        );

        // An empty name without a default: missing, never "".
        let r = recipient(&[("name", ""), ("city", "Kisumu")], None);
        assert_eq!(
            t.render_for(&r, None).unwrap_err().names,
            vec!["name".to_owned()]
        );
        // ... unless the contact has one.
        let contact = ContactFields {
            name: Some("Otieno".into()),
            language: Some("fr".into()),
        };
        let out = t.render_for(&r, Some(&contact)).unwrap();
        assert_eq!(out.text, "Bonjour Otieno, pluie à Kisumu");

        // With a default for name, it is used.
        let mut with_default = t.clone();
        with_default.defaults.insert("name".into(), "friend".into());
        assert_eq!(
            with_default.render_for(&r, None).unwrap().text,
            "Hi friend, rain in Kisumu"
        );
    }

    #[test]
    fn built_ins_and_escapes() {
        let t = Texts::single("en", "{{ {phone} {language} }}");
        let r = recipient(&[], Some("en"));
        assert_eq!(t.render_for(&r, None).unwrap().text, "{ +254712345678 en }");
        let r = recipient(&[], None);
        assert_eq!(t.render_for(&r, None).unwrap_err().names, vec!["language"]);
    }

    #[test]
    fn check_names_what_is_wrong() {
        let columns = vec!["city".to_owned()];
        assert_eq!(texts().check(&columns), Ok(()));

        let mut t = texts();
        t.texts.insert("sw".into(), "Habari {nmae}".into());
        let err = t.check(&columns).unwrap_err();
        assert!(
            matches!(&err, TemplateError::UnknownVariable { name, language, .. } if name == "nmae" && language == "sw"),
            "{err:?}"
        );
        let msg = err.to_string();
        assert!(
            msg.contains("Habari {nmae}") && msg.contains("\"city\""),
            "{msg}"
        );

        // No column for city and no default: refused; a default makes it fine.
        let mut t = texts();
        t.defaults.clear();
        assert!(matches!(
            t.check(&[]),
            Err(TemplateError::UnknownVariable { name, .. }) if name == "city"
        ));
        assert_eq!(t.check(&columns), Ok(()));

        let mut t = texts();
        t.default_language = "sw".into();
        assert!(matches!(
            t.check(&columns),
            Err(TemplateError::NoDefaultText { .. })
        ));

        let mut t = texts();
        t.texts.insert("de".into(), "Hallo {name".into());
        assert!(
            matches!(t.check(&columns), Err(TemplateError::Malformed { language, .. }) if language == "de")
        );

        let mut t = texts();
        t.texts.insert("de".into(), String::new());
        assert!(matches!(
            t.check(&columns),
            Err(TemplateError::Empty { .. })
        ));
    }
}
