//! RapidSMS's registration app: `JOIN <name>` and `LANGUAGE <code or name>`.
//!
//! Fixed from RapidSMS: input is trimmed (`lang  English  ` is understood);
//! registering again renames the sender's contact instead of orphaning it
//! and creating a new one; `registration` is not read as `reg istration`
//! (keywords end at a separator).

use regex::Regex;

use super::app::{App, AppError, Context};
use crate::sms::keyword::keyword_regex;
use crate::state::contacts::{ContactBook, MAX_NAME};

/// The keywords its route matches when it names no trigger of its own.
pub const TRIGGER: &str = "register|reg|join|language|lang";

pub struct Registration {
    register: Regex,
    language: Regex,
}

impl Registration {
    pub const REGISTER_HELP: &'static str = "To register, send JOIN <NAME>";
    pub const REGISTERED: &'static str = "Thank you for registering, {name}!";
    pub const LANGUAGE_HELP: &'static str = "To set your language, send LANGUAGE <CODE>";
    pub const NOT_REGISTERED: &'static str =
        "You must JOIN or REGISTER yourself before you can set your language preference.";
    pub const LANGUAGE_SET: &'static str = "I will speak to you in {language}.";
    pub const UNKNOWN_LANGUAGE: &'static str = "Sorry, I don't speak \"{language}\".";
    pub const NAME_TOO_LONG: &'static str = "Sorry, a name can have at most {max} characters.";

    pub fn new() -> Self {
        // Both are fixed, valid regexes.
        let compile = |k: &str| keyword_regex(k).unwrap_or_else(|e| unreachable!("{k}: {e}"));
        Self {
            register: compile("register|reg|join"),
            language: compile("language|lang"),
        }
    }

    fn register(&self, cx: &mut Context<'_>, rest: Option<&str>) -> Result<(), AppError> {
        let Some(name) = rest.map(str::trim).filter(|n| !n.is_empty()) else {
            let text = cx.text("register_help", Self::REGISTER_HELP, &[]);
            cx.respond(text);
            return Ok(());
        };
        if name.chars().count() > MAX_NAME {
            let max = MAX_NAME.to_string();
            let text = cx.text("name_too_long", Self::NAME_TOO_LONG, &[("max", &max)]);
            cx.respond_error(text);
            return Ok(());
        }
        let connection = cx.message().message.connection.clone();
        let contact = match cx.contact() {
            Some(mut known) => {
                known.name = name.to_owned();
                known
            }
            None => ContactBook::new_contact(name, vec![connection]),
        };
        cx.save_contact(contact)?;
        let text = cx.text("registered", Self::REGISTERED, &[("name", name)]);
        cx.respond(text);
        Ok(())
    }

    fn language(&self, cx: &mut Context<'_>, rest: Option<&str>) -> Result<(), AppError> {
        let Some(wanted) = rest.map(str::trim).filter(|n| !n.is_empty()) else {
            let text = cx.text("language_help", Self::LANGUAGE_HELP, &[]);
            cx.respond(text);
            return Ok(());
        };
        let Some(mut contact) = cx.contact() else {
            let text = cx.text("not_registered", Self::NOT_REGISTERED, &[]);
            cx.respond_error(text);
            return Ok(());
        };
        let Some(language) = cx.texts().find_language(wanted).cloned() else {
            let text = cx.text(
                "unknown_language",
                Self::UNKNOWN_LANGUAGE,
                &[("language", wanted)],
            );
            cx.respond_error(text);
            return Ok(());
        };
        contact.language = language.code.clone();
        cx.save_contact(contact)?;
        // Answered in the language just chosen.
        let text = cx.text_in(
            &language.code,
            "language_set",
            Self::LANGUAGE_SET,
            &[("language", &language.name)],
        );
        cx.respond(text);
        Ok(())
    }
}

impl Default for Registration {
    fn default() -> Self {
        Self::new()
    }
}

impl App for Registration {
    fn handle(&self, cx: &mut Context<'_>) -> Result<(), AppError> {
        let text = cx.message().message.text.clone();
        let rest_of =
            |caps: regex::Captures<'_>| caps.name("__rest").map(|m| m.as_str().to_owned());
        if let Some(caps) = self.register.captures(&text) {
            self.register(cx, rest_of(caps).as_deref())
        } else if let Some(caps) = self.language.captures(&text) {
            self.language(cx, rest_of(caps).as_deref())
        } else {
            // A route of its own keyword (another language's `join`, say).
            let rest = cx.message().rest.clone();
            self.register(cx, rest.as_deref())
        }
    }
}
