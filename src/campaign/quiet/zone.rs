//! A recipient's time zone: their contact's (or CSV row's) own, else their
//! number's country's when it has one zone, else the campaign's default.

use chrono_tz::Tz;
use phonenumber::metadata::DATABASE;

use super::zones::SINGLE_ZONE;

/// An IANA time zone name (`Africa/Nairobi`, `Europe/London`, `UTC`), read
/// exactly as the tz database spells it; surrounding spaces are ignored.
pub fn parse_zone(name: &str) -> Result<Tz, String> {
    let trimmed = name.trim();
    if trimmed.is_empty() {
        return Err(
            "the time zone is empty: expected an IANA name such as Africa/Nairobi or Europe/London"
                .to_owned(),
        );
    }
    trimmed.parse::<Tz>().map_err(|_| {
        format!(
            "{name:?} is not a time zone: expected an IANA name such as Africa/Nairobi or \
             Europe/London (case matters; see the tz database's zone list)"
        )
    })
}

/// The one time zone of the country a number in E.164 (`+254712345678`)
/// belongs to, by libphonenumber's metadata; `None` for a number without
/// its `+` and country code, a non-geographic one (`+800`), or a country
/// whose zones differ (the United States, Brazil, Russia, ...).
pub fn country_zone(phone_e164: &str) -> Option<Tz> {
    let digits = phone_e164.trim().strip_prefix('+')?;
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    // Country calling codes are 1 to 3 digits and none is the start of
    // another, so the first prefix the metadata knows is the number's code.
    let regions = (1..=3).find_map(|len| {
        let code: u16 = digits.get(..len)?.parse().ok()?;
        DATABASE.region(&code)
    })?;
    match regions[..] {
        // Most codes are one country's: no need to parse the whole number
        // (which costs microseconds, a second or more per million).
        [only] => single_zone(only),
        // +1, +44, +7, ...: the number's range tells the country.
        _ => {
            let number = phonenumber::parse(None, phone_e164.trim()).ok()?;
            single_zone(number.country().id()?.as_ref())
        }
    }
}

/// The zone of a country (`KE`) if it has one, from the generated table.
fn single_zone(code: &str) -> Option<Tz> {
    let i = SINGLE_ZONE.binary_search_by(|(c, _)| (*c).cmp(code)).ok()?;
    // Every name in the table parses (checked by a test); `ok()` keeps a
    // bad regeneration from panicking all the same.
    SINGLE_ZONE[i].1.parse().ok()
}

/// The zone quiet hours and daily caps are counted in for a recipient:
///
/// 1. `contact_zone` (a contact field or the CSV's `timezone` column) when it
///    is a valid IANA name; an invalid one is passed over, never an error
///    (the preview reports those, through [`parse_zone`]);
/// 2. else the zone of the number's country, if it has exactly one;
/// 3. else `default`, the campaign's zone.
pub fn zone_for(phone_e164: &str, contact_zone: Option<&str>, default: Tz) -> Tz {
    contact_zone
        .and_then(|name| parse_zone(name).ok())
        .or_else(|| country_zone(phone_e164))
        .unwrap_or(default)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every zone the generated table names must be one chrono-tz knows,
    /// and the table must be sorted by code without repeats (the lookup is a
    /// binary search).
    fn check_table(table: &[(&str, &str)]) -> Result<(), String> {
        for pair in table.windows(2) {
            if pair[0].0 >= pair[1].0 {
                return Err(format!("{} before {}: not sorted", pair[0].0, pair[1].0));
            }
        }
        for (code, name) in table {
            if code.len() != 2 || !code.bytes().all(|b| b.is_ascii_uppercase()) {
                return Err(format!("{code:?} is not an ISO 3166 alpha-2 code"));
            }
            parse_zone(name).map_err(|e| format!("{code}: {e}"))?;
        }
        Ok(())
    }

    #[test]
    fn every_zone_in_the_table_is_known_and_sorted() {
        check_table(SINGLE_ZONE).unwrap();
        assert!(SINGLE_ZONE.len() > 200, "{} countries", SINGLE_ZONE.len());
    }

    #[test]
    fn a_broken_table_fails_the_check() {
        let misspelt = [("GB", "Europe/London"), ("KE", "Africa/Nairobbi")];
        let err = check_table(&misspelt).unwrap_err();
        assert!(
            err.contains("KE") && err.contains("Africa/Nairobbi"),
            "{err}"
        );
        let unsorted = [("KE", "Africa/Nairobi"), ("GB", "Europe/London")];
        assert!(check_table(&unsorted).unwrap_err().contains("not sorted"));
        let repeated = [("GB", "Europe/London"), ("GB", "Europe/London")];
        assert!(check_table(&repeated).is_err());
    }

    #[test]
    fn parse_zone_names_what_was_wrong() {
        assert_eq!(parse_zone(" Africa/Nairobi "), Ok(Tz::Africa__Nairobi));
        assert_eq!(parse_zone("UTC"), Ok(Tz::UTC));
        let err = parse_zone("Mars/Olympus_Mons").unwrap_err();
        assert!(
            err.contains("\"Mars/Olympus_Mons\" is not a time zone"),
            "{err}"
        );
        assert!(parse_zone("europe/london").is_err());
        assert!(parse_zone("  ").unwrap_err().contains("empty"));
    }

    #[test]
    fn a_country_with_one_zone_gives_it() {
        assert_eq!(country_zone("+254712345678"), Some(Tz::Africa__Nairobi));
        assert_eq!(country_zone("+442079460123"), Some(Tz::Europe__London));
        // libphonenumber places +44 7911 in Guernsey (its own zone name,
        // London's clock).
        assert_eq!(country_zone("+447911123456"), Some(Tz::Europe__Guernsey));
        assert_eq!(country_zone("+4915123456789"), Some(Tz::Europe__Berlin));
        assert_eq!(
            country_zone("+255712345678"),
            Some(Tz::Africa__Dar_es_Salaam)
        );
        // +1 876 is Jamaica, not the United States; +7 7 is Kazakhstan.
        assert_eq!(country_zone("+18765551234"), Some(Tz::America__Jamaica));
        assert_eq!(country_zone("+77012345678"), Some(Tz::Asia__Almaty));
        // Three-digit codes: Tanzania, Fiji.
        assert_eq!(country_zone("+6797012345"), Some(Tz::Pacific__Fiji));
    }

    /// The short cut for one-country codes gives what parsing the whole
    /// number would, for a number under every calling code.
    #[test]
    fn the_calling_code_short_cut_agrees_with_a_full_parse() {
        let mut compared = 0;
        for code in 1..=999u16 {
            if DATABASE.region(&code).is_none() {
                continue;
            }
            for national in ["712345678", "2012345678", "5551234"] {
                let phone = format!("+{code}{national}");
                let Ok(number) = phonenumber::parse(None, &phone) else {
                    continue;
                };
                let full = number
                    .country()
                    .id()
                    .and_then(|id| single_zone(id.as_ref()));
                assert_eq!(country_zone(&phone), full, "{phone}");
                compared += 1;
            }
        }
        assert!(compared > 500, "{compared} numbers compared");
    }

    #[test]
    fn a_country_with_several_zones_or_no_country_gives_none() {
        assert_eq!(country_zone("+12125551234"), None, "United States");
        assert_eq!(country_zone("+5511987654321"), None, "Brazil");
        assert_eq!(country_zone("+79161234567"), None, "Russia");
        assert_eq!(country_zone("0712345678"), None, "no country code");
        assert_eq!(country_zone("not a number"), None);
        assert_eq!(country_zone(""), None);
        assert_eq!(country_zone("+80012345678"), None, "non-geographic");
        assert_eq!(country_zone("+999123"), None, "no such country code");
        assert_eq!(country_zone("+254 712"), None, "not E.164");
        assert_eq!(country_zone("+"), None);
    }

    #[test]
    fn zone_for_prefers_the_contact_then_the_country_then_the_default() {
        let default = Tz::America__New_York;
        let kenyan = "+254712345678";
        assert_eq!(
            zone_for(kenyan, Some("Europe/London"), default),
            Tz::Europe__London
        );
        assert_eq!(zone_for(kenyan, None, default), Tz::Africa__Nairobi);
        // An invalid or empty contact zone falls back, without an error.
        assert_eq!(
            zone_for(kenyan, Some("Nairobi time"), default),
            Tz::Africa__Nairobi
        );
        assert_eq!(zone_for(kenyan, Some(""), default), Tz::Africa__Nairobi);
        assert_eq!(zone_for("+12125551234", None, default), default);
        assert_eq!(
            zone_for("+12125551234", Some("America/Los_Angeles"), default),
            Tz::America__Los_Angeles
        );
        assert_eq!(zone_for("garbage", Some("bogus"), default), default);
    }
}
