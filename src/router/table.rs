//! The route table: RapidSMS's handlers as declared, compiled rules.
//!
//! Each rule is the conjunction of its conditions (text, backend, identity
//! prefix); the first matching rule wins, then the default app, and taps see
//! everything that passed the filters. Regexes are compiled once, here.

use std::sync::Arc;

use regex::Regex;

use crate::config::{self, Path, Pipeline};
use crate::message::{Fields, InboundMessage};

/// How a rule looks at the text.
#[derive(Debug, Clone)]
pub enum TextRule {
    /// No text condition.
    Any,
    /// RapidSMS KeywordHandler, with a word boundary after the keyword.
    Keyword { source: String, regex: Regex },
    /// RapidSMS PatternHandler: case-insensitive, anchored at the start only.
    Pattern { source: String, regex: Regex },
    /// The whole text, case-sensitive (RapidSMS's PingHandler).
    Exact(String),
}

/// One compiled route.
#[derive(Debug, Clone)]
pub struct Rule {
    pub name: Arc<str>,
    pub app: Arc<str>,
    pub text: TextRule,
    pub backend: Option<String>,
    pub prefix: Option<String>,
}

/// What a matching rule extracted from the message.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Matched {
    /// Keyword rules: the text after the keyword (`None`: nothing follows).
    pub rest: Option<String>,
    pub captures: Fields,
}

/// Compile a keyword (itself a regex, such as `register|reg|join`).
///
/// RapidSMS matches `^\s*(?:KW)[\s,;:]*([^\s,;:].*)?$` (case-insensitive,
/// verbose, dot-all), so `echohi` is answered as `echo hi`. We require a
/// separator or the end after the keyword: `echohi` does not match `echo`.
pub fn keyword_regex(keyword: &str) -> Result<Regex, regex::Error> {
    Regex::new(&format!(
        r"(?isx)^\s*(?:{keyword})(?:[\s,;:]+(?P<__rest>[^\s,;:].*)?)?$"
    ))
}

/// Compile a pattern: case-insensitive, anchored at the start only.
pub fn pattern_regex(pattern: &str) -> Result<Regex, regex::Error> {
    Regex::new(&format!("(?i)^(?:{pattern})"))
}

impl TextRule {
    fn matches(&self, text: &str) -> Option<Matched> {
        match self {
            TextRule::Any => Some(Matched::default()),
            TextRule::Exact(s) => (s == text).then(Matched::default),
            TextRule::Keyword { regex, .. } => {
                let caps = regex.captures(text)?;
                Some(Matched {
                    rest: caps.name("__rest").map(|m| m.as_str().to_owned()),
                    captures: Fields::new(),
                })
            }
            TextRule::Pattern { regex, .. } => {
                let caps = regex.captures(text)?;
                let mut captures = Fields::new();
                for (i, name) in regex.capture_names().enumerate().skip(1) {
                    if let Some(m) = caps.get(i) {
                        captures.insert(i.to_string(), m.as_str().to_owned());
                        if let Some(name) = name {
                            captures.insert(name.to_owned(), m.as_str().to_owned());
                        }
                    }
                }
                Some(Matched {
                    rest: None,
                    captures,
                })
            }
        }
    }

    /// Build from the three optional text conditions (at most one may be set).
    pub fn from_config(
        keyword: Option<&str>,
        pattern: Option<&str>,
        exact: Option<&str>,
    ) -> Result<TextRule, (&'static str, String)> {
        match (keyword, pattern, exact) {
            (None, None, None) => Ok(TextRule::Any),
            (Some(k), None, None) => {
                if k.trim().is_empty() {
                    return Err(("keyword", "an empty keyword would match every message: expected a word such as `join`".into()));
                }
                keyword_regex(k)
                    .map(|regex| TextRule::Keyword {
                        source: k.to_owned(),
                        regex,
                    })
                    .map_err(|e| {
                        (
                            "keyword",
                            format!("{k:?} is not a valid regex: {}", one_line(&e)),
                        )
                    })
            }
            (None, Some(p), None) => pattern_regex(p)
                .map(|regex| TextRule::Pattern {
                    source: p.to_owned(),
                    regex,
                })
                .map_err(|e| {
                    (
                        "pattern",
                        format!("{p:?} is not a valid regex: {}", one_line(&e)),
                    )
                }),
            (None, None, Some(x)) => Ok(TextRule::Exact(x.to_owned())),
            _ => Err((
                "keyword",
                "give only one of keyword, pattern and exact".into(),
            )),
        }
    }

    /// Capture group names a template may use after this rule matched.
    pub fn capture_names(&self) -> Vec<String> {
        match self {
            TextRule::Pattern { regex, .. } => {
                let mut names: Vec<String> =
                    regex.capture_names().flatten().map(str::to_owned).collect();
                names.extend((1..regex.captures_len()).map(|i| i.to_string()));
                names
            }
            _ => Vec::new(),
        }
    }
}

fn one_line(e: &regex::Error) -> String {
    e.to_string()
        .lines()
        .last()
        .unwrap_or_default()
        .trim()
        .to_owned()
}

impl Rule {
    /// Whether the message satisfies every condition, and what it extracted.
    pub fn matches(&self, msg: &InboundMessage) -> Option<Matched> {
        if let Some(b) = &self.backend {
            if *b != msg.connection.backend {
                return None;
            }
        }
        if let Some(p) = &self.prefix {
            if !msg.connection.identity.starts_with(p.as_str()) {
                return None;
            }
        }
        self.text.matches(&msg.text)
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
            (
                TextRule::Keyword { regex, .. } | TextRule::Pattern { regex, .. },
                TextRule::Exact(b),
            ) => regex.is_match(b),
            (TextRule::Keyword { source: a, regex }, TextRule::Keyword { source: b, .. }) => {
                a.eq_ignore_ascii_case(b)
                    || literal_alternatives(b)
                        .is_some_and(|words| words.iter().all(|w| regex.is_match(w)))
            }
            (TextRule::Pattern { source: a, .. }, TextRule::Pattern { source: b, .. }) => a == b,
            _ => false,
        }
    }
}

/// `join|reg` → `["join", "reg"]` when every alternative is a plain word.
fn literal_alternatives(keyword: &str) -> Option<Vec<&str>> {
    let words: Vec<&str> = keyword.split('|').map(str::trim).collect();
    words
        .iter()
        .all(|w| {
            !w.is_empty()
                && w.chars()
                    .all(|c| c.is_alphanumeric() || c == '_' || c == '-')
        })
        .then_some(words)
}

/// The compiled route table of a pipeline.
#[derive(Debug, Clone)]
pub struct RouteTable {
    pub rules: Vec<Rule>,
    pub default_app: Option<Arc<str>>,
    pub taps: Vec<Arc<str>>,
}

/// The trigger a built-in app brings when a route names it without conditions.
pub fn app_trigger(app: &config::App) -> Option<(Option<&str>, Option<&str>, Option<&str>)> {
    match app {
        config::App::Echo { .. } => Some((Some("echo"), None, None)),
        config::App::Ping { .. } => Some((None, None, Some("ping"))),
        config::App::Default { .. } => None,
        config::App::Autoresponder {
            keyword,
            pattern,
            exact,
            ..
        }
        | config::App::External {
            keyword,
            pattern,
            exact,
            ..
        } if keyword.is_some() || pattern.is_some() || exact.is_some() => {
            Some((keyword.as_deref(), pattern.as_deref(), exact.as_deref()))
        }
        config::App::Autoresponder { .. } | config::App::External { .. } => None,
    }
}

impl RouteTable {
    /// Compile the pipeline's routes. Errors come with the path they concern.
    pub fn build(p: &Pipeline) -> Result<RouteTable, Vec<(Path, String)>> {
        let mut errors = Vec::new();
        let mut rules: Vec<Rule> = Vec::new();
        // The route index each compiled rule came from, for error positions.
        let mut route_of_rule = Vec::new();
        let routes = Path::default().key("routes");
        for (i, r) in p.routes.iter().enumerate() {
            let at = routes.index(i);
            let Some(app) = p.apps.iter().find(|a| a.name() == r.app) else {
                let known: Vec<&str> = p.apps.iter().map(|a| a.name()).collect();
                errors.push((
                    at.key("app"),
                    format!("unknown app {:?}: the apps are {}", r.app, known.join(", ")),
                ));
                continue;
            };
            if let Some(b) = &r.backend {
                if !p.backends.iter().any(|x| x.name() == b) {
                    let known: Vec<&str> = p.backends.iter().map(|x| x.name()).collect();
                    errors.push((
                        at.key("backend"),
                        format!(
                            "unknown backend {b:?}: the backends are {}",
                            known.join(", ")
                        ),
                    ));
                }
            }
            let own = (
                r.keyword.as_deref(),
                r.pattern.as_deref(),
                r.exact.as_deref(),
            );
            let conditions = if own == (None, None, None)
                && r.backend.is_none()
                && r.prefix.is_none()
            {
                match app_trigger(app) {
                    Some(t) => t,
                    None => {
                        errors.push((at.clone(), format!("route to {:?} has no condition and a {} app brings no trigger of its own: add keyword, pattern, exact, backend or prefix", r.app, app.type_name())));
                        continue;
                    }
                }
            } else {
                own
            };
            match TextRule::from_config(conditions.0, conditions.1, conditions.2) {
                Ok(text) => {
                    route_of_rule.push(i);
                    rules.push(Rule {
                        name: r.name.as_deref().unwrap_or(&r.app).into(),
                        app: r.app.as_str().into(),
                        text,
                        backend: r.backend.clone(),
                        prefix: r.prefix.clone(),
                    })
                }
                Err((field, msg)) => errors.push((at.key(field), msg)),
            }
        }
        // Shadowing is checked among the rules that compiled; report each once.
        for (j, later) in rules.iter().enumerate() {
            if let Some(earlier) = rules[..j].iter().position(|r| r.shadows(later)) {
                let (ri, rj) = (route_of_rule[earlier], route_of_rule[j]);
                {
                    errors.push((routes.index(rj), format!(
                        "route {:?} can never match: route {} ({:?}, to {}) matches everything it would match first",
                        later.name, ri, rules[earlier].name, rules[earlier].app
                    )));
                }
            }
        }
        let known = |name: &str| p.apps.iter().any(|a| a.name() == name);
        if let Some(d) = &p.default_app {
            if !known(d) {
                errors.push((
                    Path::default().key("default_app"),
                    format!("unknown app {d:?} for default_app"),
                ));
            }
        }
        for (i, t) in p.taps.iter().enumerate() {
            if !known(t) {
                errors.push((
                    Path::default().key("taps").index(i),
                    format!("unknown app {t:?} in taps"),
                ));
            }
        }
        if !errors.is_empty() {
            return Err(errors);
        }
        Ok(RouteTable {
            rules,
            default_app: p.default_app.as_deref().map(Arc::from),
            taps: p.taps.iter().map(|t| Arc::from(t.as_str())).collect(),
        })
    }

    /// The first rule that matches, with what it extracted.
    pub fn first_match(&self, msg: &InboundMessage) -> Option<(&Rule, Matched)> {
        self.rules
            .iter()
            .find_map(|r| r.matches(msg).map(|m| (r, m)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kw(k: &str, text: &str) -> Option<Option<String>> {
        TextRule::from_config(Some(k), None, None)
            .unwrap()
            .matches(text)
            .map(|m| m.rest)
    }

    #[test]
    fn keyword_follows_rapidsms_with_a_word_boundary() {
        assert_eq!(kw("echo", "echo hi"), Some(Some("hi".into())));
        assert_eq!(
            kw("echo", "  ECHO   hi there "),
            Some(Some("hi there ".into()))
        );
        assert_eq!(kw("echo", "echo,;: hi"), Some(Some("hi".into())));
        assert_eq!(kw("echo", "echo\nline two"), Some(Some("line two".into())));
        assert_eq!(kw("echo", "echo"), Some(None));
        assert_eq!(kw("echo", "echo  ,"), Some(None));
        // RapidSMS answers these as "echo hi" and "echo es": we do not.
        assert_eq!(kw("echo", "echohi"), None);
        assert_eq!(kw("echo", "echoes"), None);
        assert_eq!(kw("register|reg|join", "registration"), None);
        assert_eq!(
            kw("register|reg|join", "register Ada"),
            Some(Some("Ada".into()))
        );
        assert_eq!(kw("register|reg|join", "reg Ada"), Some(Some("Ada".into())));
    }

    #[test]
    fn pattern_is_anchored_at_the_start_only() {
        let p = TextRule::from_config(None, Some(r"price (?P<item>\w+)"), None).unwrap();
        let m = p.matches("PRICE rice please").unwrap();
        assert_eq!(m.captures["item"], "rice");
        assert_eq!(m.captures["1"], "rice");
        assert!(p.matches("the price rice").is_none());
    }

    #[test]
    fn exact_is_case_sensitive() {
        let p = TextRule::from_config(None, None, Some("ping")).unwrap();
        assert!(p.matches("ping").is_some());
        for t in ["PING", " ping", "ping "] {
            assert!(p.matches(t).is_none(), "{t:?}");
        }
    }
}
