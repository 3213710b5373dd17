//! The PDUs only a modem's side writes: SMS-DELIVERs (a phone's message as
//! the network hands it over) and SMS-STATUS-REPORTs, in hex as a modem
//! gives them to the host: the service centre's address first.
//!
//! A DELIVER's user data is taken from [`pdu::submit`]'s parts, so a text
//! is cut and encoded exactly as smsflow sends it (GSM-7 with escapes or
//! UCS-2, parts counted as `crate::sms::analyze` counts them).

use chrono::{DateTime, Datelike, FixedOffset, Timelike};

use crate::modem::pdu::{self, gsm7, PduError};

/// TP-MTI of a DELIVER and a STATUS-REPORT, with TP-MMS (no more messages
/// waiting), as D1 and S1 of research note 18 have them.
const FIRST_DELIVER: u8 = 0x04;
const FIRST_STATUS_REPORT: u8 = 0x06;
const HEADER_INDICATOR: u8 = 0x40;

/// The SCA field for `smsc` (`+` and digits, or digits), `00` (none) when
/// it is empty or not a number.
pub fn sca(smsc: &str) -> String {
    let digits = smsc.strip_prefix('+').unwrap_or(smsc);
    let numeric = (1..=20).contains(&digits.len()) && digits.bytes().all(|b| b.is_ascii_digit());
    if !numeric {
        return "00".into();
    }
    // Unlike TP-OA, the SCA's length counts octets (type of address included).
    let address = number(smsc);
    let octets = address.get(1..).unwrap_or_default();
    format!("{:02X}{}", octets.len(), to_hex(octets))
}

/// The SMS-DELIVERs of `text` from `from`: one, or the parts of a long text
/// with an 8-bit concatenation reference `reference`. Each is `sca` (see
/// [`sca`]) followed by the TPDU. `from` is a number (`+` and digits, or
/// digits) or else a sender's name (alphanumeric, at most 11 characters).
pub fn deliver(
    sca: &str,
    from: &str,
    text: &str,
    reference: u8,
    sent: DateTime<FixedOffset>,
) -> Result<Vec<String>, PduError> {
    let options = pdu::Options {
        status_report: false,
        concat_ref: reference,
    };
    let originator = address(from);
    let parts = pdu::submit("+0", text, options)?;
    let pdus = parts.iter().filter_map(|part| {
        let tpdu = from_hex(part.hex.get(2..)?)?;
        let (first, user_data) = submit_user_data(&tpdu)?;
        let mut out = vec![FIRST_DELIVER | (first & HEADER_INDICATOR)];
        out.extend_from_slice(&originator);
        // TP-PID 0, then TP-DCS, TP-SCTS, TP-UDL and TP-UD.
        out.push(0x00);
        out.extend(user_data.first());
        out.extend(timestamp(sent));
        out.extend(user_data.get(1..).unwrap_or_default());
        Some(format!("{sca}{}", to_hex(&out)))
    });
    Ok(pdus.collect())
}

/// A SUBMIT's first octet and its TP-DCS, TP-UDL and TP-UD (after TP-MR,
/// TP-DA and TP-PID; [`pdu::submit`] writes no validity period).
fn submit_user_data(tpdu: &[u8]) -> Option<(u8, &[u8])> {
    let first = *tpdu.first()?;
    let digits = usize::from(*tpdu.get(2)?);
    tpdu.get(2 + 2 + digits.div_ceil(2) + 1..)
        .map(|rest| (first, rest))
}

/// An SMS-STATUS-REPORT for the message sent as TP-MR `mr` to `recipient`:
/// received by the service centre at `submitted`, status `status` (TP-ST)
/// reached at `discharged`. No optional part (TP-PI), as most service
/// centres send it.
pub fn status_report(
    sca: &str,
    mr: u8,
    recipient: &str,
    submitted: DateTime<FixedOffset>,
    discharged: DateTime<FixedOffset>,
    status: u8,
) -> String {
    let mut out = vec![FIRST_STATUS_REPORT, mr];
    out.extend(address(recipient));
    out.extend(timestamp(submitted));
    out.extend(timestamp(discharged));
    out.push(status);
    format!("{sca}{}", to_hex(&out))
}

/// The TPDU's octets in `hex` (SCA first): the length `AT+CMGS`, `+CMT`
/// and `+CMGR` give. `None` if the hex is too short for its own SCA.
pub fn tpdu_len(hex: &str) -> Option<usize> {
    let sca = usize::from_str_radix(hex.get(..2)?, 16).ok()?;
    (hex.len() / 2).checked_sub(1 + sca)
}

/// TP-OA or TP-RA: a number, or else alphanumeric (type 0xD0: GSM-7
/// packed, its length in semi-octets; characters outside GSM-7 are left
/// out, and at most 11 are kept).
pub fn address(from: &str) -> Vec<u8> {
    let digits = from.strip_prefix('+').unwrap_or(from);
    if (1..=20).contains(&digits.len()) && digits.bytes().all(|b| b.is_ascii_digit()) {
        return number(from);
    }
    let mut septets = Vec::new();
    for c in from.chars() {
        if septets.len() < 11 {
            gsm7::push_char(c, &mut septets);
        }
    }
    let packed = gsm7::pack(&septets, 0);
    // At most 11 septets: 77 bits, 20 semi-octets.
    let mut out = vec![(septets.len() * 7).div_ceil(4) as u8, 0xD0];
    out.extend(packed);
    out
}

/// A number as an address: digit count, 0x91 (international, for `+…`) or
/// 0x81, then the digits in swapped semi-octets, `F`-padded.
fn number(from: &str) -> Vec<u8> {
    let (kind, digits) = match from.strip_prefix('+') {
        Some(digits) => (0x91, digits),
        None => (0x81, from),
    };
    let digits: Vec<u8> = digits
        .bytes()
        .filter(u8::is_ascii_digit)
        .map(|b| b - b'0')
        .take(20)
        .collect();
    // At most 20 digits, taken above.
    let mut out = vec![digits.len() as u8, kind];
    out.extend(digits.chunks(2).map(|pair| match pair {
        [first, second] => (second << 4) | first,
        [last] => 0xF0 | last,
        _ => 0xFF,
    }));
    out
}

/// TP-SCTS / TP-DT: year (two digits), month, day, hour, minute, second in
/// swapped decimal semi-octets, then the offset in quarter-hours (bit 3 of
/// the octet its sign).
pub fn timestamp(time: DateTime<FixedOffset>) -> [u8; 7] {
    let swapped = |n: u32| {
        let n = (n % 100) as u8;
        ((n % 10) << 4) | (n / 10)
    };
    let seconds = time.offset().local_minus_utc();
    let quarters = (seconds.unsigned_abs() / 900).min(79);
    let sign = if seconds < 0 { 0x08 } else { 0x00 };
    [
        swapped(time.year().rem_euclid(100) as u32),
        swapped(time.month()),
        swapped(time.day()),
        swapped(time.hour()),
        swapped(time.minute()),
        swapped(time.second()),
        swapped(quarters) | sign,
    ]
}

fn to_hex(octets: &[u8]) -> String {
    octets.iter().map(|octet| format!("{octet:02X}")).collect()
}

/// Octets of well-formed hex; `None` otherwise.
pub(super) fn from_hex(hex: &str) -> Option<Vec<u8>> {
    if !hex.len().is_multiple_of(2) || !hex.is_ascii() {
        return None;
    }
    (0..hex.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(hex.get(i..i + 2)?, 16).ok())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::modem::pdu::{decode, Alphabet, Pdu};
    use chrono::TimeZone;

    fn at(h: u32, m: u32, s: u32, east: i32) -> DateTime<FixedOffset> {
        let zone = FixedOffset::east_opt(east).unwrap();
        zone.with_ymd_and_hms(2026, 7, 11, h, m, s).unwrap()
    }

    fn delivered(hex: &str) -> pdu::Deliver {
        match decode(hex).unwrap() {
            Pdu::Deliver(d) => d,
            other => panic!("not a DELIVER: {other:?}"),
        }
    }

    #[test]
    fn writes_the_well_known_d1() {
        // D1's time zone octet is 0x08: the sign bit and zero quarter-hours,
        // "-00:00", which a `FixedOffset` cannot hold; UTC is written 0x00.
        let d1 = "07911326040000F0040B911346610089F60000208062917314080CC8F71D14969741F977FD07";
        let time = delivered(d1).timestamp;
        assert_eq!(time.to_rfc3339(), "2002-08-26T19:37:41+00:00");
        let sca = sca("+31624000000");
        let pdus = deliver(&sca, "+31641600986", "How are you?", 0, time).unwrap();
        assert_eq!(pdus, [d1.replacen("7314080C", "7314000C", 1)]);
        assert_eq!(delivered(&pdus[0]), delivered(d1));
        assert_eq!(tpdu_len(d1), Some(30));
        // A zone east of UTC: +02:00 is 8 quarter-hours, units digit high.
        let zone = FixedOffset::east_opt(2 * 3600).unwrap();
        let octets = timestamp(time.with_timezone(&zone));
        assert_eq!(octets, [0x20, 0x80, 0x62, 0x12, 0x73, 0x14, 0x80]);
        let west = FixedOffset::west_opt(5 * 3600 + 1800).unwrap();
        assert_eq!(timestamp(time.with_timezone(&west))[6], 0x22 | 0x08);
    }

    #[test]
    fn writes_s1_and_s2_but_for_s2s_optional_octet() {
        let (sent, done) = (at(21, 43, 5, 0), at(21, 53, 0, 0));
        let s1 = status_report("00", 0x42, "+256772123456", sent, done, 0x00);
        assert_eq!(s1, "0006420C91527627214365627011123450006270111235000000");
        let s2 = status_report("00", 0x43, "+256772123456", sent, done, 0x46);
        let s2_vector = "0006430C9152762721436562701112345000627011123500004600";
        assert_eq!(Some(s2.as_str()), s2_vector.strip_suffix("00"));
        match decode(&s2).unwrap() {
            Pdu::StatusReport(r) => {
                assert_eq!((r.message_reference, r.status_octet), (0x43, 0x46));
                assert_eq!(r.status, pdu::Status::Failed);
                assert_eq!(r.discharge_time, done);
            }
            other => panic!("not a report: {other:?}"),
        }
    }

    #[test]
    fn deliver_round_trips_gsm7_ucs2_and_long_texts() {
        let sent = at(9, 15, 0, -5 * 3600);
        let sca = sca("+15550000000");
        assert_eq!(sca, "07915155000000F0");
        let one = deliver(&sca, "+15551234", "Hello [€] {ok}", 7, sent).unwrap();
        let d = delivered(&one[0]);
        assert_eq!((d.originator.as_str(), d.timestamp), ("+15551234", sent));
        assert_eq!(d.user_data.text(), Some("Hello [€] {ok}"));
        assert_eq!(d.user_data.alphabet, Alphabet::Gsm7);
        let emoji = deliver(&sca, "15551234", "Hi 😀", 7, sent).unwrap();
        let d = delivered(&emoji[0]);
        assert_eq!(d.originator, "15551234");
        assert_eq!(d.user_data.text(), Some("Hi 😀"));
        assert_eq!(d.user_data.alphabet, Alphabet::Ucs2);
        let text = "0123456789".repeat(40);
        let parts = deliver(&sca, "+15551234", &text, 0xAB, sent).unwrap();
        assert_eq!(parts.len(), 3);
        let mut joined = String::new();
        for (i, hex) in parts.iter().enumerate() {
            let d = delivered(hex);
            let concat = d.user_data.concat.unwrap();
            assert_eq!((concat.reference, concat.total), (0xAB, 3));
            assert_eq!(usize::from(concat.seq), i + 1);
            joined.push_str(d.user_data.text().unwrap());
        }
        assert_eq!(joined, text);
        let smiles = "😀".repeat(80);
        let parts = deliver(&sca, "+1", &smiles, 1, sent).unwrap();
        let joined: String = parts
            .iter()
            .map(|p| delivered(p).user_data.text().unwrap().to_owned())
            .collect();
        assert_eq!((parts.len(), joined), (3, smiles));
    }

    #[test]
    fn a_name_is_an_alphanumeric_sender() {
        let sent = at(12, 0, 0, 0);
        let d2_oa = address("Smsflow");
        assert_eq!(to_hex(&d2_oa), "0DD0D3F6DCCC7EDF01");
        let pdus = deliver("00", "Smsflow", "hi", 0, sent).unwrap();
        assert_eq!(delivered(&pdus[0]).originator, "Smsflow");
        let long = delivered(&deliver("00", "A very long name", "x", 0, sent).unwrap()[0]);
        assert_eq!(long.originator, "A very long");
        assert_eq!(sca("not a number"), "00");
        assert_eq!(tpdu_len("0"), None);
        assert_eq!(from_hex("0G"), None);
    }
}
