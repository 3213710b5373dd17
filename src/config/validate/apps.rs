//! `apps:` and `chain:`: each app named once, an autoresponder's trigger
//! and the placeholders its replies use, the default reply, polls, and the
//! apps a chain names.

use std::collections::HashMap;

use crate::config::node::Path;
use crate::config::types::{App, Chain, Pipeline};
use crate::sms::keyword::TextRule;
use crate::sms::template;

use super::rules::{project_only, topic_name};

/// Every app: named once, a good topic name, and an autoresponder's or the
/// default app's texts.
pub(super) fn check(p: &Pipeline, report: &mut impl FnMut(Path, String)) {
    let top = Path::default();
    let t = &p.topics;
    let apps = top.key("apps");
    let mut seen: HashMap<&str, usize> = HashMap::new();
    for (i, a) in p.apps.iter().enumerate() {
        let at = apps.index(i);
        if let Some(first) = seen.insert(a.name(), i) {
            report(at.key("name"), format!("duplicate app name {:?} (also apps[{first}]): each app is a stage and needs its own name", a.name()));
        }
        if let Err(why) = topic_name(&t.app(a.name()), false) {
            report(
                at.key("name"),
                format!("app name {:?} makes a bad topic name: {why}", a.name()),
            );
        }
        if let App::Autoresponder {
            keyword,
            pattern,
            exact,
            reply,
            help,
            ..
        } = a
        {
            if keyword.is_none() && pattern.is_none() && exact.is_none() {
                report(
                    at.clone(),
                    "an autoresponder needs a trigger: one of keyword, pattern, exact".into(),
                );
                continue;
            }
            match TextRule::from_config(keyword.as_deref(), pattern.as_deref(), exact.as_deref()) {
                Err((field, why)) => report(at.key(field), why),
                Ok(rule) => {
                    let mut known = rule.capture_names();
                    known.extend(["rest".to_owned(), "project".to_owned()]);
                    for (field, text) in [("reply", Some(reply)), ("help", help.as_ref())] {
                        let Some(text) = text else { continue };
                        match template::placeholders(text) {
                            Err(why) => report(at.key(field), why),
                            Ok(names) => {
                                for n in names.iter().filter(|n| !known.contains(n)) {
                                    report(at.key(field), format!("{{{n}}} in {text:?} is not something the trigger provides: expected one of {}", known.iter().map(|k| format!("{{{k}}}")).collect::<Vec<_>>().join(", ")));
                                }
                            }
                        }
                    }
                }
            }
        }
        if let App::Default {
            response: Some(text),
            ..
        } = a
        {
            if let Some(why) = project_only(text, "the default reply") {
                report(at.key("response"), why);
            }
        }
    }
}

/// Every app a chain names exists.
pub(super) fn check_chain(p: &Pipeline, report: &mut impl FnMut(Path, String)) {
    let top = Path::default();
    if let Chain::Apps(names) = &p.chain {
        for (i, name) in names.iter().enumerate() {
            if !p.apps.iter().any(|a| a.name() == name) {
                let known: Vec<&str> = p.apps.iter().map(App::name).collect();
                report(
                    top.key("chain").index(i),
                    format!(
                        "no app {name:?} to chain; the apps are: {}",
                        known.join(", ")
                    ),
                );
            }
        }
    }
}

/// Polls: at least two choices, each once.
pub(super) fn check_polls(p: &Pipeline, report: &mut impl FnMut(Path, String)) {
    for (i, app) in p.apps.iter().enumerate() {
        let App::Poll {
            choices, question, ..
        } = app
        else {
            continue;
        };
        let at = Path::default().key("apps").index(i);
        if question.trim().is_empty() {
            report(at.key("question"), "a poll needs a question".into());
        } else if let Some(why) = project_only(question, "a poll's question") {
            report(at.key("question"), why);
        }
        if choices.len() < 2 {
            report(
                at.key("choices"),
                format!("{} choice(s): a poll needs at least two", choices.len()),
            );
        }
        for (j, c) in choices.iter().enumerate() {
            if c.trim().is_empty() || c.contains(char::is_whitespace) {
                report(
                    at.key("choices").index(j),
                    format!("{c:?} is not a choice: expected one word, such as yes"),
                );
            } else if choices[..j].iter().any(|d| d.eq_ignore_ascii_case(c)) {
                report(
                    at.key("choices").index(j),
                    format!("choice {c:?} is listed twice"),
                );
            }
        }
    }
}
