//! Phone numbers as sources take them in: cleaned, checked, and rewritten to
//! E.164 where the backend's country rules allow (libphonenumber's metadata,
//! through the `phonenumber` crate).

use phonenumber::country::Id;
use phonenumber::Mode;

/// A country whose national numbers a backend rewrites to E.164.
#[derive(Debug, Clone, Copy)]
pub struct Country(Id);

impl Country {
    /// An ISO 3166 alpha-2 code (`TZ`, `us`), or `None` when it is not one.
    pub fn parse(code: &str) -> Option<Country> {
        let code = code.trim().to_ascii_uppercase();
        // The crate also knows a few non-country ids (`001`): only two letters.
        if code.len() != 2 {
            return None;
        }
        code.parse().ok().map(Country)
    }
}

/// Why a number was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{raw:?} is not a phone number: expected digits with an optional leading + (spaces, dashes, dots and parentheses are ignored), at most 20 digits")]
pub struct InvalidNumber {
    pub raw: String,
}

/// Numbers this short are short codes, never rewritten (as Vumi's
/// `normalize_msisdn`).
const SHORT_CODE: usize = 5;

/// Clean `raw` (drop spaces, `-`, `.`, `(`, `)`; a leading `00` becomes `+`)
/// and check it is an optional `+` and 1 to 20 digits. With a `country`, a
/// number without `+` that libphonenumber reads as a valid number of that
/// country (national, such as `0712 345 678`, or international without the
/// `+`, such as `255712345678`) becomes E.164 (`+255712345678`); anything
/// else (a short code, an unknown range) is kept as cleaned.
pub fn normalize(raw: &str, country: Option<Country>) -> Result<String, InvalidNumber> {
    let invalid = || InvalidNumber {
        raw: raw.to_owned(),
    };
    let mut cleaned: String = raw
        .trim()
        .chars()
        .filter(|c| !matches!(c, ' ' | '-' | '.' | '(' | ')'))
        .collect();
    if let Some(rest) = cleaned.strip_prefix("00") {
        cleaned = format!("+{rest}");
    }
    let digits = cleaned.strip_prefix('+').unwrap_or(&cleaned);
    if digits.is_empty() || digits.len() > 20 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err(invalid());
    }
    let international = cleaned.starts_with('+');
    let Some(Country(id)) = country else {
        return Ok(cleaned);
    };
    if international || digits.len() <= SHORT_CODE {
        return Ok(cleaned);
    }
    // Read as a national number first; then as an international one that
    // lacks its `+` (Kannel passes the SMSC's `255...` as it is).
    for candidate in [cleaned.clone(), format!("+{cleaned}")] {
        if let Ok(n) = phonenumber::parse(Some(id), &candidate) {
            if phonenumber::is_valid(&n) {
                return Ok(n.format().mode(Mode::E164).to_string());
            }
        }
    }
    Ok(cleaned)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tz() -> Option<Country> {
        Country::parse("tz")
    }

    #[test]
    fn national_and_bare_international_numbers_become_e164() {
        assert_eq!(normalize("0712 345 678", tz()).unwrap(), "+255712345678");
        assert_eq!(normalize("255712345678", tz()).unwrap(), "+255712345678");
        assert_eq!(normalize("00255712345678", tz()).unwrap(), "+255712345678");
        assert_eq!(
            normalize("(415) 867-5309", Country::parse("US")).unwrap(),
            "+14158675309"
        );
    }

    #[test]
    fn short_codes_unknown_ranges_and_no_country_are_kept_cleaned() {
        assert_eq!(normalize("15000", tz()).unwrap(), "15000");
        assert_eq!(normalize("+1 555 0100", tz()).unwrap(), "+15550100");
        assert_eq!(normalize("0712-345-678", None).unwrap(), "0712345678");
        assert_eq!(normalize("123456789", tz()).unwrap(), "123456789");
    }

    #[test]
    fn non_numbers_are_refused() {
        for bad in ["", "+", "abc", "12a4", "++1", "1".repeat(21).as_str()] {
            assert!(normalize(bad, tz()).is_err(), "{bad:?}");
        }
        assert!(Country::parse("XX").is_none());
        assert!(Country::parse("001").is_none());
        assert!(Country::parse("ke").is_some());
    }
}
