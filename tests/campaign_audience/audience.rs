//! Reading a CSV audience: RFC 4180, BOM, CRLF, bad lines, duplicates.

use std::io::{self, Read};

use smsflow::campaign::audience::{AudienceError, CsvAudience, Seen};
use smsflow::sms::numbers::Country;

use super::{lines, read_all};

#[test]
fn quoted_fields_keep_line_numbers_right() {
    let csv = b"phone,name,note\n\
+254712345678,Amina,\"two\nlines\"\n\
+254712345679,\"Otieno, Jr\",\"he said \"\"hi\"\"\"\n\
+254712345680,Wanjiru,\"three\n\nlines\"\n\
+254712345681,Kamau,last\n";
    let read = read_all(csv, None, 2);
    let (good, bad) = lines(&read);
    assert_eq!(good, vec![2, 4, 5, 8]);
    assert!(bad.is_empty());
    let r: Vec<_> = read.into_iter().map(Result::unwrap).collect();
    assert_eq!(
        r[0].vars,
        vec![
            ("name".into(), "Amina".into()),
            ("note".into(), "two\nlines".into())
        ]
    );
    assert_eq!(r[1].vars[0].1, "Otieno, Jr");
    assert_eq!(r[1].vars[1].1, "he said \"hi\"");
    assert_eq!(r[2].vars[1].1, "three\n\nlines");
    assert_eq!(r[3].phone, "+254712345681");
}

#[test]
fn bom_crlf_and_header_case_and_spaces() {
    let csv =
        "\u{FEFF}Phone , LANGUAGE,City\r\n0712345678,fr,Mombasa\r\n+254712345679,,Kisumu\r\n\r\n\
               +254712345680,sw,\"Lamu\r\nisland\"\r\n+254712345681,,\"Malindi\"\r\n";
    let mut audience = CsvAudience::new(csv.as_bytes(), Country::parse("KE")).unwrap();
    assert_eq!(audience.columns(), ["City"]);
    assert!(audience.has_language());
    let batch = audience.next_batch(10).unwrap();
    let r: Vec<_> = batch.into_iter().map(Result::unwrap).collect();
    assert_eq!(r[0].phone, "+254712345678");
    assert_eq!(r[0].language.as_deref(), Some("fr"));
    assert_eq!(r[0].vars, vec![("City".into(), "Mombasa".into())]);
    assert_eq!(r[0].line, 2);
    assert_eq!(r[1].language, None);
    assert_eq!(r[1].line, 3);
    // After a blank line, and a quoted value over two lines.
    assert_eq!((r[2].line, r[2].vars[0].1.as_str()), (5, "Lamu\r\nisland"));
    assert_eq!((r[3].line, r[3].vars[0].1.as_str()), (7, "Malindi"));
    assert_eq!(r.len(), 4);
    assert!(audience.next_batch(10).unwrap().is_empty());
}

/// Hands out one byte per read: the BOM check must not lose any.
struct Trickle<'a>(&'a [u8]);

impl Read for Trickle<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match (self.0.split_first(), buf.is_empty()) {
            (Some((b, rest)), false) => {
                buf[0] = *b;
                self.0 = rest;
                Ok(1)
            }
            _ => Ok(0),
        }
    }
}

#[test]
fn bom_is_found_across_short_reads_and_short_files() {
    for csv in ["\u{FEFF}phone\n+1555\n", "phone\n+1555\n"] {
        let mut a = CsvAudience::new(Trickle(csv.as_bytes()), None).unwrap();
        let r = a.next_batch(5).unwrap();
        assert_eq!(r.len(), 1);
        assert_eq!(r[0].as_ref().unwrap().phone, "+1555");
    }
    // A file that is only a BOM, or shorter than one, is an empty audience.
    for csv in [&b"\xEF\xBB\xBF"[..], b"", b"\xEF"] {
        let a = CsvAudience::new(Trickle(csv), None);
        match a {
            Ok(mut a) => assert!(a.next_batch(5).unwrap().is_empty()),
            // One byte that is not UTF-8 is a header that is not UTF-8.
            Err(e) => assert!(matches!(e, AudienceError::HeaderNotUtf8 { .. }) && csv == b"\xEF"),
        }
    }
}

#[test]
fn bad_lines_are_reported_and_the_rest_read() {
    let mut csv = b"phone,name\n\
+254712345678,Amina\n\
+254712345679\n\
+254712345680,Otieno,extra\n\
,Nobody\n\
07x12,Typo\n\
+254712345681,"
        .to_vec();
    csv.extend_from_slice(b"Wanj\xFFiru\n+254712345682,Kamau\n12345,Short\n0712345683,National\n");
    let read = read_all(&csv, Some("KE"), 100);
    let (good, bad) = lines(&read);
    assert_eq!(good, vec![2, 8, 10]);
    assert_eq!(bad, vec![3, 4, 5, 6, 7, 9]);
    let reasons: Vec<&str> = read
        .iter()
        .filter_map(|r| r.as_ref().err())
        .map(|b| b.reason.as_str())
        .collect();
    assert_eq!(reasons[0], "wrong column count: expected 2, got 1");
    assert_eq!(reasons[1], "wrong column count: expected 2, got 3");
    assert_eq!(reasons[2], "empty phone");
    assert!(
        reasons[3].starts_with("invalid number \"07x12\""),
        "{}",
        reasons[3]
    );
    assert!(
        reasons[4].starts_with("invalid UTF-8 in column \"name\": byte 4 of its value"),
        "{}",
        reasons[4]
    );
    let start = csv
        .windows(14)
        .position(|w| w == b"+254712345681,")
        .unwrap();
    assert!(
        reasons[4].ends_with(&format!("(the line starts at byte {start} of the file)")),
        "{}",
        reasons[4]
    );
    // A short code is no recipient of a campaign with a region.
    assert!(
        reasons[5].starts_with("invalid number \"12345\": not a valid number"),
        "{}",
        reasons[5]
    );
}

#[test]
fn invalid_utf8_byte_offset_counts_the_bom() {
    let csv = b"\xEF\xBB\xBFphone,name\n+15550100,\xC3\n";
    let read = read_all(csv, None, 10);
    let reason = &read[0].as_ref().unwrap_err().reason;
    assert!(
        reason.ends_with("(the line starts at byte 14 of the file)"),
        "{reason}"
    );
}

#[test]
fn empty_file_and_header_alone_are_audiences_of_nobody() {
    for csv in [&b""[..], b"phone,name\n", b"\xEF\xBB\xBFphone\r\n"] {
        let mut a = CsvAudience::new(csv, None).unwrap();
        assert!(a.next_batch(10).unwrap().is_empty());
        assert!(a.next_batch(10).unwrap().is_empty());
    }
}

#[test]
fn header_problems_are_errors_naming_the_columns() {
    let err = CsvAudience::new(&b"msisdn,name\n+1555,x\n"[..], None)
        .err()
        .unwrap();
    assert!(
        matches!(&err, AudienceError::NoPhoneColumn { columns } if columns == &["msisdn", "name"])
    );
    assert!(err.to_string().contains("[\"msisdn\", \"name\"]"), "{err}");

    let err = CsvAudience::new(&b"phone,PHONE\n"[..], None).err().unwrap();
    assert!(
        matches!(
            err,
            AudienceError::DuplicateColumn {
                first: 1,
                second: 2,
                ..
            }
        ),
        "{err}"
    );
    let err = CsvAudience::new(&b"phone,city,city\n"[..], None)
        .err()
        .unwrap();
    assert!(
        matches!(
            err,
            AudienceError::DuplicateColumn {
                first: 2,
                second: 3,
                ..
            }
        ),
        "{err}"
    );

    let err = CsvAudience::new(&b"phone,ci\xFFty\n"[..], None)
        .err()
        .unwrap();
    assert!(
        matches!(
            err,
            AudienceError::HeaderNotUtf8 {
                column: 2,
                offset: 2
            }
        ),
        "{err}"
    );
}

/// Fails after handing out `good`.
struct Broken<'a>(&'a [u8]);

impl Read for Broken<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.0.is_empty() {
            return Err(io::Error::other("connection reset"));
        }
        let n = buf.len().min(self.0.len());
        buf[..n].copy_from_slice(&self.0[..n]);
        self.0 = &self.0[n..];
        Ok(n)
    }
}

#[test]
fn an_input_that_fails_is_an_error_not_an_end() {
    let mut a = CsvAudience::new(Broken(b"phone\n+1555\n+1556\n"), None).unwrap();
    let err = a.next_batch(10).unwrap_err();
    assert!(matches!(err, AudienceError::Io(_)), "{err}");
    assert!(err.to_string().contains("connection reset"), "{err}");
}

#[test]
fn a_trailing_empty_header_cell_names_no_variable() {
    let read = read_all(b"phone,city,\n+1555,Nairobi,\n", None, 10);
    assert_eq!(
        read[0].as_ref().unwrap().vars,
        vec![("city".into(), "Nairobi".into())]
    );
}

#[test]
fn ke_numbers_written_three_ways_are_one_recipient() {
    let csv = b"phone\n+254712345678\n254712345678\n0712345678\n0712 345 679\n";
    let read = read_all(csv, Some("KE"), 10);
    let phones: Vec<String> = read.into_iter().map(|r| r.unwrap().phone).collect();
    assert_eq!(
        phones[..3],
        ["+254712345678", "+254712345678", "+254712345678"]
    );
    let mut seen = Seen::new();
    let firsts: Vec<bool> = phones.iter().map(|p| seen.first(p)).collect();
    assert_eq!(firsts, [true, false, false, true]);
    assert_eq!(seen.len(), 2);
}

#[test]
fn seen_tells_apart_what_differs() {
    let mut seen = Seen::new();
    // Without a region numbers stay as cleaned: a leading 0 is a digit.
    assert!(seen.first("0712345678"));
    assert!(seen.first("712345678"));
    assert!(!seen.first("0712345678"));
    // The + is dropped: the same digits are the same number.
    assert!(seen.first("+15550100"));
    assert!(!seen.first("15550100"));
    // Longer than 17 digits: kept as text, still found again.
    assert!(seen.first("123456789012345678901"));
    assert!(!seen.first("+123456789012345678901"));
    assert!(seen.first("12345678901234567"));
    assert!(seen.first("99999999999999999"));
    assert!(!seen.first("99999999999999999"));
    assert_eq!(seen.len(), 6);
}
