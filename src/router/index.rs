//! The route table's index: which rules can match a text, found without
//! running every rule's regex (see [`super::routes`]).

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};

use regex::{RegexSet, RegexSetBuilder};
use regex_syntax::hir::{Class, Hir, HirKind, Look};

use super::rule::Rule;
use crate::message::InboundView;
use crate::sms::keyword::{literal_alternatives, Captures, Matched, TextRule};

/// Whether `c` ends a keyword: `[\s,;:]` in [`keyword_regex`] (Rust's
/// `char::is_whitespace` is Unicode `White_Space`, as the regex's `\s`).
fn is_separator(c: char) -> bool {
    c.is_whitespace() || matches!(c, ',' | ';' | ':')
}

/// The text's first word as [`keyword_regex`] sees it (leading whitespace
/// skipped, up to a separator or the end), and what follows it.
fn first_word(text: &str) -> (&str, &str) {
    let text = text.trim_start_matches(char::is_whitespace);
    let end = text.find(is_separator).unwrap_or(text.len());
    text.split_at(end)
}

/// A keyword's `rest`: what follows the separators after the keyword.
fn rest_after(after: &str) -> Option<&str> {
    let rest = after.trim_start_matches(is_separator);
    (!rest.is_empty()).then_some(rest)
}

/// Longest keyword word the [`Index`] holds, in bytes (longer ones go through
/// its regex set): a lookup folds the text's first word into a buffer this big.
pub(super) const MAX_WORD: usize = 64;

/// `word` folded as a key of [`Index::by_word`]: what every text word that a
/// case-insensitive regex for an ASCII `word` matches folds to as well.
///
/// Under the regex crate's Unicode simple case folding an ASCII letter or
/// digit matches only itself, its other ASCII case, and for `k` and `s` the
/// KELVIN SIGN and LATIN SMALL LETTER LONG S (`tests::ascii_case_folding`
/// checks this against the regex crate). A word with any other non-ASCII
/// character can only match a non-ASCII keyword, which is not indexed.
pub(super) fn fold_word<'b>(word: &str, buf: &'b mut [u8; MAX_WORD]) -> Option<&'b [u8]> {
    let mut n = 0;
    for c in word.chars() {
        *buf.get_mut(n)? = fold_char(c)?;
        n += 1;
    }
    Some(&buf[..n])
}

/// Fold one character as [`fold_word`] does: the byte every character that a
/// case-insensitive ASCII letter, digit or sign matches folds to.
fn fold_char(c: char) -> Option<u8> {
    match c {
        '\u{212A}' => Some(b'k'),
        '\u{17F}' => Some(b's'),
        c if c.is_ascii() => Some((c as u8).to_ascii_lowercase()),
        _ => None,
    }
}

/// Longest literal prefix a pattern is indexed by, in bytes.
const MAX_PREFIX: usize = 16;

/// The literal start of a compiled pattern, folded ([`fold_char`]), at most
/// [`MAX_PREFIX`] bytes: every text the regex matches starts with characters
/// that fold to these bytes. Empty when the pattern does not start with a
/// literal (`\s*`, an alternation, a class such as `[aä]`).
fn pattern_prefix(regex: &str) -> Vec<u8> {
    let mut prefix = Vec::new();
    if let Ok(hir) = regex_syntax::Parser::new().parse(regex) {
        literal_start(&hir, &mut prefix);
    }
    prefix.truncate(MAX_PREFIX);
    prefix
}

/// Push the folded bytes that `hir` starts with; whether all of `hir` was
/// such bytes (so that what follows it may extend the prefix).
fn literal_start(hir: &Hir, out: &mut Vec<u8>) -> bool {
    match hir.kind() {
        HirKind::Look(Look::Start) => out.is_empty(),
        HirKind::Literal(lit) => {
            for &b in lit.0.iter() {
                if !b.is_ascii() {
                    return false;
                }
                out.push(b.to_ascii_lowercase());
            }
            true
        }
        HirKind::Class(class) => match class_fold(class) {
            Some(b) => {
                out.push(b);
                true
            }
            None => false,
        },
        HirKind::Capture(cap) => literal_start(&cap.sub, out),
        HirKind::Concat(items) => items.iter().all(|item| literal_start(item, out)),
        _ => false,
    }
}

/// The byte every character of `class` folds to, if they all fold to one
/// (`[Kk\u{212A}]` is `k`; `[aä]`, `\d` are not one).
fn class_fold(class: &Class) -> Option<u8> {
    let mut chars: Vec<char> = Vec::new();
    match class {
        Class::Unicode(c) => {
            for r in c.ranges() {
                chars.extend((r.start()..=r.end()).take(4));
            }
        }
        Class::Bytes(c) => {
            for r in c.ranges() {
                chars.extend((r.start()..=r.end()).take(4).map(char::from));
            }
        }
    }
    let first = fold_char(*chars.first()?)?;
    (chars.len() <= 3 && chars.iter().all(|&c| fold_char(c) == Some(first))).then_some(first)
}

/// FNV-1a, for [`Index::by_word`]: its keys are a few hundred short words
/// from the pipeline file, where SipHash's resistance to chosen keys buys
/// nothing (texts only look words up) and costs more than the rest of a lookup.
pub(super) struct Fnv(u64);

impl Default for Fnv {
    fn default() -> Self {
        Fnv(0xcbf2_9ce4_8422_2325)
    }
}

impl Hasher for Fnv {
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0 ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3);
        }
    }

    fn finish(&self) -> u64 {
        self.0
    }
}

pub(super) type Words = HashMap<Box<[u8]>, Vec<usize>, BuildHasherDefault<Fnv>>;

/// Pattern rules by the first bytes of their literal start: each with its
/// position and its whole literal start ([`pattern_prefix`]).
pub(super) type Prefixes = HashMap<Box<[u8]>, Vec<(usize, Box<[u8]>)>, BuildHasherDefault<Fnv>>;

/// The first characters of a text (at most [`MAX_PREFIX`]), folded
/// ([`fold_char`]) up to the first that does not fold.
struct FoldedStart {
    buf: [u8; MAX_PREFIX],
    len: usize,
}

impl FoldedStart {
    fn new(text: &str, chars: usize) -> FoldedStart {
        let mut buf = [0; MAX_PREFIX];
        let mut len = 0;
        for c in text.chars().take(chars.min(MAX_PREFIX)) {
            let Some(b) = fold_char(c) else { break };
            buf[len] = b;
            len += 1;
        }
        FoldedStart { buf, len }
    }

    fn bytes(&self) -> &[u8] {
        &self.buf[..self.len]
    }
}

/// Which rules can match a text, found without running each rule's regex.
///
/// Rules fall in four kinds: keywords that are plain ASCII words (most
/// keywords: `join|reg|register`), looked up by the text's first word;
/// patterns that start with a literal (`price\s+(\w+)`), looked up by the
/// text's first characters and then run; any other regex (other patterns and
/// keywords), all decided by one [`RegexSet`] pass over the text; and the
/// rest (any text, exact text), checked as they are. Each kind gives its
/// candidates in table order; the first candidate whose conditions hold
/// wins, as when every rule is tried in turn.
#[derive(Debug, Clone)]
pub(super) struct Index {
    /// Positions of the plain-word keyword rules, ascending, by each of their
    /// words folded ([`fold_word`]).
    pub(super) by_word: Words,
    /// The patterns with a literal start ([`pattern_prefix`]), ascending, by
    /// that start cut to 1, 2, 4 or 8 bytes: the keys of `by_prefix[k]` are
    /// `1 << k` bytes long.
    pub(super) by_prefix: [Prefixes; 4],
    /// The position of the first rule in `by_prefix`.
    prefix_first: usize,
    /// The longest literal start in `by_prefix`: how much of a text to fold.
    prefix_longest: usize,
    /// The position of the rule whose regex is pattern `i` of `set`; ascending.
    pub(super) set_rules: Vec<usize>,
    /// The regexes of those rules, the same expressions, so that the set
    /// matching pattern `i` means that rule's regex matches.
    set: RegexSet,
    /// Positions of the other rules, ascending.
    pub(super) direct: Vec<usize>,
    /// The regex rules among `direct`: all of them, when the set could not be built.
    unindexed: Vec<usize>,
}

impl Index {
    pub(super) fn build(rules: &[Rule]) -> Index {
        let mut by_word = Words::default();
        let mut by_prefix: [Prefixes; 4] = Default::default();
        let mut prefix_first = usize::MAX;
        let mut prefix_longest = 0;
        let mut set_rules = Vec::new();
        let mut set_regexes = Vec::new();
        let mut direct = Vec::new();
        let mut buf = [0; MAX_WORD];
        for (i, rule) in rules.iter().enumerate() {
            let regex = match &rule.text {
                TextRule::Keyword { source, regex } => {
                    let words = literal_alternatives(source)
                        .filter(|ws| ws.iter().all(|w| w.is_ascii() && w.len() <= MAX_WORD));
                    if let Some(words) = words {
                        for w in words {
                            // Short ASCII words always fold.
                            let Some(key) = fold_word(w, &mut buf) else {
                                continue;
                            };
                            let at = by_word.entry(key.into()).or_default();
                            if at.last() != Some(&i) {
                                at.push(i);
                            }
                        }
                        continue;
                    }
                    regex.get().as_str()
                }
                TextRule::Pattern { regex, .. } => {
                    let prefix = pattern_prefix(regex.as_str());
                    if let Some(k) = (0..4).rev().find(|k| prefix.len() >= 1 << k) {
                        let key = &prefix[..1 << k];
                        prefix_first = prefix_first.min(i);
                        prefix_longest = prefix_longest.max(prefix.len());
                        let at = by_prefix[k].entry(key.into()).or_default();
                        at.push((i, prefix.into()));
                        continue;
                    }
                    regex.as_str()
                }
                TextRule::Any | TextRule::Exact(_) => {
                    direct.push(i);
                    continue;
                }
            };
            set_rules.push(i);
            set_regexes.push(regex);
        }
        // Each regex alone was held to the regex crate's default limits (10 MiB
        // compiled, a 2 MiB lazy DFA cache); the set holds them all. Below
        // about 64 KiB of cache per regex (Unicode classes such as `\w` take
        // that much) the set would give up its DFA for a 30 times slower
        // engine, so the cache may grow to 256 KiB per regex.
        let n = set_rules.len();
        let set = RegexSetBuilder::new(set_regexes)
            .size_limit((10usize << 20).saturating_mul(n.max(1)))
            .dfa_size_limit((256usize << 10).saturating_mul(n.max(8)))
            .build();
        let mut unindexed = Vec::new();
        let set = match set {
            Ok(set) => set,
            Err(_) => {
                // Not seen within those limits; if it happened, checking
                // those rules one by one is still right, only slower.
                unindexed.clone_from(&set_rules);
                direct.append(&mut set_rules);
                direct.sort_unstable();
                RegexSet::empty()
            }
        };
        Index {
            by_word,
            by_prefix,
            prefix_first,
            prefix_longest,
            set_rules,
            set,
            direct,
            unindexed,
        }
    }

    /// Push the keyword and pattern rules whose regex may match `text`, its
    /// other conditions aside: a superset, in no particular order (rules
    /// with any or exact text are not among them).
    pub(super) fn regex_candidates(&self, text: &str, out: &mut Vec<usize>) {
        let (word, _) = first_word(text);
        let mut buf = [0; MAX_WORD];
        if let Some(at) = fold_word(word, &mut buf).and_then(|key| self.by_word.get(key)) {
            out.extend_from_slice(at);
        }
        out.extend(self.prefix_candidates(&FoldedStart::new(text, self.prefix_longest)));
        out.extend(self.set.matches(text).iter().map(|k| self.set_rules[k]));
        out.extend_from_slice(&self.unindexed);
    }

    /// The first of `rules` (those this index was built from) that `msg`
    /// matches: the same answer as trying each rule in order.
    pub(super) fn first_match<'r>(
        &self,
        rules: &'r [Rule],
        msg: &InboundView<'r>,
    ) -> Option<(&'r Rule, Matched<'r>)> {
        let text = msg.text;
        let (word, after) = first_word(text);
        let mut buf = [0; MAX_WORD];
        let by_word = fold_word(word, &mut buf)
            .and_then(|key| self.by_word.get(key))
            .map_or(&[][..], Vec::as_slice);
        // The earliest of the word and direct candidates that matches...
        let mut words = by_word
            .iter()
            .filter(|&&i| rules[i].conditions_hold(msg))
            .map(|&i| {
                let rest = rest_after(after);
                (
                    i,
                    Matched {
                        rest,
                        captures: Captures::default(),
                    },
                )
            });
        let mut best = words.next();
        for &i in &self.direct {
            if best.as_ref().is_some_and(|(b, _)| *b < i) {
                break;
            }
            if let Some(m) = rules[i].matches(msg) {
                best = Some((i, m));
                break;
            }
        }
        // ...unless a regex rule before it matches: patterns starting as the
        // text does are run...
        let mut before = best.as_ref().map_or(usize::MAX, |(b, _)| *b);
        if self.prefix_first < before {
            let start = FoldedStart::new(text, self.prefix_longest);
            for i in self.prefix_candidates(&start) {
                if i < before {
                    if let Some(m) = rules[i].matches(msg) {
                        (before, best) = (i, Some((i, m)));
                    }
                }
            }
        }
        // ...and the set only when one of its rules comes earlier still.
        if self.set_rules.first().is_some_and(|&first| first < before) {
            for k in self.set.matches(text).iter() {
                let i = self.set_rules[k];
                if i > before {
                    break;
                }
                if let Some(m) = rules[i].matches(msg) {
                    best = Some((i, m));
                    break;
                }
            }
        }
        best.map(|(i, m)| (&rules[i], m))
    }

    /// The pattern rules whose literal start the text's start folds to, in
    /// no particular order.
    fn prefix_candidates<'a>(&'a self, start: &'a FoldedStart) -> impl Iterator<Item = usize> + 'a {
        let text = start.bytes();
        self.by_prefix
            .iter()
            .enumerate()
            .filter(move |(k, at)| 1 << k <= text.len() && !at.is_empty())
            .filter_map(move |(k, at)| at.get(&text[..1 << k]))
            .flatten()
            .filter(move |(_, prefix)| text.starts_with(prefix))
            .map(|&(i, _)| i)
    }
}
