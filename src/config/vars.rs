//! The `${VAR}` references of a pipeline text: which environment variables
//! it needs, without their values (what `smsflow k8s render` turns into
//! `secretKeyRef`s). The syntax is interpolation's ([`Node::interpolate`]):
//! `${NAME}`, `${NAME:-default}`, `$$` a literal `$`, in string values only.

use std::collections::BTreeMap;

use super::error::ConfigError;
use super::node::{Kind, Node, Path};

/// A variable the pipeline references.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Var {
    pub name: String,
    /// Some reference to it has no default: the pipeline does not load
    /// without it.
    pub required: bool,
    /// Some reference to it is the value of a secret key (`auth_token`,
    /// `tokens`, `password`, ...): a default there only lets the file
    /// validate, and must not be what runs.
    pub secret: bool,
}

/// Every variable `text` references, sorted by name, each once. A text that
/// is not YAML is an error (with its position); a malformed `${...}` is
/// skipped here, as loading the pipeline reports it.
pub fn referenced(text: &str) -> Result<Vec<Var>, ConfigError> {
    let root = Node::parse(text)?;
    let mut found = BTreeMap::new();
    collect(&root, &Path::default(), &mut found);
    Ok(found
        .into_iter()
        .map(|(name, (required, secret))| Var {
            name,
            required,
            secret,
        })
        .collect())
}

/// The variable `s` is made of and nothing else: `${NAME}` gives
/// `("NAME", None)`, `${NAME:-d}` gives `("NAME", Some("d"))`; any other
/// text (a literal, two references, text around one) gives None.
pub fn whole_reference(s: &str) -> Option<(&str, Option<&str>)> {
    let body = s.strip_prefix("${")?.strip_suffix('}')?;
    if body.contains('}') {
        return None;
    }
    let (name, default) = split(body);
    valid_name(name).then_some((name, default))
}

/// Each variable under `node` (at `path`): whether it is required, whether secret.
fn collect(node: &Node, path: &Path, found: &mut BTreeMap<String, (bool, bool)>) {
    match &node.kind {
        Kind::Str(s) => {
            for (name, default) in references(s) {
                let (required, secret) = found.entry(name.to_owned()).or_default();
                *required |= default.is_none();
                *secret |= path.is_secret();
            }
        }
        Kind::Seq(items) => {
            for (i, item) in items.iter().enumerate() {
                collect(item, &path.index(i), found);
            }
        }
        Kind::Map(entries) => {
            for (k, v) in entries {
                collect(v, &path.key(k.as_str().unwrap_or("?")), found);
            }
        }
        _ => {}
    }
}

/// The well-formed references of one string, in order.
fn references(s: &str) -> Vec<(&str, Option<&str>)> {
    let mut out = Vec::new();
    let mut rest = s;
    while let Some(i) = rest.find('$') {
        let after = &rest[i + 1..];
        if let Some(tail) = after.strip_prefix('$') {
            rest = tail;
        } else if let Some(body) = after.strip_prefix('{') {
            let Some(end) = body.find('}') else { break };
            let (name, default) = split(&body[..end]);
            if valid_name(name) {
                out.push((name, default));
            }
            rest = &body[end + 1..];
        } else {
            rest = after;
        }
    }
    out
}

fn split(expr: &str) -> (&str, Option<&str>) {
    match expr.split_once(":-") {
        Some((n, d)) => (n, Some(d)),
        None => (expr, None),
    }
}

fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
        && !name.starts_with(|c: char| c.is_ascii_digit())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(text: &str) -> Vec<(String, bool)> {
        referenced(text)
            .unwrap()
            .into_iter()
            .map(|v| (v.name, v.required))
            .collect()
    }

    #[test]
    fn variables_of_secret_keys_are_secret() {
        let text = "a: ${PLAIN:-x}\nb: {auth_token: '${TOKEN:-placeholder}'}\nc: {tokens: ['${T}'], url: '${U:-x}'}\n";
        let secret: Vec<(String, bool)> = referenced(text)
            .unwrap()
            .into_iter()
            .map(|v| (v.name, v.secret))
            .collect();
        let want = [("PLAIN", false), ("T", true), ("TOKEN", true), ("U", false)];
        let want: Vec<(String, bool)> = want.iter().map(|(n, s)| (n.to_string(), *s)).collect();
        assert_eq!(secret, want);
    }

    #[test]
    fn every_reference_once_sorted_required_when_any_lacks_a_default() {
        let text = "a: ${B_TOKEN}\nb:\n  - \"x${A:-1}y${C}\"\n  - '$${NOT}'\n\
                    c:\n  d: ${A}\n  e: \"${D:-${}\"\n\"${KEY}\": 1\n";
        assert_eq!(
            names(text),
            vec![
                ("A".to_owned(), true),
                ("B_TOKEN".to_owned(), true),
                ("C".to_owned(), true),
                ("D".to_owned(), false),
            ]
        );
    }

    #[test]
    fn malformed_references_are_skipped_and_bad_yaml_is_an_error() {
        assert_eq!(names("a: ${1X} ${a-b} ${OPEN"), vec![]);
        assert!(referenced("a: [").is_err());
    }

    #[test]
    fn whole_references() {
        assert_eq!(whole_reference("${A}"), Some(("A", None)));
        assert_eq!(
            whole_reference("${L:-127.0.0.1:8080}"),
            Some(("L", Some("127.0.0.1:8080")))
        );
        for s in ["x${A}", "${A}${B}", "${A}x", "0.0.0.0:8080", "${1A}"] {
            assert_eq!(whole_reference(s), None, "{s}");
        }
    }
}
