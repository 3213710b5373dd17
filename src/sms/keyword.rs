//! RapidSMS's text conditions: a keyword (KeywordHandler), a pattern
//! (PatternHandler) or an exact text (PingHandler), compiled to the regexes
//! the router matches with and the built-in apps parse with.

use std::sync::OnceLock;

use regex::Regex;

pub use super::pattern::{Captures, PatternRegex};

/// How a rule looks at the text.
#[derive(Debug, Clone)]
pub enum TextRule {
    /// No text condition.
    Any,
    /// RapidSMS KeywordHandler, with a word boundary after the keyword.
    Keyword { source: String, regex: KeywordRegex },
    /// RapidSMS PatternHandler: case-insensitive, anchored at the start only.
    Pattern { source: String, regex: PatternRegex },
    /// The whole text, case-sensitive (RapidSMS's PingHandler).
    Exact(String),
}

/// What a matching rule extracted from the message, borrowed from its text
/// (and the rule's group names).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Matched<'a> {
    /// Keyword rules: the text after the keyword (`None`: nothing follows).
    pub rest: Option<&'a str>,
    /// Pattern rules: the groups that took part.
    pub captures: Captures<'a>,
}

/// A keyword's regex, compiled when first needed. Plain-word keywords (most
/// of them) are matched through the router's index and seldom need theirs:
/// compiling 20,000 up front took most of the time to check such a table.
#[derive(Debug, Clone)]
pub struct KeywordRegex {
    keyword: String,
    compiled: OnceLock<Regex>,
}

/// Plain-word keywords up to this long are compiled when first needed;
/// longer ones at once, so that a failure is a validation error.
const LAZY_KEYWORD: usize = 1024;

impl KeywordRegex {
    /// The keyword's regex, compiled now unless it is plain words short
    /// enough to be sure to compile.
    fn new(keyword: &str) -> Result<KeywordRegex, regex::Error> {
        let compiled = OnceLock::new();
        if literal_alternatives(keyword).is_none() || keyword.len() > LAZY_KEYWORD {
            let _ = compiled.set(keyword_regex(keyword)?);
        }
        Ok(KeywordRegex {
            keyword: keyword.to_owned(),
            compiled,
        })
    }

    pub fn get(&self) -> &Regex {
        self.compiled.get_or_init(|| {
            // Only plain words of at most LAZY_KEYWORD bytes get here: letters,
            // digits, `_` and `-` between `|`, far inside the regex limits.
            keyword_regex(&self.keyword).expect("plain words always compile")
        })
    }
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

impl TextRule {
    pub fn matches<'a>(&'a self, text: &'a str) -> Option<Matched<'a>> {
        match self {
            TextRule::Any => Some(Matched::default()),
            TextRule::Exact(s) => (s == text).then(Matched::default),
            TextRule::Keyword { regex, .. } => {
                let caps = regex.get().captures(text)?;
                Some(Matched {
                    rest: caps.name("__rest").map(|m| m.as_str()),
                    captures: Captures::default(),
                })
            }
            TextRule::Pattern { regex, .. } => Some(Matched {
                rest: None,
                captures: regex.captures(text)?,
            }),
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
                KeywordRegex::new(k)
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
            (None, Some(p), None) => PatternRegex::new(p)
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
            TextRule::Pattern { regex, .. } => regex.capture_names(),
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

/// `join|reg` → `["join", "reg"]` when every alternative is a plain word.
pub fn literal_alternatives(keyword: &str) -> Option<Vec<&str>> {
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
