//! The GSM 7-bit default alphabet as the radio carries it (3GPP TS 23.038):
//! characters to septet codes and back, and septets packed into octets.
//!
//! The characters themselves are the alphabets of [`crate::sms`], so that
//! what counts as GSM-7 when counting segments is exactly what is encoded
//! here. Nothing in this file panics, whatever its input: a PDU from a modem
//! is outside data.

use crate::sms::{GSM7_BASIC, GSM7_EXTENSION};

/// The escape code: the next septet is read in the extension table.
pub const ESCAPE: u8 = 0x1B;

/// The extension table's codes, in the order of the characters of
/// `GSM7_EXTENSION` (`\f ^ { } \ [ ~ ] | €`).
const EXTENSION_CODES: [u8; 10] = [0x0A, 0x14, 0x28, 0x29, 0x2F, 0x3C, 0x3D, 0x3E, 0x40, 0x65];

/// Appends the septets of `c` to `septets`: one code from the basic table,
/// or [`ESCAPE`] and a code from the extension table. Returns how many were
/// appended, `None` (and appends nothing) if `c` is not in GSM-7.
pub fn push_char(c: char, septets: &mut Vec<u8>) -> Option<usize> {
    if let Some(code) = basic_code(c) {
        septets.push(code);
        return Some(1);
    }
    let at = GSM7_EXTENSION.chars().position(|e| e == c)?;
    let code = *EXTENSION_CODES.get(at)?;
    septets.extend([ESCAPE, code]);
    Some(2)
}

/// The septets of `text`, `None` if one of its characters is not in GSM-7
/// (the text then has to go as UCS-2).
pub fn to_septets(text: &str) -> Option<Vec<u8>> {
    let mut septets = Vec::with_capacity(text.len());
    for c in text.chars() {
        push_char(c, &mut septets)?;
    }
    Some(septets)
}

/// The text of `septets` (each taken modulo 128). An escape followed by a
/// code the extension table does not define stands for that code's basic
/// character, as 23.038 asks of a receiver; two escapes in a row (the code
/// reserved for a further table) read as a space; an escape at the very end
/// is ignored.
pub fn to_text(septets: &[u8]) -> String {
    let mut text = String::with_capacity(septets.len());
    let mut codes = septets.iter().map(|s| s & 0x7F);
    while let Some(code) = codes.next() {
        if code != ESCAPE {
            text.extend(basic_char(code));
            continue;
        }
        match codes.next() {
            Some(ESCAPE) => text.push(' '),
            Some(code) => text.extend(extension_char(code).or_else(|| basic_char(code))),
            None => {}
        }
    }
    text
}

/// Packs `septets` into octets, least significant bit first, after
/// `fill_bits` zero bits (taken modulo 7: fewer than a septet by definition).
/// The fill bits align the first septet after a user data header.
pub fn pack(septets: &[u8], fill_bits: usize) -> Vec<u8> {
    let fill = fill_bits % 7;
    let mut octets = vec![0u8; (fill + septets.len() * 7).div_ceil(8)];
    for (i, septet) in septets.iter().enumerate() {
        for b in 0..7 {
            let bit = fill + i * 7 + b;
            if let Some(octet) = octets.get_mut(bit / 8) {
                *octet |= ((septet >> b) & 1) << (bit % 8);
            }
        }
    }
    octets
}

/// Unpacks `count` septets from `octets`, skipping `fill_bits` (taken
/// modulo 7) first. Returns fewer if the octets run out: the caller, who
/// knows what the length field promised, decides whether that is an error.
pub fn unpack(octets: &[u8], fill_bits: usize, count: usize) -> Vec<u8> {
    let fill = fill_bits % 7;
    let available = (octets.len() * 8).saturating_sub(fill) / 7;
    (0..count.min(available))
        .map(|i| {
            (0..7).fold(0u8, |septet, b| {
                let bit = fill + i * 7 + b;
                let octet = octets.get(bit / 8).copied().unwrap_or(0);
                septet | (((octet >> (bit % 8)) & 1) << b)
            })
        })
        .collect()
}

/// Zero bits between a user data header of `header_octets` (its length
/// octet included) and the first septet, which starts on a septet boundary.
pub fn fill_bits(header_octets: usize) -> usize {
    // (octets × 8) mod 7, without the product overflowing.
    let header_bits = (header_octets % 7) * 8;
    (7 - header_bits % 7) % 7
}

/// The basic table's code of `c`. The shared alphabet leaves out the escape
/// code 0x1B itself, so the characters after it sit one place further on.
fn basic_code(c: char) -> Option<u8> {
    let at = GSM7_BASIC.chars().position(|b| b == c)?;
    let code = if at >= usize::from(ESCAPE) {
        at + 1
    } else {
        at
    };
    u8::try_from(code).ok()
}

/// The basic table's character for `code` (not [`ESCAPE`]).
fn basic_char(code: u8) -> Option<char> {
    let at = if code > ESCAPE { code - 1 } else { code };
    GSM7_BASIC.chars().nth(usize::from(at))
}

/// The extension table's character for `code`, if it defines one.
fn extension_char(code: u8) -> Option<char> {
    let at = EXTENSION_CODES.iter().position(|&e| e == code)?;
    GSM7_EXTENSION.chars().nth(at)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hex(bytes: &[u8]) -> String {
        bytes.iter().map(|b| format!("{b:02X}")).collect()
    }

    #[test]
    fn the_alphabets_have_the_expected_sizes() {
        // 128 codes, one of them the escape, which the alphabet leaves out.
        assert_eq!(GSM7_BASIC.chars().count(), 127);
        assert_eq!(GSM7_EXTENSION.chars().count(), EXTENSION_CODES.len());
        assert_eq!(basic_code('@'), Some(0x00));
        assert_eq!(basic_code('Ξ'), Some(0x1A));
        assert_eq!(basic_code('Æ'), Some(0x1C));
        assert_eq!(basic_code('§'), Some(0x5F));
        assert_eq!(basic_code('à'), Some(0x7F));
        assert_eq!(to_septets("€"), Some(vec![ESCAPE, 0x65]));
        assert_eq!(to_septets("\u{1B}"), None);
    }

    #[test]
    fn every_code_reads_back_as_the_character_it_encodes() {
        for c in GSM7_BASIC.chars().chain(GSM7_EXTENSION.chars()) {
            let septets = to_septets(&c.to_string()).unwrap();
            assert_eq!(to_text(&septets), c.to_string(), "{c:?}");
        }
        assert_eq!(to_septets("✓"), None);
        assert_eq!(to_septets("a😀"), None);
    }

    #[test]
    fn packs_the_v1_payload() {
        let septets = to_septets("Hello [€]").unwrap();
        assert_eq!(septets.len(), 12);
        assert_eq!(hex(&pack(&septets, 0)), "C8329BFD066D789BF2C607");
        assert_eq!(to_text(&unpack(&pack(&septets, 0), 0, 12)), "Hello [€]");
    }

    #[test]
    fn unpacks_exactly_the_count_asked() {
        // "Smsflow" is 7 septets in 7 octets: an eighth would read as '@'.
        let octets = [0xD3, 0xF6, 0xDC, 0xCC, 0x7E, 0xDF, 0x01];
        assert_eq!(to_text(&unpack(&octets, 0, 7)), "Smsflow");
        assert_eq!(unpack(&octets, 0, 8).len(), 8);
        assert_eq!(unpack(&octets, 0, 100).len(), 8);
        assert_eq!(unpack(&[], 3, usize::MAX), Vec::<u8>::new());
    }

    #[test]
    fn pack_and_unpack_agree_for_every_fill() {
        let septets: Vec<u8> = (0..=127).chain((0..40).map(|i| i * 3)).collect();
        for fill in 0..7 {
            for len in [0, 1, 7, 8, 9, 153, septets.len()] {
                let part = &septets[..len];
                let octets = pack(part, fill);
                assert_eq!(octets.len(), (fill + len * 7).div_ceil(8));
                assert_eq!(unpack(&octets, fill, len), part, "fill {fill} len {len}");
            }
        }
        // After an 8-bit concatenation header (6 octets), one fill bit; after
        // a 16-bit one (7 octets), none. The fill bits are zero.
        assert_eq!((fill_bits(0), fill_bits(6), fill_bits(7)), (0, 1, 0));
        assert_eq!((fill_bits(13), fill_bits(14)), (1, 0));
        assert!(fill_bits(usize::MAX) < 7);
        assert_eq!(pack(&[0x7F], 1), [0xFE]);
        assert_eq!(pack(&[0x7F], 8), pack(&[0x7F], 1));
    }

    #[test]
    fn escapes_read_as_23_038_asks() {
        // An extension code the table does not define (0x41) reads as its
        // basic character ('A').
        assert_eq!(to_text(&[ESCAPE, 0x41]), "A");
        assert_eq!(to_text(&[ESCAPE, ESCAPE, 0x41]), " A");
        assert_eq!(to_text(&[0x41, ESCAPE]), "A");
        assert_eq!(to_text(&[0xC1]), "A");
        assert_eq!(to_text(&[]), "");
    }
}
