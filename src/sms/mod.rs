//! SMS facts every layer shares, with no dependency on the rest of smsflow:
//! which alphabet a text needs and how many segments it takes (here),
//! phone numbers ([`numbers`]), keyword and pattern rules ([`keyword`],
//! [`pattern`]) and text templates ([`template`]).

pub mod keyword;
pub mod numbers;
pub mod pattern;
pub mod template;

use serde::{Deserialize, Serialize};

/// The alphabet an SMS text needs (GSM 03.38 default alphabet or UCS-2).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Encoding {
    Gsm7,
    Ucs2,
}

/// GSM 03.38 default alphabet (one septet each).
pub(crate) const GSM7_BASIC: &str = "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà";
/// GSM 03.38 extension table (escape + char: two septets each).
pub(crate) const GSM7_EXTENSION: &str = "\u{000C}^{}\\[~]|€";

/// Septets of each character below U+0400 (Latin-1 and Greek): 1 in the
/// basic alphabet, 2 in the extension table, 0 not in GSM-7. Built from the
/// two alphabets above when compiling; `€` is the only GSM-7 character past it.
static SEPTETS: [u8; 0x400] = septets_table();

const fn septets_table() -> [u8; 0x400] {
    let mut table = [0; 0x400];
    mark(&mut table, GSM7_BASIC, 1);
    mark(&mut table, GSM7_EXTENSION, 2);
    table
}

const fn mark(table: &mut [u8; 0x400], alphabet: &str, septets: u8) {
    let bytes = alphabet.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        // UTF-8 by hand: `chars()` is not available in a const fn. The
        // alphabets hold no character past U+FFFF, so at most 3 bytes.
        let b = bytes[i] as u32;
        let (c, len) = if b < 0x80 {
            (b, 1)
        } else if b < 0xE0 {
            (((b & 0x1F) << 6) | (bytes[i + 1] as u32 & 0x3F), 2)
        } else {
            let c = ((b & 0x0F) << 12)
                | ((bytes[i + 1] as u32 & 0x3F) << 6)
                | (bytes[i + 2] as u32 & 0x3F);
            (c, 3)
        };
        if c < 0x400 {
            table[c as usize] = septets;
        } else if c != '€' as u32 {
            panic!("a GSM-7 character past U+03FF other than €: extend `septets`");
        }
        i += len;
    }
}

/// Septets `c` takes in GSM-7, 0 if it has none.
fn septets(c: char) -> usize {
    match SEPTETS.get(c as usize) {
        Some(&n) => n as usize,
        None if c == '€' => 2,
        None => 0,
    }
}

/// The encoding `text` needs and the number of SMS segments it takes:
/// GSM-7 160 septets single / 153 per part, UCS-2 70 units single / 67 per part.
/// Parts never split an escape sequence or a surrogate pair.
pub fn analyze(text: &str) -> (Encoding, i32) {
    let mut gsm7 = Segments::new(160, 153);
    for c in text.chars() {
        match septets(c) {
            0 => {
                let mut ucs2 = Segments::new(70, 67);
                for c in text.chars() {
                    ucs2.add(c.len_utf16());
                }
                return (Encoding::Ucs2, ucs2.count());
            }
            n => gsm7.add(n),
        }
    }
    (Encoding::Gsm7, gsm7.count())
}

/// Counts segments as characters of a given width come: one if all of them
/// fit a single message, otherwise as many parts as they fill, a character
/// never split between two.
struct Segments {
    single: usize,
    part: usize,
    total: usize,
    parts: i32,
    used: usize,
}

impl Segments {
    fn new(single: usize, part: usize) -> Self {
        Segments {
            single,
            part,
            total: 0,
            parts: 1,
            used: 0,
        }
    }

    fn add(&mut self, width: usize) {
        self.total += width;
        if self.used + width > self.part {
            self.parts += 1;
            self.used = 0;
        }
        self.used += width;
    }

    fn count(&self) -> i32 {
        if self.total <= self.single {
            1
        } else {
            self.parts
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gsm7_and_ucs2_segments() {
        assert_eq!(analyze(""), (Encoding::Gsm7, 1));
        assert_eq!(analyze(&"a".repeat(160)), (Encoding::Gsm7, 1));
        assert_eq!(analyze(&"a".repeat(161)), (Encoding::Gsm7, 2));
        assert_eq!(analyze(&"a".repeat(306)), (Encoding::Gsm7, 2));
        assert_eq!(analyze(&"a".repeat(307)), (Encoding::Gsm7, 3));
        // Extension characters take two septets.
        assert_eq!(analyze(&"€".repeat(80)), (Encoding::Gsm7, 1));
        assert_eq!(analyze(&"€".repeat(81)), (Encoding::Gsm7, 2));
        assert_eq!(analyze("héllo"), (Encoding::Gsm7, 1));
        assert_eq!(analyze("hello ✓"), (Encoding::Ucs2, 1));
        assert_eq!(analyze(&"ж".repeat(70)), (Encoding::Ucs2, 1));
        assert_eq!(analyze(&"ж".repeat(71)), (Encoding::Ucs2, 2));
        // 34 emoji = 68 units: one 67-unit part cannot hold the 34th pair.
        assert_eq!(analyze(&"😀".repeat(34)), (Encoding::Ucs2, 1));
        assert_eq!(analyze(&"😀".repeat(36)), (Encoding::Ucs2, 2));
    }

    #[test]
    fn septets_are_the_alphabets() {
        for c in (0..=char::MAX as u32).filter_map(char::from_u32) {
            let expected = if GSM7_BASIC.contains(c) {
                1
            } else if GSM7_EXTENSION.contains(c) {
                2
            } else {
                0
            };
            assert_eq!(septets(c), expected, "{c:?}");
        }
    }

    /// The first version: plain, allocating, slow. `analyze` must agree.
    fn reference(text: &str) -> (Encoding, i32) {
        fn segments(total: usize, widths: Vec<usize>, single: usize, part: usize) -> i32 {
            if total <= single {
                return 1;
            }
            let (mut count, mut used) = (1, 0);
            for w in widths {
                if used + w > part {
                    count += 1;
                    used = 0;
                }
                used += w;
            }
            count
        }
        let mut septets = Vec::new();
        for c in text.chars() {
            if GSM7_BASIC.contains(c) {
                septets.push(1);
            } else if GSM7_EXTENSION.contains(c) {
                septets.push(2);
            } else {
                let widths: Vec<usize> = text.chars().map(|c| c.len_utf16()).collect();
                return (
                    Encoding::Ucs2,
                    segments(widths.iter().sum(), widths, 70, 67),
                );
            }
        }
        (
            Encoding::Gsm7,
            segments(septets.iter().sum(), septets, 160, 153),
        )
    }

    #[test]
    fn agrees_with_the_reference() {
        let pool: Vec<char> = "aZ9 @£€{}[]^~|\\\n\rΔΩçÇ✓ж😀🎉\u{C}".chars().collect();
        // A fixed pseudo-random sequence (xorshift): lengths 0 to 500.
        let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
        let mut next = |n: usize| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x % n as u64) as usize
        };
        for _ in 0..5000 {
            let len = next(500);
            // Mostly GSM-7, now and then anything from the pool.
            let text: String = (0..len)
                .map(|_| {
                    if next(100) == 0 {
                        pool[next(pool.len())]
                    } else {
                        pool[next(14)]
                    }
                })
                .collect();
            assert_eq!(analyze(&text), reference(&text), "{text:?}");
        }
    }

    #[test]
    fn parts_never_split_a_character() {
        // 152 septets then an escape: the escape starts part 2.
        let text = format!("{}€{}", "a".repeat(152), "a".repeat(10));
        assert_eq!(analyze(&text), (Encoding::Gsm7, 2));
        let text = format!("{}€{}", "a".repeat(152), "a".repeat(152));
        assert_eq!(analyze(&text), (Encoding::Gsm7, 3));
        // A non-GSM character at the end makes the whole text UCS-2.
        let text = format!("{}✓", "a".repeat(69));
        assert_eq!(analyze(&text), (Encoding::Ucs2, 1));
        let text = format!("{}✓", "a".repeat(70));
        assert_eq!(analyze(&text), (Encoding::Ucs2, 2));
        // 66 units then an emoji (2 units): it starts part 2.
        let text = format!("{}😀{}", "a".repeat(66), "a".repeat(10));
        assert_eq!(analyze(&text), (Encoding::Ucs2, 2));
    }
}
