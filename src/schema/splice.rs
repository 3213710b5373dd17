//! The router's output without re-encoding its input.
//!
//! A `RoutedMessage` datum is its `message` (an `InboundMessage` datum)
//! followed by the routing fields: Avro writes a record as its fields one
//! after the other. So the router copies the inbound record's datum as it
//! came and encodes only what it decided ([`Routing`]) against the routed
//! schema's remaining fields: `app`, `route`, `rest` and `captures` field
//! by field (`binary.rs`), and the sender's contact, when there is one,
//! through `serde_avro_fast` with that field's schema, derived from
//! `schemas/routed_message.avsc` at start-up (`tail_schema`). The bytes
//! are those of encoding the whole `RoutedMessage`
//! (`tests::spliced_bytes_are_the_whole_encoding`).

use std::collections::HashSet;
use std::sync::LazyLock;

use anyhow::Context;
use serde_json::Value;

use super::binary::RoutingHead;
use super::{inbound, routed, split, EncodeError, SCHEMA_FILES};
use crate::message::{Contact, InboundMessage, InboundView, RoutedMessage};
use crate::sms::keyword::Captures;

/// What the router adds to an inbound message: a `RoutedMessage` without
/// its `message`, borrowed.
#[derive(Debug)]
pub struct Routing<'a, 'c> {
    pub app: &'a str,
    pub route: &'a str,
    pub rest: Option<&'a str>,
    pub captures: &'a Captures<'c>,
    pub contact: Option<&'a Contact>,
}

impl Routing<'_, '_> {
    /// The whole record, for those who need it as one value.
    pub fn to_routed(&self, message: InboundMessage) -> RoutedMessage {
        RoutedMessage {
            message,
            app: self.app.to_owned(),
            route: self.route.to_owned(),
            rest: self.rest.map(str::to_owned),
            captures: self.captures.to_fields(),
            contact: self.contact.cloned(),
        }
    }
}

/// The schema of the routed record's `contact` when it is not null: the
/// second branch of its union.
static CONTACT: LazyLock<serde_avro_fast::Schema> = LazyLock::new(|| {
    // Infallible in practice: the file is compiled in, and the tests
    // encode through this schema.
    tail_schema(SCHEMA_FILES[1].1)
        .and_then(|json| {
            let tail: Value = serde_json::from_str(&json)?;
            let contact = &tail["fields"][4];
            anyhow::ensure!(contact["name"] == "contact", "no contact field: {contact}");
            Ok(contact["type"][1].to_string().parse()?)
        })
        .expect("the routed schema's contact is a record")
});

/// The `RoutedMessage` of `message` and `routing`, in single-object
/// framing. `payload` is the record `message` was decoded from: when it
/// was written with today's inbound schema its datum is copied; otherwise
/// (an earlier version) the whole record is encoded.
pub fn encode_routed(
    payload: &[u8],
    message: &InboundView,
    routing: &Routing,
) -> Result<Vec<u8>, EncodeError> {
    let datum = match payload.strip_prefix(inbound().header()) {
        Some(datum) => datum,
        None => match split(payload) {
            Ok((known, datum)) if known.fingerprint == inbound().header()[2..] => datum,
            _ => return routed().encode(&routing.to_routed(message.to_message())),
        },
    };
    let head = RoutingHead {
        app: routing.app,
        route: routing.route,
        rest: routing.rest,
        captures: routing.captures,
    };
    let header = routed().header();
    // Sized exactly when there is no contact, so that the record is handed
    // on without a copy or a second allocation (`bytes::Bytes::from`).
    let contact = routing.contact.map_or(1, |_| 256);
    let mut out = Vec::with_capacity(header.len() + datum.len() + head.encoded_len() + contact);
    out.extend_from_slice(header);
    out.extend_from_slice(datum);
    head.write(&mut out);
    match routing.contact {
        None => out.push(0),
        Some(contact) => {
            out.push(2);
            let mut config = serde_avro_fast::ser::SerializerConfig::new(&CONTACT);
            serde_avro_fast::to_datum(contact, &mut out, &mut config).map_err(|e| EncodeError {
                schema: routed().name(),
                reason: e.to_string(),
            })?;
        }
    }
    Ok(out)
}

/// The record schema of `json`'s fields after its first, as a record of
/// its own. A named type the first field defined and a later one uses by
/// name is defined at that first later use instead.
fn tail_schema(json: &str) -> anyhow::Result<String> {
    let mut record: Value = serde_json::from_str(json)?;
    let namespace = record["namespace"].as_str().unwrap_or_default().to_owned();
    let fields = record["fields"]
        .as_array_mut()
        .context("the schema is not a record")?;
    let first = fields.remove(0);
    let mut dropped = Vec::new();
    definitions(&first["type"], &namespace, &mut dropped);
    let mut defined = HashSet::new();
    for f in fields.iter_mut() {
        inline(&mut f["type"], &namespace, &dropped, &mut defined);
    }
    record["name"] = Value::from(format!("{}Tail", record["name"].as_str().unwrap_or("")));
    Ok(record.to_string())
}

/// The full name of a named type `name` in `namespace`.
fn full_name(name: &str, namespace: &str) -> String {
    if name.contains('.') || namespace.is_empty() {
        name.to_owned()
    } else {
        format!("{namespace}.{name}")
    }
}

/// The named types `schema` defines (records, enums, fixed), with their
/// definitions: (full name, namespace inside, definition).
fn definitions(schema: &Value, namespace: &str, out: &mut Vec<(String, Value)>) {
    match schema {
        Value::Array(branches) => branches.iter().for_each(|b| definitions(b, namespace, out)),
        Value::Object(o) => {
            let ns = o
                .get("namespace")
                .and_then(Value::as_str)
                .unwrap_or(namespace);
            if let Some(name) = o.get("name").and_then(Value::as_str) {
                out.push((full_name(name, ns), schema.clone()));
            }
            for key in ["items", "values"] {
                if let Some(inner) = o.get(key) {
                    definitions(inner, ns, out);
                }
            }
            for f in o
                .get("fields")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
            {
                definitions(&f["type"], ns, out);
            }
        }
        _ => {}
    }
}

/// Replace the first reference by name to each of `dropped` in `schema`
/// with its definition.
fn inline(
    schema: &mut Value,
    namespace: &str,
    dropped: &[(String, Value)],
    defined: &mut HashSet<String>,
) {
    match schema {
        Value::String(name) => {
            let full = full_name(name, namespace);
            if let Some((_, definition)) = dropped.iter().find(|(n, _)| *n == full) {
                if defined.insert(full) {
                    *schema = definition.clone();
                }
            }
        }
        Value::Array(branches) => {
            for b in branches {
                inline(b, namespace, dropped, defined);
            }
        }
        Value::Object(o) => {
            let ns = o
                .get("namespace")
                .and_then(Value::as_str)
                .unwrap_or(namespace)
                .to_owned();
            if let Some(name) = o.get("name").and_then(Value::as_str) {
                defined.insert(full_name(name, &ns));
            }
            for key in ["items", "values"] {
                if let Some(inner) = o.get_mut(key) {
                    inline(inner, &ns, dropped, defined);
                }
            }
            if let Some(Value::Array(fields)) = o.get_mut("fields") {
                for f in fields {
                    inline(&mut f["type"], &ns, dropped, defined);
                }
            }
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::message::{Connection, Contact};

    fn contact() -> Contact {
        Contact {
            id: "c1".into(),
            name: "Ada".into(),
            language: "fr".into(),
            connections: vec![
                Connection::new("kannel", "+2567"),
                Connection::new("twilio", "+2568"),
            ],
            groups: vec!["staff".into()],
            created_at: 1,
            modified_at: 2,
        }
    }

    #[test]
    fn the_tail_defines_what_the_message_defined_where_it_is_first_used() {
        let tail: Value = serde_json::from_str(&tail_schema(SCHEMA_FILES[1].1).unwrap()).unwrap();
        let names: Vec<&str> = tail["fields"]
            .as_array()
            .unwrap()
            .iter()
            .map(|f| f["name"].as_str().unwrap())
            .collect();
        assert_eq!(names, ["app", "route", "rest", "captures", "contact"]);
        let connections = &tail["fields"][4]["type"][1]["fields"][3]["type"]["items"];
        assert_eq!(connections["name"], "Connection", "{tail:#}");
    }

    #[test]
    fn spliced_bytes_are_the_whole_encoding() {
        // Eleven groups, some named, one absent: "10" sorts before "2".
        let pattern = crate::sms::keyword::PatternRegex::new(
            r"(a)(b)(c)(?P<d>d)(e)(f)(g)(h)(i)(j)(?P<k>k)?(l)",
        )
        .unwrap();
        let named: Captures = [("name", "Ada")].into_iter().collect();
        let many = pattern.captures("abcdefghijl").unwrap();
        assert_eq!(many.get("10"), Some("j"));
        assert_eq!(many.get("k"), None);
        let ada = contact();
        for (text, rest, contact, captures) in [
            ("register Ada", Some("Ada"), Some(&ada), &named),
            ("ping", None, None, &Captures::default()),
            ("", Some(""), Some(&ada), &many),
        ] {
            let mut m = InboundMessage::new(Connection::new("kannel", "+2567"), text);
            m.fields.insert("to".into(), "15000".into());
            let routing = Routing {
                app: "register",
                route: "register",
                rest,
                captures,
                contact,
            };
            let payload = inbound().encode(&m).unwrap();
            let spliced = encode_routed(&payload, &m.view(), &routing).unwrap();
            let whole = routed().encode(&routing.to_routed(m.clone())).unwrap();
            assert_eq!(spliced, whole, "{text:?}");
            assert_eq!(
                routed().decode(&spliced).unwrap(),
                routing.to_routed(m.clone())
            );
            // Confluent framing in: the same single-object record out.
            let confluent =
                super::super::reframe(payload.clone(), super::super::Framing::Confluent);
            assert_ne!(confluent, payload);
            assert_eq!(
                encode_routed(&confluent, &m.view(), &routing).unwrap(),
                whole
            );
        }
    }
}
