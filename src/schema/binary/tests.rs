use serde_json::Value;

use super::*;
use crate::message::{Connection, InboundMessage};
use crate::schema::{inbound, routed, SCHEMA_FILES};

/// A schema's shape, without its docs and defaults: `string`, `long`,
/// `[null,string]`, `map<string>`, `{a:string,b:long}`; a named type used
/// again by name is its name.
fn shape(schema: &Value) -> String {
    match schema {
        Value::String(name) => name.clone(),
        Value::Array(branches) => {
            let branches: Vec<String> = branches.iter().map(shape).collect();
            format!("[{}]", branches.join(","))
        }
        Value::Object(o) => match o["type"].as_str() {
            Some("record") => {
                let fields: Vec<String> = o["fields"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|f| format!("{}:{}", f["name"].as_str().unwrap(), shape(&f["type"])))
                    .collect();
                format!("{{{}}}", fields.join(","))
            }
            Some("map") => format!("map<{}>", shape(&o["values"])),
            Some("array") => format!("array<{}>", shape(&o["items"])),
            Some(primitive) => primitive.to_owned(),
            None => shape(&o["type"]),
        },
        other => panic!("not a schema: {other}"),
    }
}

#[test]
fn the_layout_read_here_is_the_schemas() {
    let schema = |i: usize| -> Value { serde_json::from_str(SCHEMA_FILES[i].1).unwrap() };
    // What `read_inbound` reads, in its order.
    assert_eq!(
        shape(&schema(0)),
        "{id:string,connection:{backend:string,identity:string},text:string,\
         received_at:long,external_id:[null,string],fields:map<string>}"
    );
    // The routed record: the inbound one, what `RoutingHead` writes, then
    // the contact (`splice::CONTACT`).
    let routed = shape(&schema(1));
    let head = "app:string,route:string,rest:[null,string],captures:map<string>,contact:[null,{";
    assert!(routed.starts_with("{message:{id:string,"), "{routed}");
    assert!(
        routed.contains(&format!("fields:map<string>}},{head}")),
        "{routed}"
    );
}

fn messages() -> Vec<InboundMessage> {
    let plain = InboundMessage::new(Connection::new("kannel", "+256772123456"), "join Ada");
    let mut full = InboundMessage::new(Connection::new("twilio", "+15005550006"), "Grüße 😀");
    full.external_id = Some("SM5f2c8e0b9d7a4c1e".into());
    full.fields.insert("to".into(), "15000".into());
    full.fields.insert("smsc".into(), "fake".into());
    full.received_at = -1;
    let mut empty = InboundMessage::new(Connection::new("", ""), "");
    empty.id = String::new();
    empty.external_id = Some(String::new());
    empty.received_at = i64::MAX;
    empty.fields.insert(String::new(), String::new());
    let mut long = InboundMessage::new(Connection::new("kannel", "+2567"), "x".repeat(300));
    long.received_at = i64::MIN;
    long.fields = (0..70).map(|i| (format!("k{i}"), "v".into())).collect();
    vec![plain, full, empty, long]
}

/// `datum` read here and by the library, as the owned message or the error.
fn both(
    datum: &[u8],
) -> (
    Result<InboundMessage, String>,
    Result<InboundMessage, String>,
) {
    let here = read_inbound(datum).map(|v| v.to_message());
    let record = [&inbound().header()[..], datum].concat();
    let library = inbound().decode(&record).map_err(|e| e.to_string());
    (here, library)
}

#[test]
fn reads_what_the_library_reads_and_refuses_what_it_refuses() {
    let mut checked = 0;
    for m in messages() {
        let record = inbound().encode(&m).unwrap();
        let datum = &record[10..];
        assert_eq!(read_inbound(datum).unwrap(), m.view());
        // Every datum cut short, and one with a byte more.
        let mut broken: Vec<Vec<u8>> = (0..datum.len()).map(|n| datum[..n].to_vec()).collect();
        broken.push([datum, &[0]].concat());
        // Every byte replaced by values that change its meaning: a varint
        // ended or continued, a length or a union branch changed, UTF-8
        // broken.
        for at in 0..datum.len() {
            let was = datum[at];
            let values = [0x00, 0x01, 0x02, 0x03, 0x04, 0x7F, 0x80, 0xC3, 0xFF];
            let near = [was.wrapping_add(2), was.wrapping_sub(2), was ^ 0x40];
            for b in values.into_iter().chain(near) {
                let mut changed = datum.to_vec();
                changed[at] = b;
                broken.push(changed);
            }
        }
        // And a few bytes at once, anywhere, any value (a fixed seed).
        let mut rng = fastrand::Rng::with_seed(17);
        for _ in 0..500 {
            let mut changed = datum.to_vec();
            for _ in 0..rng.usize(2..5) {
                changed[rng.usize(..datum.len())] = rng.u8(..);
            }
            broken.push(changed);
        }
        for datum in &broken {
            let (here, library) = both(datum);
            match (&here, &library) {
                (Ok(a), Ok(b)) => assert_eq!(a, b, "{datum:02X?}"),
                (Err(_), Err(_)) => {}
                _ => panic!("{datum:02X?}: here {here:?}, library {library:?}"),
            }
            checked += 1;
        }
    }
    assert!(checked > 1000, "{checked}");
}

#[test]
fn a_refusal_names_the_field() {
    let record = inbound().encode(&messages()[0]).unwrap();
    let at = record.windows(8).position(|w| w == b"join Ada").unwrap();
    let mut not_utf8 = record.clone();
    not_utf8[at] = 0xFF;
    let e = inbound().view(&not_utf8).unwrap_err().to_string();
    assert!(
        e.starts_with("record is not a valid InboundMessage: field `text`: not UTF-8"),
        "{e}"
    );
    let e = inbound().view(&record[..record.len() - 2]).unwrap_err();
    assert!(e.to_string().contains("field `external_id`"), "{e}");
    let longer = [&record[..], &[0, 0]].concat();
    let e = inbound().view(&longer).unwrap_err();
    assert!(
        e.to_string()
            .ends_with("2 bytes left over after the record"),
        "{e}"
    );
    // A map that claims more pairs than the record could hold.
    let mut huge = record[..record.len() - 1].to_vec();
    huge.extend([0xFE, 0xFF, 0xFF, 0xFF, 0x0F]);
    let e = inbound().view(&huge).unwrap_err();
    assert!(
        e.to_string().contains("field `fields`: a map block of"),
        "{e}"
    );
    // Written in another schema: refused by its fingerprint.
    let other = routed().header();
    let e = inbound()
        .view(&[&other[..], &record[10..]].concat())
        .unwrap_err();
    assert!(e.to_string().contains("another schema"), "{e}");
}

#[test]
fn longs_round_trip_at_their_edges() {
    for v in [
        0,
        1,
        -1,
        63,
        -64,
        64,
        -65,
        8191,
        8192,
        i64::MAX,
        i64::MIN,
        1 << 40,
    ] {
        let mut out = Vec::new();
        write_long(&mut out, v);
        let mut r = Reader { rest: &out };
        assert_eq!(r.long(), Ok(v));
        assert!(r.rest.is_empty());
        if let Ok(len) = usize::try_from(v) {
            assert_eq!(long_len(len), out.len(), "{v}");
        }
    }
    // Ten bytes are the most a long takes, and the tenth holds one bit.
    let eleven = [0xFF; 11];
    assert!(Reader { rest: &eleven }.long().is_err());
    let mut ten = [0xFF; 10];
    ten[9] = 0x02;
    assert!(Reader { rest: &ten }.long().is_err());
    ten[9] = 0x01;
    assert_eq!(Reader { rest: &ten }.long(), Ok(i64::MIN));
}

#[test]
fn the_head_is_as_long_as_it_says() {
    let text = "a".repeat(200);
    let many: Vec<String> = (0..70).map(|i| i.to_string()).collect();
    let many: Captures = many.iter().map(|k| (k.as_str(), text.as_str())).collect();
    let one: Captures = [("name", "Ada")].into_iter().collect();
    let none = Captures::default();
    for (rest, captures) in [
        (None, &none),
        (Some(""), &one),
        (Some(text.as_str()), &many),
    ] {
        let head = RoutingHead {
            app: "register",
            route: &text,
            rest,
            captures,
        };
        let mut out = Vec::new();
        head.write(&mut out);
        assert_eq!(out.len(), head.encoded_len(), "{rest:?}");
    }
}
