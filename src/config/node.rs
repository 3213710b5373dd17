//! The pipeline file as a tree of positioned YAML nodes.
//!
//! serde-saphyr parses the text and tells where every value stands; we keep
//! that position on each node so that every later error (a wrong type deep in
//! a route, a regex that does not compile, an unknown app) can name its line
//! and column. Typed sections are then read from this tree one item at a time,
//! so one bad item does not hide the errors of the others.

use std::fmt;

use serde::de::{self, Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_saphyr::Spanned;

use super::error::ConfigError;
pub use super::path::{is_secret_key, Path, Step};

/// A YAML value and where it stands (1-based line and column).
#[derive(Debug, Clone, PartialEq)]
pub struct Node {
    pub line: u32,
    pub column: u32,
    pub kind: Kind,
}

/// The value of a [`Node`].
#[derive(Debug, Clone, PartialEq)]
pub enum Kind {
    Null,
    Bool(bool),
    Int(i64),
    Float(f64),
    Str(String),
    Seq(Vec<Node>),
    /// Keys keep their own positions; order is the file's.
    Map(Vec<(Node, Node)>),
}

impl Node {
    /// Parse YAML text. A syntax error is returned with its position.
    pub fn parse(text: &str) -> Result<Node, ConfigError> {
        let spanned: Spanned<RawKind> = serde_saphyr::from_str(text).map_err(|e| {
            let (line, column) = e
                .location()
                .map(|l| (l.line() as u32, l.column() as u32))
                .unwrap_or((1, 1));
            // The rendered error carries a snippet; the first line is the message.
            let rendered = e.to_string();
            let message = rendered.lines().next().unwrap_or("invalid YAML").to_owned();
            ConfigError::new(
                line,
                column,
                Path::default(),
                format!("invalid YAML: {message}"),
            )
        })?;
        Ok(spanned.into())
    }

    /// The node at `path`, if there is one.
    pub fn get(&self, path: &Path) -> Option<&Node> {
        let mut node = self;
        for step in &path.0 {
            node = match (step, &node.kind) {
                (Step::Key(k), Kind::Map(entries)) => {
                    &entries.iter().find(|(key, _)| key.as_str() == Some(k))?.1
                }
                (Step::Index(i), Kind::Seq(items)) => items.get(*i)?,
                _ => return None,
            };
        }
        Some(node)
    }

    /// The key node of the mapping entry `key` in this node, for errors about the key itself.
    pub fn key_node(&self, key: &str) -> Option<&Node> {
        match &self.kind {
            Kind::Map(entries) => entries
                .iter()
                .find(|(k, _)| k.as_str() == Some(key))
                .map(|(k, _)| k),
            _ => None,
        }
    }

    pub fn as_str(&self) -> Option<&str> {
        match &self.kind {
            Kind::Str(s) => Some(s),
            _ => None,
        }
    }

    /// A short description of the value for error messages: `"abc"`, `42`, `a mapping`.
    pub fn describe(&self) -> String {
        match &self.kind {
            Kind::Null => "null".into(),
            Kind::Bool(b) => b.to_string(),
            Kind::Int(i) => i.to_string(),
            Kind::Float(f) => f.to_string(),
            Kind::Str(s) => format!("{s:?}"),
            Kind::Seq(_) => "a list".into(),
            Kind::Map(_) => "a mapping".into(),
        }
    }

    /// Replace `${VAR}` and `${VAR:-default}` in every string by the
    /// environment's value (`$$` is a literal `$`). Every unset variable
    /// without a default is reported.
    pub fn interpolate(
        &mut self,
        env: &dyn Fn(&str) -> Option<String>,
        path: &Path,
        errors: &mut Vec<ConfigError>,
    ) {
        let (line, column) = (self.line, self.column);
        match &mut self.kind {
            Kind::Str(s) if s.contains('$') => {
                match interpolate_str(s, env).map_err(|e| e.message(s, path.is_secret())) {
                    Ok(v) => *s = v,
                    Err(msg) => errors.push(ConfigError::new(line, column, path.clone(), msg)),
                }
            }
            Kind::Seq(items) => {
                for (i, item) in items.iter_mut().enumerate() {
                    item.interpolate(env, &path.index(i), errors);
                }
            }
            Kind::Map(entries) => {
                for (k, v) in entries.iter_mut() {
                    let p = path.key(k.as_str().unwrap_or("?"));
                    v.interpolate(env, &p, errors);
                }
            }
            _ => {}
        }
    }

    /// The value as JSON, to read typed sections with serde.
    pub fn to_json(&self) -> serde_json::Value {
        use serde_json::Value as J;
        match &self.kind {
            Kind::Null => J::Null,
            Kind::Bool(b) => J::Bool(*b),
            Kind::Int(i) => J::from(*i),
            Kind::Float(f) => serde_json::Number::from_f64(*f).map_or(J::Null, J::Number),
            Kind::Str(s) => J::String(s.clone()),
            Kind::Seq(items) => J::Array(items.iter().map(Node::to_json).collect()),
            Kind::Map(entries) => J::Object(
                entries
                    .iter()
                    .map(|(k, v)| (k.scalar_text(), v.to_json()))
                    .collect(),
            ),
        }
    }

    fn scalar_text(&self) -> String {
        match &self.kind {
            Kind::Str(s) => s.clone(),
            other => Node {
                line: 0,
                column: 0,
                kind: other.clone(),
            }
            .describe(),
        }
    }
}

/// Why a string could not be interpolated.
#[derive(Debug)]
enum Unresolved<'a> {
    Unclosed,
    NotAVariable(&'a str),
    Unset(&'a str),
}

impl Unresolved<'_> {
    /// The error for string `s`; quoting none of it when it is a secret's.
    fn message(&self, s: &str, secret: bool) -> String {
        match self {
            Unresolved::Unclosed if secret => "unclosed `${` in this secret (not shown): expected `${NAME}` or `${NAME:-default}`".into(),
            Unresolved::Unclosed => format!("unclosed `${{` in {s:?}: expected `${{NAME}}` or `${{NAME:-default}}`"),
            Unresolved::NotAVariable(_) if secret => "a `${...}` in this secret (not shown) is not a variable reference: expected `${NAME}` or `${NAME:-default}` with NAME made of letters, digits and _".into(),
            Unresolved::NotAVariable(expr) => format!("`${{{expr}}}` is not a variable reference: expected `${{NAME}}` or `${{NAME:-default}}` with NAME made of letters, digits and _"),
            Unresolved::Unset(name) => format!("environment variable {name} is not set and `${{{name}}}` has no default (write `${{{name}:-value}}` for one)"),
        }
    }
}

fn interpolate_str<'a>(
    s: &'a str,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<String, Unresolved<'a>> {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(i) = rest.find('$') {
        out.push_str(&rest[..i]);
        let after = &rest[i + 1..];
        if let Some(tail) = after.strip_prefix('$') {
            out.push('$');
            rest = tail;
        } else if let Some(body) = after.strip_prefix('{') {
            let end = body.find('}').ok_or(Unresolved::Unclosed)?;
            let expr = &body[..end];
            let (name, default) = match expr.split_once(":-") {
                Some((n, d)) => (n, Some(d)),
                None => (expr, None),
            };
            let valid = !name.is_empty()
                && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
                && !name.starts_with(|c: char| c.is_ascii_digit());
            if !valid {
                return Err(Unresolved::NotAVariable(expr));
            }
            match (env(name), default) {
                (Some(v), _) => out.push_str(&v),
                (None, Some(d)) => out.push_str(d),
                (None, None) => return Err(Unresolved::Unset(name)),
            }
            rest = &body[end + 1..];
        } else {
            out.push('$');
            rest = after;
        }
    }
    out.push_str(rest);
    Ok(out)
}

/// What serde-saphyr gives us before positions are attached.
struct RawKind(Kind);

impl From<Spanned<RawKind>> for Node {
    fn from(s: Spanned<RawKind>) -> Node {
        Node {
            line: s.referenced.line() as u32,
            column: s.referenced.column() as u32,
            kind: s.value.0,
        }
    }
}

impl<'de> Deserialize<'de> for RawKind {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(RawVisitor)
    }
}

struct RawVisitor;

impl<'de> Visitor<'de> for RawVisitor {
    type Value = RawKind;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any YAML value")
    }
    fn visit_bool<E: de::Error>(self, v: bool) -> Result<RawKind, E> {
        Ok(RawKind(Kind::Bool(v)))
    }
    fn visit_i64<E: de::Error>(self, v: i64) -> Result<RawKind, E> {
        Ok(RawKind(Kind::Int(v)))
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<RawKind, E> {
        Ok(RawKind(
            i64::try_from(v).map_or(Kind::Float(v as f64), Kind::Int),
        ))
    }
    fn visit_f64<E: de::Error>(self, v: f64) -> Result<RawKind, E> {
        Ok(RawKind(Kind::Float(v)))
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<RawKind, E> {
        Ok(RawKind(Kind::Str(v.to_owned())))
    }
    fn visit_string<E: de::Error>(self, v: String) -> Result<RawKind, E> {
        Ok(RawKind(Kind::Str(v)))
    }
    fn visit_unit<E: de::Error>(self) -> Result<RawKind, E> {
        Ok(RawKind(Kind::Null))
    }
    fn visit_none<E: de::Error>(self) -> Result<RawKind, E> {
        Ok(RawKind(Kind::Null))
    }
    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<RawKind, D::Error> {
        RawKind::deserialize(d)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<RawKind, A::Error> {
        let mut items = Vec::new();
        while let Some(item) = seq.next_element::<Spanned<RawKind>>()? {
            items.push(item.into());
        }
        Ok(RawKind(Kind::Seq(items)))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<RawKind, A::Error> {
        let mut entries: Vec<(Node, Node)> = Vec::new();
        while let Some(key) = map.next_key::<Spanned<RawKind>>()? {
            let value: Spanned<RawKind> = map.next_value()?;
            entries.push((key.into(), value.into()));
        }
        Ok(RawKind(Kind::Map(entries)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn positions_are_kept_for_keys_and_values() {
        let n = Node::parse("a: 1\nlist:\n  - x: hello\n    y: [1, 2]\n").unwrap();
        let hello = n
            .get(&Path::default().key("list").index(0).key("x"))
            .unwrap();
        assert_eq!((hello.line, hello.column), (3, 8));
        assert_eq!(hello.as_str(), Some("hello"));
        let key = n.get(&Path::default().key("list")).unwrap();
        assert_eq!(key.line, 3);
        assert_eq!(n.key_node("list").unwrap().line, 2);
    }

    #[test]
    fn interpolation() {
        let env = |k: &str| (k == "SET").then(|| "v".to_string());
        assert_eq!(interpolate_str("a${SET}b", &env).unwrap(), "avb");
        assert_eq!(interpolate_str("${UNSET:-d}", &env).unwrap(), "d");
        assert_eq!(interpolate_str("$$5 and $x", &env).unwrap(), "$5 and $x");
        let error = |s: &str, secret| match interpolate_str(s, &env) {
            Ok(v) => panic!("{s:?} interpolated to {v:?}"),
            Err(e) => e.message(s, secret),
        };
        assert!(error("${UNSET}", false).contains("UNSET is not set"));
        assert!(error("${UNSET}", true).contains("UNSET is not set"));
        assert!(error("${1X:-hunter2}", false).contains("hunter2"));
        assert!(error("${OPEN hunter2", false).contains("hunter2"));
        // A secret's value is never quoted.
        for s in ["${1X:-hunter2}", "${OPEN hunter2", "hunter2${"] {
            let e = error(s, true);
            assert!(!e.contains("hunter2"), "{e}");
        }
    }
}
