//! SMS PDUs as a GSM modem takes and gives them in PDU mode (3GPP TS 23.040,
//! 23.038): [`submit`] encodes SMS-SUBMITs for `AT+CMGS`; [`decode`] reads
//! SMS-DELIVERs, SMS-STATUS-REPORTs (`+CMT`, `+CDS`, `AT+CMGR`) and SMS-SUBMITs.
//! Written here: the SMS PDU crates cut escapes or surrogate pairs between
//! parts, miscount fill bits after a 16-bit reference, or only decode.
//!
//! Hex starts with the service-centre address, as modems give it ([`submit`]
//! writes `00`: the modem's own). Addresses are strings: `+` and digits when
//! international, digits otherwise, or an alphanumeric sender's name.
//! Timestamps are `DateTime<FixedOffset>`: the service centre's local time
//! and offset (`to_rfc3339()` gives RFC 3339), years 2000 + two digits. A
//! bad PDU is a [`PduError`] naming the field and the octet, never a panic.

pub mod gsm7;

#[cfg(test)]
mod tests;

use chrono::{DateTime, FixedOffset, TimeZone};

/// First octet: TP-MTI of an SMS-SUBMIT, TP-SRR (report asked), TP-UDHI (header).
const MTI_SUBMIT: u8 = 0x01;
const STATUS_REPORT_REQUEST: u8 = 0x20;
const HEADER_INDICATOR: u8 = 0x40;
/// GSM-7 septets and UCS-2 units in one message, alone and as a part after
/// the 6-octet concatenation header: the counts of `crate::sms::analyze`.
const GSM7_SINGLE: usize = 160;
const GSM7_PART: usize = 153;
const UCS2_SINGLE: usize = 70;
const UCS2_PART: usize = 67;

/// A bad destination or text, or a PDU malformed or beyond this codec:
/// the input's fault, so retrying the same input cannot help.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PduError {
    #[error("bad hex at character {position}: {found:?} is not a hex digit")]
    BadHex { position: usize, found: char },
    #[error("bad hex: {0} hex digits, an odd number (a PDU is whole octets)")]
    OddHex(usize),
    #[error("truncated PDU: {field} at octet {at} needs {needed} octet(s), {left} left")]
    Truncated {
        field: &'static str,
        at: usize,
        needed: usize,
        left: usize,
    },
    #[error("reserved message type (TP-MTI 3) in first octet 0x{first:02X} at octet {at}")]
    ReservedMessageType { first: u8, at: usize },
    #[error("unsupported TP-DCS 0x{0:02X}: compressed, or a reserved coding group")]
    UnsupportedDcs(u8),
    #[error("bad user data header at octet {at}: {problem}")]
    BadUdh { at: usize, problem: String },
    #[error("bad {field} at octet {at}: {octets} is no date and time")]
    BadTimestamp {
        field: &'static str,
        at: usize,
        octets: String,
    },
    #[error("invalid destination {0:?}: expected 1 to 20 digits, optionally after a leading '+'")]
    InvalidDestination(String),
    #[error("text too long: it takes {0} parts, a concatenated message has at most 255")]
    TooManyParts(usize),
}

type Parsed<T> = Result<T, PduError>;

/// How [`submit`] builds its PDUs.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Options {
    /// Ask the network for a status report (TP-SRR) for each part.
    pub status_report: bool,
    /// The 8-bit reference tying the parts of a long text together: phones
    /// join parts by it, so it should change from one long text to the next.
    pub concat_ref: u8,
}

/// One SMS-SUBMIT, ready for the modem: `AT+CMGS=<tpdu_len>`, then `hex`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Submit {
    /// The PDU in upper-case hex, starting with the empty SCA `00`.
    pub hex: String,
    /// Octets after the SCA: what `AT+CMGS` expects as its length.
    pub tpdu_len: usize,
}

/// A decoded PDU, by TP-MTI (as sent to a modem: 2 is a status report).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Pdu {
    Deliver(Deliver),
    StatusReport(StatusReport),
    Submit(DecodedSubmit),
}

/// An SMS-DELIVER: a message received.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Deliver {
    /// TP-OA: who sent it.
    pub originator: String,
    /// TP-PID, as sent.
    pub protocol_id: u8,
    /// TP-SCTS: when the service centre received it.
    pub timestamp: DateTime<FixedOffset>,
    pub user_data: UserData,
}

/// An SMS-SUBMIT read back (see [`submit`] for writing one).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DecodedSubmit {
    /// TP-MR (0 from [`submit`]: the modem assigns it).
    pub message_reference: u8,
    /// TP-DA: who it is for.
    pub destination: String,
    /// TP-SRR.
    pub status_report: bool,
    pub user_data: UserData,
}

/// An SMS-STATUS-REPORT: what became of the message `+CMGS` numbered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StatusReport {
    /// TP-MR: the number `+CMGS` answered when the message was sent.
    pub message_reference: u8,
    /// TP-RA: who the message was for.
    pub recipient: String,
    /// TP-SCTS: when the service centre received the message.
    pub timestamp: DateTime<FixedOffset>,
    /// TP-DT: when it was delivered, or when `status` was reached.
    pub discharge_time: DateTime<FixedOffset>,
    /// TP-ST, by its outcome (see [`Status`]); `status_octet` has the detail.
    pub status: Status,
    pub status_octet: u8,
    /// TP-PID and TP-UD, if the optional part (TP-PI) says they are there.
    pub protocol_id: Option<u8>,
    pub user_data: Option<UserData>,
}

/// What TP-ST says became of a message (23.040 §9.2.3.15). Values 23.040
/// reserves or leaves to each service centre go by their group.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    /// 0x00–0x1F: received (0x01: forwarded, unconfirmed; 0x02: replaced).
    Delivered,
    /// 0x20–0x3F: a temporary error; the service centre is still trying.
    Pending,
    /// 0x40–0xFF: a permanent error, or a temporary one given up (0x60–0x7F).
    Failed,
}

impl Status {
    /// The outcome a TP-ST octet stands for.
    pub fn of(octet: u8) -> Self {
        match octet {
            0x00..=0x1F => Status::Delivered,
            0x20..=0x3F => Status::Pending,
            _ => Status::Failed,
        }
    }
}

/// The alphabet TP-DCS gives the user data (class and other bits aside).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Alphabet {
    Gsm7,
    EightBit,
    Ucs2,
}

/// TP-UD, decoded: the concatenation header if any, and the body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserData {
    pub alphabet: Alphabet,
    /// Which part of a long message this is, if it is one.
    pub concat: Option<Concat>,
    pub body: Body,
}

impl UserData {
    /// The text, unless the body is 8-bit data.
    pub fn text(&self) -> Option<&str> {
        match &self.body {
            Body::Text(text) => Some(text),
            Body::Data(_) => None,
        }
    }
}

/// The user data after its header: text (GSM-7, UCS-2) or 8-bit data.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Body {
    Text(String),
    Data(Vec<u8>),
}

/// A part of a concatenated message (UDH element 0x00 or 0x08): parts with
/// the same sender, reference and total are joined in `seq` order, 1-based.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Concat {
    pub reference: u16,
    pub total: u8,
    pub seq: u8,
}

/// The SMS-SUBMITs sending `text` to `to` (`+` and digits, or digits): one,
/// or as many parts with a concatenation header as `crate::sms::analyze`
/// counts. GSM-7 if every character has septets, else UCS-2 (UTF-16: emoji
/// stay whole); no part ends inside an escape or a surrogate pair.
pub fn submit(to: &str, text: &str, options: Options) -> Result<Vec<Submit>, PduError> {
    let destination = encode_address(to)?;
    let parts: Vec<Part> = match gsm7_septets(text) {
        Some((septets, widths)) => {
            let parts = cut(&septets, &widths, GSM7_SINGLE, GSM7_PART);
            parts.into_iter().map(Part::Gsm7).collect()
        }
        None => {
            let utf16: Vec<u16> = text.encode_utf16().collect();
            let widths: Vec<usize> = text.chars().map(char::len_utf16).collect();
            let parts = cut(&utf16, &widths, UCS2_SINGLE, UCS2_PART);
            parts.into_iter().map(Part::Ucs2).collect()
        }
    };
    let total = u8::try_from(parts.len()).map_err(|_| PduError::TooManyParts(parts.len()))?;
    let pdus = parts.iter().zip(1..=total).map(|(part, seq)| {
        let header = [0x05, 0x00, 0x03, options.concat_ref, total, seq];
        let header = if total > 1 { &header[..] } else { &[] };
        encode_part(&destination, options, header, part)
    });
    Ok(pdus.collect())
}

/// The units of one message: septets or UTF-16 code units.
enum Part {
    Gsm7(Vec<u8>),
    Ucs2(Vec<u16>),
}

/// The septets of `text` and each character's width (2 for an escape
/// pair); `None` if a character has none.
fn gsm7_septets(text: &str) -> Option<(Vec<u8>, Vec<usize>)> {
    let (mut septets, mut widths) = (Vec::with_capacity(text.len()), Vec::new());
    for c in text.chars() {
        widths.push(gsm7::push_char(c, &mut septets)?);
    }
    Some((septets, widths))
}

/// `units` whole if they fit `single`, else in parts of at most `per_part`
/// cut between characters: the greedy rule of `crate::sms::analyze`.
fn cut<T: Copy>(units: &[T], widths: &[usize], single: usize, per_part: usize) -> Vec<Vec<T>> {
    let whole = units.len() <= single;
    let limit = if whole { single } else { per_part };
    let mut parts: Vec<Vec<T>> = vec![Vec::new()];
    let mut rest = units;
    for &width in widths {
        let (character, tail) = rest.split_at(width.min(rest.len()));
        rest = tail;
        if parts.last().is_some_and(|p| p.len() + width > limit) {
            parts.push(Vec::new());
        }
        if let Some(part) = parts.last_mut() {
            part.extend_from_slice(character);
        }
    }
    parts
}

/// One SMS-SUBMIT: TP-MR 0 (the modem sets it and answers it in `+CMGS`),
/// TP-PID 0, no validity period (the service centre's default).
fn encode_part(destination: &[u8], options: Options, header: &[u8], part: &Part) -> Submit {
    let report = options.status_report.then_some(STATUS_REPORT_REQUEST);
    let udhi = (!header.is_empty()).then_some(HEADER_INDICATOR);
    let first = MTI_SUBMIT | report.unwrap_or(0) | udhi.unwrap_or(0);
    let (dcs, length, body) = match part {
        Part::Gsm7(septets) => {
            let fill = gsm7::fill_bits(header.len());
            let length = (header.len() * 8 + fill) / 7 + septets.len();
            (0x00, length, gsm7::pack(septets, fill))
        }
        Part::Ucs2(units) => {
            let body: Vec<u8> = units.iter().flat_map(|u| u.to_be_bytes()).collect();
            (0x08, header.len() + body.len(), body)
        }
    };
    let mut tpdu = vec![first, 0x00];
    tpdu.extend_from_slice(destination);
    // TP-UDL is at most 160 septets or 140 octets: `cut` keeps parts to that.
    tpdu.extend([0x00, dcs, length as u8]);
    tpdu.extend_from_slice(header);
    tpdu.extend(body);
    let (hex, tpdu_len) = (format!("00{}", to_hex(&tpdu)), tpdu.len());
    Submit { hex, tpdu_len }
}

/// TP-DA: digit count, type of address (0x91 international for `+…`, 0x81
/// unknown otherwise), then the digits in swapped semi-octets, `F`-padded.
fn encode_address(to: &str) -> Parsed<Vec<u8>> {
    let (type_of_address, digits) = match to.strip_prefix('+') {
        Some(digits) => (0x91, digits),
        None => (0x81, to),
    };
    let valid = (1..=20).contains(&digits.len()) && digits.bytes().all(|b| b.is_ascii_digit());
    if !valid {
        return Err(PduError::InvalidDestination(to.to_owned()));
    }
    // At most 20, checked above.
    let mut address = vec![digits.len() as u8, type_of_address];
    address.extend(digits.as_bytes().chunks(2).map(|pair| match pair {
        [first, second] => ((second - b'0') << 4) | (first - b'0'),
        [last] => 0xF0 | (last - b'0'),
        _ => 0xFF,
    }));
    Ok(address)
}

fn to_hex(octets: &[u8]) -> String {
    octets.iter().map(|octet| format!("{octet:02X}")).collect()
}

/// Decodes a PDU in hex as a modem reports it (SCA first; either case;
/// whitespace around it, such as the line's `\r`, is ignored).
pub fn decode(hex: &str) -> Result<Pdu, PduError> {
    let octets = &from_hex(hex)?;
    let r = &mut Reader { octets, at: 0 };
    // The service centre's address: nothing here needs it.
    let sca_length = r.u8("SCA length")?;
    r.take(usize::from(sca_length), "SCA")?;
    let at = r.at;
    let first = r.u8("first octet")?;
    match first & 0x03 {
        0x00 => read_deliver(r, first).map(Pdu::Deliver),
        0x01 => read_submit(r, first).map(Pdu::Submit),
        0x02 => read_status_report(r, first).map(Pdu::StatusReport),
        _ => Err(PduError::ReservedMessageType { first, at }),
    }
}

fn from_hex(hex: &str) -> Parsed<Vec<u8>> {
    let leading = hex.chars().take_while(|c| c.is_whitespace()).count();
    let mut digits = Vec::with_capacity(hex.len());
    for (position, found) in hex.trim().chars().enumerate() {
        let position = leading + position;
        let digit = found
            .to_digit(16)
            .ok_or(PduError::BadHex { position, found })?;
        digits.push(digit as u8);
    }
    if !digits.len().is_multiple_of(2) {
        return Err(PduError::OddHex(digits.len()));
    }
    let octet = |pair: &[u8]| pair.iter().fold(0, |o, d| (o << 4) | d);
    Ok(digits.chunks_exact(2).map(octet).collect())
}

/// A cursor over a PDU's octets. Every read names its field, so a PDU cut
/// short says what is missing and where.
struct Reader<'a> {
    octets: &'a [u8],
    at: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, count: usize, field: &'static str) -> Parsed<&'a [u8]> {
        let (at, rest) = (self.at, self.octets.get(self.at..).unwrap_or_default());
        let left = rest.len();
        let taken = rest.get(..count).ok_or(PduError::Truncated {
            field,
            at,
            needed: count,
            left,
        })?;
        self.at += count;
        Ok(taken)
    }

    fn u8(&mut self, field: &'static str) -> Parsed<u8> {
        Ok(self.take(1, field)?.first().copied().unwrap_or_default())
    }

    /// An optional one-octet field, read only if `present`.
    fn optional(&mut self, present: bool, field: &'static str) -> Parsed<Option<u8>> {
        present.then(|| self.u8(field)).transpose()
    }
}

fn read_deliver(r: &mut Reader, first: u8) -> Parsed<Deliver> {
    let originator = read_address(r, "TP-OA")?;
    let protocol_id = r.u8("TP-PID")?;
    let dcs = r.u8("TP-DCS")?;
    Ok(Deliver {
        originator,
        protocol_id,
        timestamp: read_timestamp(r, "TP-SCTS")?,
        user_data: read_user_data(r, dcs, first)?,
    })
}

fn read_submit(r: &mut Reader, first: u8) -> Parsed<DecodedSubmit> {
    let message_reference = r.u8("TP-MR")?;
    let destination = read_address(r, "TP-DA")?;
    r.take(1, "TP-PID")?;
    let dcs = r.u8("TP-DCS")?;
    // TP-VPF (bits 3–4): none, enhanced (7), relative (1), absolute (7).
    let validity = [0, 7, 1, 7].get(usize::from((first >> 3) & 0x03));
    r.take(validity.copied().unwrap_or_default(), "TP-VP")?;
    Ok(DecodedSubmit {
        message_reference,
        destination,
        status_report: first & STATUS_REPORT_REQUEST != 0,
        user_data: read_user_data(r, dcs, first)?,
    })
}

/// The mandatory fields, then TP-PI and the fields it announces only if
/// octets remain: most service centres end the report at TP-ST.
fn read_status_report(r: &mut Reader, first: u8) -> Parsed<StatusReport> {
    let message_reference = r.u8("TP-MR")?;
    let recipient = read_address(r, "TP-RA")?;
    let timestamp = read_timestamp(r, "TP-SCTS")?;
    let discharge_time = read_timestamp(r, "TP-DT")?;
    let status_octet = r.u8("TP-ST")?;
    let indicator = r
        .optional(r.at < r.octets.len(), "TP-PI")?
        .unwrap_or_default();
    // Bit 7 extends TP-PI by another octet; no extension is defined yet.
    let mut extension = indicator;
    while extension & 0x80 != 0 {
        extension = r.u8("TP-PI extension")?;
    }
    let protocol_id = r.optional(indicator & 0x01 != 0, "TP-PID")?;
    let dcs = r
        .optional(indicator & 0x02 != 0, "TP-DCS")?
        .unwrap_or_default();
    let has_user_data = indicator & 0x04 != 0;
    let user_data = has_user_data
        .then(|| read_user_data(r, dcs, first))
        .transpose()?;
    Ok(StatusReport {
        message_reference,
        recipient,
        timestamp,
        discharge_time,
        status: Status::of(status_octet),
        status_octet,
        protocol_id,
        user_data,
    })
}

/// TP-OA, TP-DA or TP-RA. The length counts semi-octets: digits for a
/// number, and for an alphanumeric address (type of number 5) the 4-bit
/// units of its packed septets, so it holds exactly `length * 4 / 7`
/// characters (reading the padding as a further septet would add an '@').
fn read_address(r: &mut Reader, field: &'static str) -> Parsed<String> {
    let length = usize::from(r.u8(field)?);
    let type_of_address = r.u8(field)?;
    let value = r.take(length.div_ceil(2), field)?;
    if type_of_address & 0x70 == 0x50 {
        return Ok(gsm7::to_text(&gsm7::unpack(value, 0, length * 4 / 7)));
    }
    // Semi-octets, low nibble first: A–E are `*#abc` (23.040 §9.1.2.3), F pads.
    let nibbles = value.iter().flat_map(|o| [o & 0x0F, o >> 4]).take(length);
    let digits = nibbles.filter_map(|n| "0123456789*#abc".chars().nth(usize::from(n)));
    let plus = (type_of_address & 0x70 == 0x10).then_some('+');
    Ok(plus.into_iter().chain(digits).collect())
}

/// TP-SCTS or TP-DT (see [`timestamp`]).
fn read_timestamp(r: &mut Reader, field: &'static str) -> Parsed<DateTime<FixedOffset>> {
    let (at, octets) = (r.at, r.take(7, field)?);
    let Some(time) = timestamp(octets) else {
        let octets = to_hex(octets);
        return Err(PduError::BadTimestamp { field, at, octets });
    };
    Ok(time)
}

/// Year, month, day, hour, minute, second in swapped decimal semi-octets,
/// then the offset from UTC in quarter-hours, bit 3 its sign.
fn timestamp(octets: &[u8]) -> Option<DateTime<FixedOffset>> {
    let &[year, month, day, hour, minute, second, zone] = octets else {
        return None;
    };
    let quarters = decimal(zone & !0x08)? as i32;
    let sign = if zone & 0x08 == 0 { 1 } else { -1 };
    let offset = FixedOffset::east_opt(sign * quarters * 15 * 60)?;
    let year = 2000 + decimal(year)? as i32;
    let [month, day, hour, minute, second] = [month, day, hour, minute, second].map(decimal);
    let time = offset.with_ymd_and_hms(year, month?, day?, hour?, minute?, second?);
    time.single()
}

/// An octet's two semi-octets as a decimal number, the low one the tens.
fn decimal(octet: u8) -> Option<u32> {
    let (tens, units) = (octet & 0x0F, octet >> 4);
    (tens < 10 && units < 10).then_some(u32::from(tens * 10 + units))
}

/// TP-UDL and TP-UD, with a header if `first` has TP-UDHI. TP-UDL counts
/// septets for GSM-7 (header and fill bits included), octets otherwise.
fn read_user_data(r: &mut Reader, dcs: u8, first: u8) -> Parsed<UserData> {
    let alphabet = alphabet(dcs)?;
    let length = usize::from(r.u8("TP-UDL")?);
    let octets = match alphabet {
        Alphabet::Gsm7 => (length * 7).div_ceil(8),
        Alphabet::EightBit | Alphabet::Ucs2 => length,
    };
    let at = r.at;
    let data = r.take(octets, "TP-UD")?;
    let has_header = first & HEADER_INDICATOR != 0;
    let header = has_header.then(|| read_header(data, at)).transpose()?;
    let (header, concat) = header.unwrap_or_default();
    let payload = data.get(header..).unwrap_or_default();
    let body = match alphabet {
        Alphabet::Gsm7 => {
            let fill = gsm7::fill_bits(header);
            let problem = format!("{header} octets of header exceed TP-UDL {length}");
            let count = length.checked_sub((header * 8 + fill) / 7);
            let count = count.ok_or(PduError::BadUdh { at, problem })?;
            Body::Text(gsm7::to_text(&gsm7::unpack(payload, fill, count)))
        }
        Alphabet::Ucs2 => Body::Text(utf16_text(payload)),
        Alphabet::EightBit => Body::Data(payload.to_vec()),
    };
    Ok(UserData {
        alphabet,
        concat,
        body,
    })
}

/// The alphabet of TP-DCS (23.038 §4); class and message-waiting bits do
/// not change the text. The reserved alphabet reads as GSM-7, as 23.038 asks.
fn alphabet(dcs: u8) -> Parsed<Alphabet> {
    let general = |bits: u8| match bits & 0x03 {
        0x01 => Alphabet::EightBit,
        0x02 => Alphabet::Ucs2,
        _ => Alphabet::Gsm7,
    };
    match dcs >> 4 {
        // General and automatic-deletion groups; bit 5 is compression.
        0x0..=0x7 if dcs & 0x20 == 0 => Ok(general(dcs >> 2)),
        0xC | 0xD => Ok(Alphabet::Gsm7),
        0xE => Ok(Alphabet::Ucs2),
        0xF if dcs & 0x04 == 0 => Ok(Alphabet::Gsm7),
        0xF => Ok(Alphabet::EightBit),
        _ => Err(PduError::UnsupportedDcs(dcs)),
    }
}

/// The header opening `data` (TP-UD at octet `at`): its octets, length
/// octet included, and its concatenation element; other elements (ports,
/// formatting…) do not change the text and are skipped.
fn read_header(data: &[u8], at: usize) -> Parsed<(usize, Option<Concat>)> {
    let bad = |problem: String| PduError::BadUdh { at, problem };
    let Some((&length, rest)) = data.split_first() else {
        return Err(bad("TP-UDHI is set but the user data is empty".into()));
    };
    let length = usize::from(length);
    let problem = || format!("header of {length} octets in {} of user data", data.len());
    let mut elements = rest.get(..length).ok_or_else(|| bad(problem()))?;
    let mut concat = None;
    while let [id, size, rest @ ..] = elements {
        let size = usize::from(*size);
        let problem = || format!("element 0x{id:02X} of {size} octets overruns the header");
        let value = rest.get(..size).ok_or_else(|| bad(problem()))?;
        concat = match (id, value) {
            (0x00, &[reference, total, seq]) => part_of(reference.into(), total, seq),
            (0x08, &[hi, lo, total, seq]) => part_of(u16::from_be_bytes([hi, lo]), total, seq),
            (0x00 | 0x08, _) => return Err(bad(format!("concatenation of {size} octets"))),
            _ => concat,
        };
        elements = rest.get(size..).unwrap_or_default();
    }
    if !elements.is_empty() {
        return Err(bad("a lone octet after the last element".into()));
    }
    Ok((length + 1, concat))
}

/// A concatenation element, unless its numbers are impossible: 23.040 then
/// has the receiver ignore the element (the text still reads, alone).
fn part_of(reference: u16, total: u8, seq: u8) -> Option<Concat> {
    let concat = Concat {
        reference,
        total,
        seq,
    };
    (seq >= 1 && seq <= total).then_some(concat)
}

/// UTF-16BE text; a lone surrogate or an odd last octet reads as U+FFFD.
fn utf16_text(octets: &[u8]) -> String {
    let pairs = octets.chunks_exact(2).filter_map(|p| p.try_into().ok());
    let units = char::decode_utf16(pairs.map(u16::from_be_bytes));
    let mut text: String = units.map(|c| c.unwrap_or('\u{FFFD}')).collect();
    if !octets.len().is_multiple_of(2) {
        text.push(char::REPLACEMENT_CHARACTER);
    }
    text
}
