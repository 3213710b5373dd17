//! SMS facts: which alphabet a text needs and how many segments it takes.

use crate::message::Encoding;

/// GSM 03.38 default alphabet (one septet each).
const GSM7_BASIC: &str = "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà";
/// GSM 03.38 extension table (escape + char: two septets each).
const GSM7_EXTENSION: &str = "\u{000C}^{}\\[~]|€";

/// The encoding `text` needs and the number of SMS segments it takes:
/// GSM-7 160 septets single / 153 per part, UCS-2 70 units single / 67 per part.
/// Parts never split an escape sequence or a surrogate pair.
pub fn analyze(text: &str) -> (Encoding, i32) {
    let mut septets = Vec::with_capacity(text.len());
    for c in text.chars() {
        if GSM7_BASIC.contains(c) {
            septets.push(1);
        } else if GSM7_EXTENSION.contains(c) {
            septets.push(2);
        } else {
            let units: Vec<u16> = text.encode_utf16().collect();
            let widths = text.chars().map(|c| c.len_utf16());
            return (Encoding::Ucs2, segments(units.len(), widths, 70, 67));
        }
    }
    let total: usize = septets.iter().sum();
    (
        Encoding::Gsm7,
        segments(total, septets.into_iter(), 160, 153),
    )
}

fn segments(total: usize, widths: impl Iterator<Item = usize>, single: usize, part: usize) -> i32 {
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
}
