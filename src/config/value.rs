//! Value shapes every section shares: durations written like `30s`, and
//! keys with a fixed set of values that may also be a `${VAR}` reference
//! (their serde and JSON Schema forms).

use std::borrow::Cow;

use schemars::{json_schema, JsonSchema, Schema, SchemaGenerator};

/// Durations are written as in `30s`, `1m 30s`, `500ms` (humantime).
pub(crate) mod humantime_serde_compat {
    use std::time::Duration;

    pub fn serialize<S: serde::Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&humantime::format_duration(*d).to_string())
    }

    pub fn deserialize<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        let text = <String as serde::Deserialize>::deserialize(d)?;
        humantime::parse_duration(&text).map_err(|e| {
            serde::de::Error::custom(format!(
                "{text:?} is not a duration ({e}): expected for example 30s, 1m 30s, 500ms"
            ))
        })
    }
}

/// The schema of a duration: a humantime string (or a `${VAR}` reference).
pub(crate) struct HumanDuration;

impl JsonSchema for HumanDuration {
    fn schema_name() -> Cow<'static, str> {
        "Duration".into()
    }

    /// Inline, so that an editor shows the key's own description (a `$ref`
    /// would show the duration's); the reference recognises the pattern.
    fn inline_schema() -> bool {
        true
    }

    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "type": "string",
            "pattern": DURATION_PATTERN,
            // yaml-language-server's message when the pattern fails.
            "patternErrorMessage": "expected a duration: numbers with units, as in 30s, 1m 30s, 500ms, 7days"
        })
    }
}

/// A string with a `${VAR}` in it: any string key may be one.
pub(crate) const INTERPOLATED_PATTERN: &str = r"\$\{";

/// A transform for the schema of a key with a fixed set of values: those
/// values (editors offer them) or a `${VAR}` string, which interpolation
/// turns into one of them.
pub(crate) fn or_interpolated(schema: &mut Schema) {
    let Some(object) = schema.as_object_mut() else {
        return;
    };
    let description = object.remove("description");
    let values = serde_json::Value::Object(std::mem::take(object));
    object.insert(
        "anyOf".into(),
        serde_json::json!([values, {"type": "string", "pattern": INTERPOLATED_PATTERN}]),
    );
    if let Some(d) = description {
        object.insert("description".into(), d);
    }
}

/// What a duration looks like (humantime's grammar, loosely: a number and a
/// unit, repeated), or a string with a `${VAR}` in it.
pub(crate) const DURATION_PATTERN: &str = r"^\s*([0-9]+\s*[A-Za-z]+\s*)+$|\$\{";
