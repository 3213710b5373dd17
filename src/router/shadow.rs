//! Routes that can never match: each rule an earlier one shadows, found
//! without trying every earlier rule (the route table reports them as errors).

use super::index::Index;
use super::rule::Rule;
use crate::sms::keyword::{literal_alternatives, TextRule};

/// Each rule that an earlier one shadows ([`Rule::shadows`]), with the first
/// such earlier rule: `(later, earlier)` positions, in table order.
///
/// The same answers as trying every earlier rule, without doing so (that is
/// quadratic: 20,000 routes took minutes). Only rules that can shadow are
/// tried, found by what shadowing needs: a catch-all by its backend and
/// prefix, an equal exact text, keyword or pattern source, or a regex that
/// matches the later rule's text or first keyword word ([`Index`]).
pub(super) fn shadowed(rules: &[Rule], index: &Index) -> Vec<(usize, usize)> {
    use std::collections::HashMap;
    // Catch-alls by (backend, prefix): the first of each is the one to beat.
    let mut any: HashMap<(Option<&str>, Option<&str>), usize> = HashMap::new();
    // Exact texts, keywords (ASCII case folded) and patterns by their source.
    let mut exact: HashMap<&str, Vec<usize>> = HashMap::new();
    let mut keyword: HashMap<String, Vec<usize>> = HashMap::new();
    let mut pattern: HashMap<&str, Vec<usize>> = HashMap::new();
    for (i, r) in rules.iter().enumerate() {
        match &r.text {
            TextRule::Any => {
                any.entry((r.backend.as_deref(), r.prefix.as_deref()))
                    .or_insert(i);
            }
            TextRule::Exact(x) => exact.entry(x).or_default().push(i),
            TextRule::Keyword { source, .. } => keyword
                .entry(source.to_ascii_lowercase())
                .or_default()
                .push(i),
            TextRule::Pattern { source, .. } => pattern.entry(source).or_default().push(i),
        }
    }
    let mut found = Vec::new();
    let mut candidates = Vec::new();
    for (j, later) in rules.iter().enumerate() {
        candidates.clear();
        // A catch-all shadows when its backend is none or the same, and its
        // prefix none or a prefix of the later rule's.
        let mut backends = vec![None];
        backends.extend(later.backend.as_deref().map(Some));
        let mut prefixes = vec![None];
        if let Some(p) = later.prefix.as_deref() {
            prefixes.push(Some(""));
            prefixes.extend(p.char_indices().map(|(k, c)| Some(&p[..k + c.len_utf8()])));
        }
        for p in prefixes {
            for b in &backends {
                candidates.extend(any.get(&(*b, p)).copied());
            }
        }
        match &later.text {
            TextRule::Any => {}
            TextRule::Exact(x) => {
                candidates.extend(exact.get(x.as_str()).into_iter().flatten());
                index.regex_candidates(x, &mut candidates);
            }
            TextRule::Keyword { source, .. } => {
                candidates.extend(
                    keyword
                        .get(&source.to_ascii_lowercase())
                        .into_iter()
                        .flatten(),
                );
                // An earlier keyword must match every word; those that
                // match the first are enough to try.
                if let Some(first) = literal_alternatives(source).and_then(|w| w.first().copied()) {
                    index.regex_candidates(first, &mut candidates);
                }
            }
            TextRule::Pattern { source, .. } => {
                candidates.extend(pattern.get(source.as_str()).into_iter().flatten());
            }
        }
        candidates.retain(|&i| i < j);
        candidates.sort_unstable();
        candidates.dedup();
        if let Some(&earlier) = candidates.iter().find(|&&i| rules[i].shadows(later)) {
            found.push((j, earlier));
        }
    }
    found
}
