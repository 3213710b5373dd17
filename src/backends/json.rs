//! Reading providers' JSON callbacks (Clickatell, Vumi): a body that must be
//! an object, and fields read as text, each failure naming what was wrong.

use serde_json::{Map, Value};

use super::webhook::SourceError;

/// The request body as a JSON object.
pub fn object(body: &[u8]) -> Result<Map<String, Value>, SourceError> {
    match serde_json::from_slice::<Value>(body) {
        Ok(Value::Object(o)) => Ok(o),
        Ok(_) => Err(SourceError::Invalid {
            field: "body",
            message: "expected a JSON object".into(),
        }),
        Err(e) => Err(SourceError::Invalid {
            field: "body",
            message: format!("not JSON: {e}"),
        }),
    }
}

/// A JSON scalar as text (`null`, objects and lists are none).
pub fn scalar(v: Option<&Value>) -> Option<String> {
    match v? {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

/// `obj[key]` as text: missing, `null` and `""` are none, a number or a
/// boolean is its JSON text, an object or a list is refused (naming `key`).
pub fn text(obj: &Map<String, Value>, key: &'static str) -> Result<Option<String>, SourceError> {
    match obj.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Array(_) | Value::Object(_)) => Err(SourceError::Invalid {
            field: key,
            message: format!("{key} must be a string"),
        }),
        v => Ok(scalar(v).filter(|s| !s.is_empty())),
    }
}

/// `value[key]`: a non-empty list of objects (`field` names it in errors;
/// `what` says what the list is).
pub fn objects<'a>(
    value: &'a Value,
    key: &str,
    field: &'static str,
    what: &str,
) -> Result<Vec<&'a Map<String, Value>>, SourceError> {
    let list = value
        .get(key)
        .and_then(Value::as_array)
        .filter(|l| !l.is_empty())
        .ok_or(SourceError::missing(field, what))?;
    list.iter()
        .map(|item| {
            item.as_object().ok_or(SourceError::Invalid {
                field,
                message: format!("each item of {field} must be a JSON object"),
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn fields_read_as_text() {
        let o = object(br#"{"a": "x", "n": 5, "b": true, "e": "", "z": null, "l": [1]}"#).unwrap();
        assert_eq!(text(&o, "a").unwrap().as_deref(), Some("x"));
        assert_eq!(text(&o, "n").unwrap().as_deref(), Some("5"));
        assert_eq!(text(&o, "b").unwrap().as_deref(), Some("true"));
        for none in ["e", "z", "missing"] {
            assert_eq!(text(&o, none).unwrap(), None, "{none}");
        }
        assert!(matches!(
            text(&o, "l"),
            Err(SourceError::Invalid { field: "l", .. })
        ));
        assert!(matches!(
            object(b"[1]"),
            Err(SourceError::Invalid { field: "body", .. })
        ));
        assert!(matches!(
            object(b"{"),
            Err(SourceError::Invalid { field: "body", .. })
        ));
        assert_eq!(scalar(Some(&json!(1.5))).as_deref(), Some("1.5"));
        let v = json!({"l": [{"a": 1}], "bad": [1], "empty": []});
        assert_eq!(objects(&v, "l", "x.l", "a list").unwrap().len(), 1);
        for key in ["bad", "empty", "none"] {
            assert!(matches!(
                objects(&v, key, "x.l", "a list"),
                Err(SourceError::Invalid { field: "x.l", .. })
            ));
        }
    }
}
