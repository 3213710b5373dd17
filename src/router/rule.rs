//! One compiled route: a text condition ([`TextRule`]) and the backend and
//! identity-prefix conditions, all of which must hold.

use std::sync::Arc;

use crate::message::InboundView;
use crate::sms::keyword::{literal_alternatives, Matched, TextRule};

/// One compiled route.
#[derive(Debug, Clone)]
pub struct Rule {
    pub name: Arc<str>,
    pub app: Arc<str>,
    pub text: TextRule,
    pub backend: Option<String>,
    pub prefix: Option<String>,
}

impl Rule {
    /// Whether the message satisfies every condition, and what it extracted.
    pub fn matches<'a>(&'a self, msg: &InboundView<'a>) -> Option<Matched<'a>> {
        if !self.conditions_hold(msg) {
            return None;
        }
        self.text.matches(msg.text)
    }

    /// Whether the backend and prefix conditions hold (the text aside).
    pub(super) fn conditions_hold(&self, msg: &InboundView) -> bool {
        self.backend
            .as_ref()
            .is_none_or(|b| *b == msg.connection.backend)
            && self
                .prefix
                .as_ref()
                .is_none_or(|p| msg.connection.identity.starts_with(p.as_str()))
    }

    /// True when every message `later` matches is matched by `self` first, so
    /// that `later` can never fire. Sound but not complete: it is only claimed
    /// for cases it can prove (catch-alls, repeated keywords, exact texts).
    pub fn shadows(&self, later: &Rule) -> bool {
        let backend_covers = match (&self.backend, &later.backend) {
            (None, _) => true,
            (Some(a), Some(b)) => a == b,
            (Some(_), None) => false,
        };
        let prefix_covers = match (&self.prefix, &later.prefix) {
            (None, _) => true,
            (Some(a), Some(b)) => b.starts_with(a.as_str()),
            (Some(_), None) => false,
        };
        if !(backend_covers && prefix_covers) {
            return false;
        }
        match (&self.text, &later.text) {
            (TextRule::Any, _) => true,
            (TextRule::Exact(a), TextRule::Exact(b)) => a == b,
            (TextRule::Keyword { regex, .. }, TextRule::Exact(b)) => regex.get().is_match(b),
            (TextRule::Pattern { regex, .. }, TextRule::Exact(b)) => regex.is_match(b),
            (TextRule::Keyword { source: a, regex }, TextRule::Keyword { source: b, .. }) => {
                a.eq_ignore_ascii_case(b)
                    || literal_alternatives(b)
                        .is_some_and(|words| words.iter().all(|w| regex.get().is_match(w)))
            }
            (TextRule::Pattern { source: a, .. }, TextRule::Pattern { source: b, .. }) => a == b,
            _ => false,
        }
    }
}
