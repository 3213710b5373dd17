//! The route table: RapidSMS's handlers as declared, compiled rules.
//!
//! Each rule is the conjunction of its conditions (text, backend, identity
//! prefix); the first matching rule wins, then the default app, and taps see
//! everything that passed the filters. Regexes are compiled once, here.
//!
//! Deciding does not run every rule's regex in turn: an `Index` built with
//! the table names the few rules that can match a text (keywords that are
//! plain words by the text's first word, every other regex through one
//! `RegexSet` pass), and only those are checked, in table order. A route
//! an earlier one always wins over is an error (`shadow` finds them).

use std::sync::Arc;

pub(super) use super::index::Index;

pub use super::rule::Rule;
use super::shadow::shadowed;
use crate::config::{self, Path, Pipeline};
use crate::message::InboundView;
pub use crate::sms::keyword::{literal_alternatives, Captures, Matched, TextRule};

/// The compiled route table of a pipeline.
#[derive(Debug, Clone)]
pub struct RouteTable {
    /// Private: [`Index`] is built from them and must not go stale.
    rules: Vec<Rule>,
    /// Boxed: a pointer wide in the stage structs that hold a table. Cloned
    /// with it, so that each router task has its own regex caches (a clone
    /// of a regex gets its own, as the rules' regexes do).
    index: Box<Index>,
    pub default_app: Option<Arc<str>>,
    pub taps: Vec<Arc<str>>,
}

/// The trigger a built-in app brings when a route names it without conditions.
pub fn app_trigger(app: &config::App) -> Option<(Option<&str>, Option<&str>, Option<&str>)> {
    match app {
        config::App::Echo { .. } => Some((Some("echo"), None, None)),
        config::App::Ping { .. } => Some((None, None, Some("ping"))),
        config::App::Default { .. } => None,
        config::App::Registration { .. } => {
            Some((Some(crate::apps::registration::TRIGGER), None, None))
        }
        config::App::Poll { name, keyword, .. } => {
            Some((Some(keyword.as_deref().unwrap_or(name)), None, None))
        }
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
        let index = Index::build(&rules);
        // Shadowing is checked among the rules that compiled; report each once.
        for (j, earlier) in shadowed(&rules, &index) {
            let (ri, rj) = (route_of_rule[earlier], route_of_rule[j]);
            errors.push((routes.index(rj), format!(
                "route {:?} can never match: route {} ({:?}, to {}) matches everything it would match first",
                rules[j].name, ri, rules[earlier].name, rules[earlier].app
            )));
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
            index: Box::new(index),
            rules,
            default_app: p.default_app.as_deref().map(Arc::from),
            taps: p.taps.iter().map(|t| Arc::from(t.as_str())).collect(),
        })
    }

    /// The compiled rules, in table order.
    pub fn rules(&self) -> &[Rule] {
        &self.rules
    }

    /// The first rule that matches, with what it extracted: the same answer
    /// as trying [`Rule::matches`] on each rule in order, found faster.
    pub fn first_match<'a>(&'a self, msg: &InboundView<'a>) -> Option<(&'a Rule, Matched<'a>)> {
        self.index.first_match(&self.rules, msg)
    }
}

#[cfg(test)]
mod tests {
    use super::super::index::{fold_word, MAX_WORD};
    use super::super::shadow::shadowed;
    use super::*;
    use crate::message::{Connection, Fields, InboundMessage};
    use regex::Regex;

    fn kw(k: &str, text: &str) -> Option<Option<String>> {
        TextRule::from_config(Some(k), None, None)
            .unwrap()
            .matches(text)
            .map(|m| m.rest.map(str::to_owned))
    }

    fn rule(
        name: &str,
        text: (Option<&str>, Option<&str>, Option<&str>),
        backend: Option<&str>,
        prefix: Option<&str>,
    ) -> Rule {
        Rule {
            name: name.into(),
            app: name.into(),
            text: TextRule::from_config(text.0, text.1, text.2).unwrap(),
            backend: backend.map(str::to_owned),
            prefix: prefix.map(str::to_owned),
        }
    }

    fn table(rules: Vec<Rule>) -> RouteTable {
        RouteTable {
            index: Box::new(Index::build(&rules)),
            rules,
            default_app: None,
            taps: Vec::new(),
        }
    }

    /// Every Unicode scalar value, in order.
    fn all_chars() -> String {
        (0..=char::MAX as u32).filter_map(char::from_u32).collect()
    }

    #[test]
    fn separators_are_the_regex_whitespace() {
        let all = all_chars();
        let by_regex: Vec<char> = Regex::new(r"\s")
            .unwrap()
            .find_iter(&all)
            .flat_map(|m| m.as_str().chars())
            .collect();
        let by_std: Vec<char> = all.chars().filter(|c| c.is_whitespace()).collect();
        assert_eq!(by_regex, by_std);
    }

    #[test]
    fn ascii_case_folding() {
        // The only non-ASCII characters a case-insensitive ASCII word can
        // match are the two fold_word maps.
        let all = all_chars();
        let folded: Vec<char> = Regex::new(r"(?i)[0-9a-z_\-]")
            .unwrap()
            .find_iter(&all)
            .flat_map(|m| m.as_str().chars())
            .filter(|c| !c.is_ascii())
            .collect();
        assert_eq!(folded, ['\u{17F}', '\u{212A}']);
        assert!(Regex::new("(?i)^s$").unwrap().is_match("\u{17F}"));
        assert!(Regex::new("(?i)^k$").unwrap().is_match("\u{212A}"));
        let mut buf = [0; MAX_WORD];
        assert_eq!(fold_word("\u{212A}ey", &mut buf), Some(&b"key"[..]));
        assert_eq!(fold_word("Reg-\u{17F}_1", &mut buf), Some(&b"reg-s_1"[..]));
        assert_eq!(fold_word("café", &mut buf), None);
        assert_eq!(fold_word(&"a".repeat(MAX_WORD + 1), &mut buf), None);
    }

    /// A table with every kind of rule and condition, to compare the index
    /// with trying each rule in order.
    fn mixed_rules() -> Vec<Rule> {
        let kw = |k| (Some(k), None, None);
        let pat = |p| (None, Some(p), None);
        vec![
            rule("join-256", kw("join"), None, Some("+256")),
            rule("reg", kw("register|reg|join"), None, None),
            rule("reg-again", kw("REG | Sign_Up | e-mail"), None, None),
            rule("kelvin", kw("kilo|ok"), Some("other"), None),
            rule("ping", (None, None, Some("ping")), None, None),
            rule("price", pat(r"price\s+(?P<item>\w+)"), None, None),
            rule("ski-other", pat("ski"), Some("other"), None),
            rule("ski", pat(r"(sk)i\s*(?P<n>\d+)?"), None, None),
            rule("kat", pat("k[aä]t"), None, None),
            rule("café", kw("café|ñu"), None, None),
            rule("r3g", kw(r"r[e3]g\d*"), None, None),
            rule("hello-world", kw(r"hello\s+world"), None, None),
            rule("empty-alt", kw("ask|"), None, None),
            rule("code", pat(r"(\d{4})[\s:]+(?P<word>\w+)?"), None, None),
            rule("other-backend", (None, None, None), Some("other"), None),
            rule("kilo", kw("kilo|ok|sos"), None, Some("+1")),
            rule("sms", kw("s|sms|123"), None, None),
            rule("pattern-alt", pat("stop|unsubscribe"), None, None),
            rule("echo", kw("echo"), None, None),
            rule("ok-go", pat("(?-i)Ok go"), None, None),
            rule("twelve", pat(r"12:\d"), None, Some("+1")),
            rule("sms-colon", pat(r"s\w*:(\d+)"), None, None),
            rule("catch-all-256", (None, None, None), None, Some("+256")),
        ]
    }

    fn texts() -> Vec<String> {
        let words = [
            "join",
            "JOIN",
            "Join",
            "register",
            "reg",
            "REG",
            "sign_up",
            "e-mail",
            "kilo",
            "\u{212A}ILO",
            "o\u{212A}",
            "ok",
            "\u{17F}ms",
            "sms",
            "s",
            "123",
            "café",
            "CAFÉ",
            "ñu",
            "Ñu",
            "r3g",
            "reg42",
            "rEg",
            "hello",
            "ping",
            "PING",
            "price",
            "stop",
            "unsubscribe",
            "stopping",
            "echo",
            "ECHO",
            "echoes",
            "ask",
            "1234",
            "",
            "joiner",
            "registration",
            "xjoin",
            "sign",
            "mail",
            "élan",
            "😀",
            "ski",
            "S\u{212A}I",
            "skiing",
            "kät",
            "\u{212A}AT",
            "kat",
            "Ok go",
            "ok go",
            "12:5",
            "sms:4",
            "\u{17F}:4",
        ];
        let tails = [
            "",
            " ",
            "  ",
            ",",
            " ,;: ",
            " hi",
            "  Hi there ",
            ",;:x",
            ":1",
            "\nline two",
            "\u{A0}nbsp",
            "\u{3000}wide",
            " world",
            "\tworld",
            " rice please",
            "-x",
            "!",
        ];
        let leads = ["", " ", "\t\n ", "\u{2003}", ","];
        let mut texts = Vec::new();
        for lead in leads {
            for w in words {
                for tail in tails {
                    texts.push(format!("{lead}{w}{tail}"));
                }
            }
        }
        texts
    }

    #[test]
    fn index_agrees_with_trying_each_rule_in_order() {
        let t = table(mixed_rules());
        // Every kind of candidate is in use.
        assert!(!t.index.by_word.is_empty());
        let by_prefix: Vec<usize> = t.index.by_prefix.iter().map(|w| w.len()).collect();
        assert_eq!(by_prefix, [2, 2, 2, 0]);
        assert_eq!(t.index.set_rules.len(), 6);
        assert_eq!(t.index.direct.len(), 3);
        let connections = [
            Connection::new("tester", "+256772123456"),
            Connection::new("tester", "+15551234"),
            Connection::new("other", "+256772123456"),
            Connection::new("other", "+4477"),
        ];
        let (mut matched, mut missed) = (0, 0);
        for text in texts() {
            for c in &connections {
                let msg = InboundMessage::new(c.clone(), text.as_str());
                let fast = t.first_match(&msg.view()).map(|(r, m)| (r.name.clone(), m));
                let slow = t
                    .rules()
                    .iter()
                    .find_map(|r| r.matches(&msg.view()).map(|m| (r.name.clone(), m)));
                assert_eq!(fast, slow, "{text:?} from {c}");
                if fast.is_some() {
                    matched += 1;
                } else {
                    missed += 1;
                }
            }
        }
        // The inputs reach matches and misses alike.
        assert!(matched > 1000 && missed > 100, "{matched} {missed}");
    }

    #[test]
    fn index_keeps_first_match_order_and_captures() {
        let t = table(mixed_rules());
        let at = |identity: &str, text: &str| {
            let msg = InboundMessage::new(Connection::new("tester", identity), text);
            t.first_match(&msg.view()).map(|(r, m)| {
                (
                    r.name.to_string(),
                    m.rest.map(str::to_owned),
                    m.captures.to_fields(),
                )
            })
        };
        let none = Fields::new;
        assert_eq!(
            at("+256772", " JOIN, Ada"),
            Some(("join-256".into(), Some("Ada".into()), none()))
        );
        assert_eq!(
            at("+1555", " JOIN, Ada"),
            Some(("reg".into(), Some("Ada".into()), none()))
        );
        assert_eq!(
            at("+1555", "\u{212A}ilo"),
            Some(("kilo".into(), None, none()))
        );
        assert_eq!(at("+4477", "kilo 5"), None);
        let price = at("+1555", "Price rice please").unwrap();
        assert_eq!(
            (price.0.as_str(), price.2["item"].as_str()),
            ("price", "rice")
        );
        let code = at("+1555", "1234: go").unwrap();
        assert_eq!(
            (
                code.0.as_str(),
                code.2["1"].as_str(),
                code.2["word"].as_str()
            ),
            ("code", "1234", "go")
        );
        assert_eq!(
            at("+256", "anything"),
            Some(("catch-all-256".into(), None, none()))
        );
    }

    /// Each rule an earlier one shadows, found by trying every earlier rule.
    fn shadowed_by_trying_all(rules: &[Rule]) -> Vec<(usize, usize)> {
        (0..rules.len())
            .filter_map(|j| {
                let earlier = rules[..j].iter().position(|r| r.shadows(&rules[j]))?;
                Some((j, earlier))
            })
            .collect()
    }

    #[test]
    fn shadowed_agrees_with_trying_every_earlier_rule() {
        let kw = |k| (Some(k), None, None);
        let pat = |p| (None, Some(p), None);
        let exact = |x| (None, None, Some(x));
        let any = (None, None, None);
        let mut rules = mixed_rules();
        rules.extend([
            rule("ping-again", exact("ping"), None, None),
            rule("PING", exact("PING"), None, None),
            rule("join-now", exact("join now"), None, Some("+2567")),
            rule("JOIN", kw("JOIN"), None, None),
            rule("signup-reg", kw("sign_up|reg"), None, None),
            rule("joiner", kw("joiner"), None, None),
            rule("price-again", pat(r"price\s+(?P<item>\w+)"), None, None),
            rule("other-44", any, Some("other"), Some("+44")),
            rule("r3g42", kw("r3g42"), None, None),
            rule("hello-world-exact", exact("hello world"), None, None),
            rule("ü", any, Some("x"), Some("+ü")),
            rule("üz", any, Some("x"), Some("+üz")),
            rule("üz-kw", kw("kilo"), Some("x"), Some("+üz9")),
            rule("wider", any, None, Some("+3")),
            rule("narrower", kw("narrow"), Some("y"), Some("+31")),
            rule("catch-all", any, None, None),
            rule("after-all", kw("late"), None, None),
        ]);
        let expected = shadowed_by_trying_all(&rules);
        let names: Vec<(&str, &str)> = expected
            .iter()
            .map(|&(j, i)| (&*rules[j].name, &*rules[i].name))
            .collect();
        // Every kind of shadowing is among them.
        for pair in [
            ("ping-again", "ping"),
            ("join-now", "join-256"),
            ("JOIN", "reg"),
            ("signup-reg", "reg-again"),
            ("price-again", "price"),
            ("other-44", "other-backend"),
            ("r3g42", "r3g"),
            ("hello-world-exact", "hello-world"),
            ("üz", "ü"),
            ("narrower", "wider"),
            ("after-all", "catch-all"),
        ] {
            assert!(names.contains(&pair), "{pair:?} not in {names:?}");
        }
        assert!(!names
            .iter()
            .any(|(later, _)| ["PING", "joiner", "ü"].contains(later)));
        assert_eq!(shadowed(&rules, &Index::build(&rules)), expected);
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
        assert_eq!(m.captures.get("item"), Some("rice"));
        assert_eq!(m.captures.get("1"), Some("rice"));
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
