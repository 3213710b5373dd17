//! Previews: counts, segments against a reference table, languages, cost,
//! problems; and batches prepared for sending.

use std::collections::BTreeMap;

use smsflow::campaign::audience::Recipient;
use smsflow::campaign::preview::{
    prepare_batch, preview, Preview, PreviewError, PreviewOptions, Prices,
};
use smsflow::campaign::render::{ContactFields, TemplateError, Texts};
use smsflow::sms::numbers::Country;
use smsflow::sms::{analyze, Encoding};

fn run(csv: &str, texts: &Texts, prices: &Prices, region: Option<&str>) -> Preview {
    let mut opts = PreviewOptions::new(texts, prices);
    opts.region = region.and_then(Country::parse);
    preview(csv.as_bytes(), &opts).unwrap()
}

/// Reference texts and the segments they take (GSM 03.38: 160 septets in
/// one SMS, 153 per part; UCS-2: 70 / 67; an extension character such as
/// `€` or `[` is 2 septets and never split across parts).
fn reference() -> Vec<(String, Encoding, i32)> {
    let a = |n| "a".repeat(n);
    let ya = |n| "я".repeat(n);
    vec![
        (a(1), Encoding::Gsm7, 1),
        (a(160), Encoding::Gsm7, 1),
        (a(161), Encoding::Gsm7, 2),
        (a(306), Encoding::Gsm7, 2),
        (a(307), Encoding::Gsm7, 3),
        ("€".repeat(80), Encoding::Gsm7, 1),
        ("€".repeat(81), Encoding::Gsm7, 2),
        (format!("{}[", a(158)), Encoding::Gsm7, 1),
        (format!("{}[", a(159)), Encoding::Gsm7, 2),
        // 152 + an escape pair that would straddle the part boundary.
        (format!("{}€{}", a(152), a(10)), Encoding::Gsm7, 2),
        (ya(70), Encoding::Ucs2, 1),
        (ya(71), Encoding::Ucs2, 2),
        (ya(134), Encoding::Ucs2, 2),
        (ya(135), Encoding::Ucs2, 3),
        (format!("{}é", a(159)), Encoding::Gsm7, 1),
        (format!("{}ę", a(69)), Encoding::Ucs2, 1),
        (format!("{}ę", a(70)), Encoding::Ucs2, 2),
    ]
}

/// A CSV field, quoted.
fn quoted(s: &str) -> String {
    format!("\"{}\"", s.replace('"', "\"\""))
}

#[test]
fn segments_are_the_sum_over_rendered_texts_of_a_reference_table() {
    let table = reference();
    for (text, encoding, segments) in &table {
        assert_eq!(
            analyze(text),
            (*encoding, *segments),
            "{} × {:?}",
            text.chars().count(),
            text.chars().next()
        );
    }
    let mut csv = String::from("phone,msg\n");
    for (i, (text, _, _)) in table.iter().enumerate() {
        csv.push_str(&format!("+2547{i:08},{}\n", quoted(text)));
    }
    let texts = Texts::single("en", "{msg}");
    let p = run(&csv, &texts, &Prices::default(), None);
    let expected: i32 = table.iter().map(|t| t.2).sum();
    assert_eq!(p.segments, expected as u64);
    assert_eq!(p.to_send, table.len() as u64);
    let ucs2 = table.iter().filter(|t| t.1 == Encoding::Ucs2).count() as u64;
    assert_eq!(
        (p.encodings.gsm7, p.encodings.ucs2),
        (table.len() as u64 - ucs2, ucs2)
    );

    // The template's own text counts too: "{msg}!" adds one character.
    let texts = Texts::single("en", "{msg}!");
    let p = run(&csv, &texts, &Prices::default(), None);
    let with_bang: i32 = table.iter().map(|t| analyze(&format!("{}!", t.0)).1).sum();
    assert_eq!(p.segments, with_bang as u64);
    assert_ne!(with_bang, expected, "the table has texts on a boundary");
}

fn two_languages() -> Texts {
    Texts {
        texts: BTreeMap::from([
            (
                "en".into(),
                "Hi {name}, your clinic in {city} is open".into(),
            ),
            (
                "sw".into(),
                "Habari {name}, kliniki yako {city} iko wazi".into(),
            ),
        ]),
        default_language: "en".into(),
        defaults: BTreeMap::from([("city".into(), "town".into())]),
    }
}

#[test]
fn counts_duplicates_suppressed_invalid_missing_languages_and_cost() {
    let csv = "phone,name,city,language\n\
0712345678,Amina,Mombasa,sw\n\
254712345678,Amina again,Mombasa,en\n\
+254712345678,Amina thrice,,\n\
+254733000001,Otieno,,sw-KE\n\
+254733000002,,Kisumu,\n\
+254733000003,Blocked,Nakuru,\n\
+255712000001,Juma,Arusha,\n\
not-a-number,X,Y,\n\
+255712000002,Émile,Dodoma,fr\n";
    let texts = two_languages();
    let prices = Prices {
        per_segment: 1.0,
        prefixes: BTreeMap::from([("+254".into(), 0.5), ("+2547".into(), 0.25)]),
    };
    let mut opts = PreviewOptions::new(&texts, &prices);
    opts.region = Country::parse("KE");
    opts.suppressed = &|p: &str| p == "+254733000003";
    let p = preview(csv.as_bytes(), &opts).unwrap();
    assert_eq!(p.lines, 9);
    assert_eq!(p.invalid, 1);
    assert_eq!(p.invalid_lines[0].line, 9);
    assert_eq!(p.duplicates, 2);
    assert_eq!(p.suppressed, 1);
    assert_eq!(p.missing, 1);
    assert_eq!(p.missing_lines[0].line, 6);
    assert!(
        p.missing_lines[0].reason.contains("{name}"),
        "{}",
        p.missing_lines[0].reason
    );
    assert_eq!(p.to_send, 4);
    assert_eq!(
        p.lines,
        p.invalid + p.duplicates + p.suppressed + p.missing + p.to_send
    );
    // The first line of +254712345678 wins: Swahili, not English.
    assert_eq!(
        p.languages,
        BTreeMap::from([("en".into(), 2), ("sw".into(), 2)])
    );
    // Every text here is one segment, Émile's in GSM-7 too (É is in it).
    assert_eq!(p.segments, 4);
    assert_eq!(p.encodings.gsm7, 4);
    // +2547… pays 0.25 (the longest prefix), +25473… 0.25 too, +255 the default.
    assert_eq!(p.cost, 0.25 + 0.25 + 1.0 + 1.0);
    assert!(!p.ok());
    // The API's JSON reads back the same.
    let back: Preview = serde_json::from_value(serde_json::to_value(&p).unwrap()).unwrap();
    assert_eq!(back, p);
    assert_eq!(p.problems.len(), 1);
    assert!(
        p.problems[0].contains("1 recipients lack"),
        "{:?}",
        p.problems
    );

    // A default for name makes it sendable.
    let mut texts = two_languages();
    texts.defaults.insert("name".into(), "friend".into());
    let mut opts = PreviewOptions::new(&texts, &prices);
    opts.region = Country::parse("KE");
    let p = preview(csv.as_bytes(), &opts).unwrap();
    assert_eq!((p.missing, p.to_send, p.suppressed), (0, 6, 0));
    assert!(p.ok(), "{:?}", p.problems);
}

#[test]
fn longest_prefix_wins() {
    let prices = Prices {
        per_segment: 2.0,
        prefixes: BTreeMap::from([
            ("+2".into(), 1.5),
            ("+25".into(), 1.0),
            ("+254".into(), 0.5),
        ]),
    };
    assert_eq!(prices.per_segment_for("+254712345678"), 0.5);
    assert_eq!(prices.per_segment_for("+255712345678"), 1.0);
    assert_eq!(prices.per_segment_for("+27123"), 1.5);
    assert_eq!(prices.per_segment_for("+1555"), 2.0);
    let back: Prices = serde_json::from_str(
        r#"{"per_segment": 2.0, "prefixes": {"+2": 1.5, "+25": 1.0, "+254": 0.5}}"#,
    )
    .unwrap();
    assert_eq!(back, prices);
}

#[test]
fn contacts_give_names_and_languages() {
    let csv = "phone,city\n+254712345678,Lamu\n+254712345679,Lamu\n";
    let texts = two_languages();
    let prices = Prices::default();
    let mut opts = PreviewOptions::new(&texts, &prices);
    let contact = |p: &str| {
        (p == "+254712345678").then(|| ContactFields {
            name: Some("Fatuma".into()),
            language: Some("sw".into()),
        })
    };
    opts.contact = &contact;
    let p = preview(csv.as_bytes(), &opts).unwrap();
    assert_eq!((p.to_send, p.missing), (1, 1));
    assert_eq!(p.missing_lines[0].line, 3);
    assert_eq!(p.languages, BTreeMap::from([("sw".into(), 1)]));
}

#[test]
fn nothing_to_send_is_a_problem_with_its_reason() {
    let texts = Texts::single("en", "Hello");
    let prices = Prices::default();
    let p = run("phone,name\n", &texts, &prices, None);
    assert_eq!(p.lines, 0);
    assert!(!p.ok());
    assert!(p.problems[0].contains("no data lines"), "{:?}", p.problems);

    let p = run("phone\nabc\n+1555\n+1555\n", &texts, &prices, None);
    assert_eq!((p.lines, p.invalid, p.duplicates, p.to_send), (3, 1, 1, 1));
    assert!(p.ok());
    let p = run("phone\nabc\n", &texts, &prices, None);
    assert!(
        p.problems[0].contains("of 1 lines, 1 invalid"),
        "{:?}",
        p.problems
    );
}

#[test]
fn texts_that_do_not_fit_the_columns_fail_the_preview() {
    let texts = Texts::single("en", "Hi {first_name}");
    let prices = Prices::default();
    let err = preview(
        &b"phone,name\n+1555,A\n"[..],
        &PreviewOptions::new(&texts, &prices),
    )
    .unwrap_err();
    assert!(
        matches!(&err, PreviewError::Template(TemplateError::UnknownVariable { name, .. }) if name == "first_name"),
        "{err}"
    );
    let err = preview(
        &b"msisdn\n+1555\n"[..],
        &PreviewOptions::new(&texts, &prices),
    )
    .unwrap_err();
    assert!(matches!(err, PreviewError::Audience(_)), "{err}");
}

#[test]
fn invalid_lines_listed_are_the_first_twenty() {
    let mut csv = String::from("phone\n");
    for i in 0..50 {
        csv.push_str(if i % 2 == 0 { "bad\n" } else { "+1555\n" });
    }
    let p = run(&csv, &Texts::single("en", "x"), &Prices::default(), None);
    assert_eq!((p.invalid, p.duplicates, p.to_send), (25, 24, 1));
    let listed: Vec<u64> = p.invalid_lines.iter().map(|b| b.line).collect();
    assert_eq!(listed, (0..20).map(|i| 2 + 2 * i).collect::<Vec<u64>>());
}

#[test]
fn prepare_batch_keeps_input_order() {
    let texts = Texts::single("en", "Hi {name}");
    let recipients: Vec<Recipient> = (0..5000u64)
        .map(|i| Recipient {
            line: i + 2,
            phone: format!("+2547{i:08}"),
            language: None,
            vars: vec![(
                "name".into(),
                if i % 1000 == 7 {
                    String::new()
                } else {
                    format!("n{i}")
                },
            )],
        })
        .collect();
    let out = prepare_batch(&texts, recipients, &|_| None);
    assert_eq!(out.len(), 5000);
    for (i, r) in out.iter().enumerate() {
        match r {
            Ok(p) => {
                assert_eq!(p.recipient.line, i as u64 + 2);
                assert_eq!(p.text, format!("Hi n{i}"));
                assert_eq!(
                    (p.encoding, p.segments, p.language.as_str()),
                    (Encoding::Gsm7, 1, "en")
                );
            }
            Err(u) => {
                assert_eq!(i % 1000, 7);
                assert_eq!(u.missing.names, vec!["name"]);
            }
        }
    }
    assert_eq!(out.iter().filter(|r| r.is_err()).count(), 5);
}
