//! A pattern rule's regex (RapidSMS's PatternHandler), with a faster twin
//! for texts that are all ASCII, as most SMS are.
//!
//! Unicode classes make big automata: `\w` alone is hundreds of states, and
//! extracting the groups of a match walks them. On an ASCII text a class can
//! only match its ASCII members, and a Unicode word boundary is an ASCII
//! one, so the same regex with every class cut to ASCII matches exactly
//! where the Unicode regex does, with the same groups. It finds the groups
//! in about half the time (`cargo bench --bench micro -- router/pattern`).

use std::collections::BTreeMap;

use regex::Regex;
use regex_automata::{meta, Input};
use regex_syntax::hir::{Capture, Class, ClassUnicode, ClassUnicodeRange, Hir, HirKind, Look};
use smallvec::SmallVec;

/// A compiled pattern: case-insensitive, anchored at the start only.
#[derive(Debug, Clone)]
pub struct PatternRegex {
    regex: Regex,
    /// `regex` with its classes cut to ASCII, for ASCII texts; `None` if it
    /// could not be built (then every text goes through `regex`).
    ascii: Option<meta::Regex>,
    /// Each group's keys and number, sorted by key: its number (`"1"`,
    /// ...) and, if it has one, its name.
    keys: Vec<(Box<str>, usize)>,
}

/// The groups a pattern matched, borrowed from the text: (key, value)
/// pairs sorted by key, each group by its number (`"1"`, ...) and, if it
/// has one, by its name: the order of the routed record's `captures` map,
/// which the router writes from these pairs without making that map.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Captures<'a>(SmallVec<[(&'a str, &'a str); 4]>);

impl<'a> Captures<'a> {
    /// The value of group `key` (a number or a name), if it took part.
    pub fn get(&self, key: &str) -> Option<&'a str> {
        self.0.iter().find(|(k, _)| *k == key).map(|&(_, v)| v)
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// How many (key, value) pairs.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// The pairs, sorted by key.
    pub fn iter(&self) -> impl Iterator<Item = (&'a str, &'a str)> + '_ {
        self.0.iter().copied()
    }

    /// The map itself (a routed message's `captures`).
    pub fn to_fields(&self) -> BTreeMap<String, String> {
        self.iter()
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect()
    }
}

impl<'a> FromIterator<(&'a str, &'a str)> for Captures<'a> {
    /// Sorted by key; of repeated keys the last stays, as in a map.
    fn from_iter<I: IntoIterator<Item = (&'a str, &'a str)>>(pairs: I) -> Self {
        let mut pairs: SmallVec<[(&str, &str); 4]> = pairs.into_iter().collect();
        pairs.reverse();
        pairs.sort_by_key(|&(k, _)| k);
        pairs.dedup_by_key(|&mut (k, _)| k);
        Captures(pairs)
    }
}

impl PatternRegex {
    pub fn new(pattern: &str) -> Result<PatternRegex, regex::Error> {
        let source = format!("(?i)^(?:{pattern})");
        let regex = Regex::new(&source)?;
        let ascii = regex_syntax::Parser::new()
            .parse(&source)
            .ok()
            .and_then(|hir| {
                meta::Regex::builder()
                    .build_from_hir(&ascii_only(&hir))
                    .ok()
            });
        let mut keys: Vec<(Box<str>, usize)> = Vec::new();
        for (i, name) in regex.capture_names().enumerate().skip(1) {
            keys.push((i.to_string().into(), i));
            keys.extend(name.map(|name| (name.into(), i)));
        }
        keys.sort();
        Ok(PatternRegex { regex, ascii, keys })
    }

    /// The regex as compiled, with its flags and anchor.
    pub fn as_str(&self) -> &str {
        self.regex.as_str()
    }

    pub fn is_match(&self, text: &str) -> bool {
        match &self.ascii {
            Some(ascii) if text.is_ascii() => ascii.is_match(text),
            _ => self.regex.is_match(text),
        }
    }

    /// The groups of the match, if `text` matches.
    pub fn captures<'a>(&'a self, text: &'a str) -> Option<Captures<'a>> {
        let pairs = |span: &dyn Fn(usize) -> Option<&'a str>| {
            let mut pairs = SmallVec::new();
            for (key, group) in &self.keys {
                if let Some(value) = span(*group) {
                    pairs.push((&**key, value));
                }
            }
            Captures(pairs)
        };
        match &self.ascii {
            Some(ascii) if text.is_ascii() => {
                // The groups' offsets, on the stack unless there are many.
                let mut stack = [None; 32];
                let mut heap;
                let n = ascii.group_info().slot_len();
                let slots = if n <= stack.len() {
                    &mut stack[..n]
                } else {
                    heap = vec![None; n];
                    &mut heap[..]
                };
                ascii.search_slots(&Input::new(text), slots)?;
                let slots = &*slots;
                Some(pairs(&|g| match slots.get(2 * g..2 * g + 2) {
                    Some(&[Some(start), Some(end)]) => text.get(start.get()..end.get()),
                    _ => None,
                }))
            }
            _ => {
                let caps = self.regex.captures(text)?;
                Some(pairs(&|g| caps.get(g).map(|m| m.as_str())))
            }
        }
    }

    /// The names a template may use: each group's name, and every number.
    pub fn capture_names(&self) -> Vec<String> {
        let mut names: Vec<String> = self
            .regex
            .capture_names()
            .flatten()
            .map(str::to_owned)
            .collect();
        names.extend((1..self.regex.captures_len()).map(|i| i.to_string()));
        names
    }
}

/// `hir` for ASCII texts: every class cut to its ASCII members (an empty one
/// can never match), every Unicode word boundary an ASCII one.
fn ascii_only(hir: &Hir) -> Hir {
    match hir.kind() {
        HirKind::Empty => Hir::empty(),
        HirKind::Literal(lit) => Hir::literal(lit.0.clone()),
        HirKind::Class(Class::Unicode(class)) => {
            let mut class = class.clone();
            class.intersect(&ClassUnicode::new([ClassUnicodeRange::new('\0', '\x7F')]));
            Hir::class(Class::Unicode(class))
        }
        HirKind::Class(Class::Bytes(class)) => Hir::class(Class::Bytes(class.clone())),
        HirKind::Look(look) => Hir::look(ascii_look(*look)),
        HirKind::Repetition(rep) => {
            let mut rep = rep.clone();
            rep.sub = Box::new(ascii_only(&rep.sub));
            Hir::repetition(rep)
        }
        HirKind::Capture(cap) => Hir::capture(Capture {
            index: cap.index,
            name: cap.name.clone(),
            sub: Box::new(ascii_only(&cap.sub)),
        }),
        HirKind::Concat(items) => Hir::concat(items.iter().map(ascii_only).collect()),
        HirKind::Alternation(items) => Hir::alternation(items.iter().map(ascii_only).collect()),
    }
}

fn ascii_look(look: Look) -> Look {
    match look {
        Look::WordUnicode => Look::WordAscii,
        Look::WordUnicodeNegate => Look::WordAsciiNegate,
        Look::WordStartUnicode => Look::WordStartAscii,
        Look::WordEndUnicode => Look::WordEndAscii,
        Look::WordStartHalfUnicode => Look::WordStartHalfAscii,
        Look::WordEndHalfUnicode => Look::WordEndHalfAscii,
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The ASCII twin agrees with the Unicode regex on every ASCII text,
    /// groups included; other texts go to the Unicode regex.
    #[test]
    fn ascii_twin_agrees_with_the_unicode_regex() {
        let patterns = [
            r"price\s+(?P<item>\w+)(?:\s+(?P<qty>\d+))?\s*$",
            r"(\d{4})[\s:]+(?P<word>\w+)?",
            r"(sk)i\b(.*)",
            r"\bok\B(\w*)",
            r"[^a-z ]+(\S+)",
            r"(\p{L}+)\s(\p{Greek}*)(\W)",
            r"k[aä]t|kelvin|(?-u:\w+)(x)?",
            r"(?-i)Ok (go|GO)",
            r"(é+)?clair",
            r"(?s)a.(.)",
            r"\d+\.\d*|(?P<neg>-)?\d",
            r"[[:alpha:]]+(?P<rest>.*)",
            r"(?x) s (?:ms)? \s* : \s* (\d+)",
        ];
        let texts = [
            "price rice 3",
            "PRICE  beans",
            "price rice 3 4",
            "1234: go",
            "1234:",
            "ski",
            "SKI slope",
            "skiing",
            "okay",
            "ok",
            "OK_x",
            "!!x hello",
            "ABC def",
            "alpha beta!",
            "kat",
            "KELVIN",
            "abc_x",
            "Ok go",
            "Ok GO",
            "ok go",
            "clair",
            "eclair",
            "a\nb",
            "aXb",
            "3.14",
            "-7",
            "sms : 42",
            "s:1",
            "",
            " ",
            "\t\r\x0b\x0c\n",
            "Σ ok",
            "kät",
            "\u{212A}at",
            "éclair",
        ];
        let mut ascii_texts = 0;
        for p in patterns {
            let re = PatternRegex::new(p).unwrap();
            assert!(re.ascii.is_some(), "{p}: no ASCII twin");
            for t in texts {
                let caps = re.regex.captures(t).map(|c| {
                    let mut m = BTreeMap::new();
                    for (i, name) in re.regex.capture_names().enumerate().skip(1) {
                        if let Some(g) = c.get(i) {
                            m.insert(i.to_string(), g.as_str().to_owned());
                            if let Some(name) = name {
                                m.insert(name.to_owned(), g.as_str().to_owned());
                            }
                        }
                    }
                    m
                });
                assert_eq!(re.captures(t).map(|c| c.to_fields()), caps, "{p} on {t:?}");
                assert_eq!(re.is_match(t), caps.is_some(), "{p} on {t:?}");
                ascii_texts += usize::from(t.is_ascii());
            }
        }
        assert!(ascii_texts > 300);
    }

    #[test]
    fn numbered_and_named_groups_are_captured() {
        let re = PatternRegex::new(r"price\s+(?P<item>\w+)\s*(\d+)?").unwrap();
        let caps = re.captures("Price rice 25").unwrap();
        let pairs: Vec<(&str, &str)> = caps.iter().collect();
        assert_eq!(pairs, [("1", "rice"), ("2", "25"), ("item", "rice")]);
        assert_eq!(
            caps.to_fields(),
            BTreeMap::from_iter(pairs.iter().map(|&(k, v)| (k.to_owned(), v.to_owned())))
        );
        assert_eq!(re.captures("pricey"), None);
        assert_eq!(re.capture_names(), ["item", "1", "2"]);
    }
}
