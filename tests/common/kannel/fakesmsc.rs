//! Kannel's fake SMS centre: the "phone" ([`Fakesmsc`]), the MOs it sends
//! ([`Mo`]), the MTs it prints ([`Mt`], [`parse_mts`]) and whole messages
//! joined from their parts ([`reassemble`], [`Sms`]).

use std::collections::HashMap;
use std::path::PathBuf;
use std::process::Child;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::{status_page, terminate, url_decode, url_encode_all};

/// One fakesmsc process; SIGINT then SIGKILL on drop if not stopped.
pub struct Fakesmsc {
    pub(super) child: Option<Child>,
    /// Its stdout and stderr (fakesmsc logs everything on stderr).
    pub log: PathBuf,
    /// When it was spawned.
    pub started: Instant,
    pub(super) admin_port: u16,
    pub(super) smsc_port: u16,
    pub(super) live: Arc<AtomicBool>,
}

/// What [`Fakesmsc::stop`] returns.
#[derive(Debug, Clone)]
pub struct FakesmscSummary {
    pub mts: Vec<Mt>,
    /// Its whole output.
    pub output: String,
    /// From `fakesmsc: N messages sent and M received`.
    pub sent: Option<u64>,
    pub received: Option<u64>,
    /// From `from first to last received message X s, Y msgs/s`.
    pub first_to_last_received: Option<f64>,
    pub received_rate: Option<f64>,
    /// Whether it exited by itself after SIGINT (else it was SIGKILLed and
    /// printed no summary).
    pub clean: bool,
}

impl Fakesmsc {
    pub fn output(&self) -> String {
        String::from_utf8_lossy(&std::fs::read(&self.log).unwrap_or_default()).into_owned()
    }

    /// Every MT received so far.
    pub fn received(&self) -> Vec<Mt> {
        parse_mts(&self.output())
    }

    /// How many `Got message` lines so far (cheaper than [`Fakesmsc::received`]).
    pub fn received_count(&self) -> usize {
        self.output().matches(": Got message ").count()
    }

    /// How many MOs it has sent so far (its `fakesmsc: sent message N` lines).
    pub fn sent_count(&self) -> usize {
        self.output().matches("fakesmsc: sent message ").count()
    }

    /// Poll [`Fakesmsc::received`] every 20 ms until `until` holds (Ok) or
    /// `timeout` passed (Err, with what was received).
    pub fn wait_for(
        &self,
        until: impl Fn(&[Mt]) -> bool,
        timeout: Duration,
    ) -> Result<Vec<Mt>, Vec<Mt>> {
        let deadline = Instant::now() + timeout;
        loop {
            let mts = self.received();
            if until(&mts) {
                return Ok(mts);
            }
            if Instant::now() > deadline {
                return Err(mts);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Whether bearerbox's status page shows the fake SMSC online.
    pub(super) fn connected(&self) -> bool {
        let needle = format!("FAKE:{} (online", self.smsc_port);
        status_page(self.admin_port).is_some_and(|s| s.contains(&needle))
    }

    /// SIGINT (fakesmsc then prints its summary and exits 0; SIGKILL after
    /// 5 s), then wait until bearerbox no longer shows it online, so that the
    /// next fakesmsc can connect.
    pub fn stop(mut self) -> FakesmscSummary {
        let clean = self.shutdown();
        let output = self.output();
        let mut s = FakesmscSummary {
            mts: parse_mts(&output),
            sent: None,
            received: None,
            first_to_last_received: None,
            received_rate: None,
            clean,
            output,
        };
        for line in s.output.lines() {
            if let Some(rest) = line.split("fakesmsc: ").nth(1) {
                let words: Vec<&str> = rest.split_whitespace().collect();
                // "N messages sent and M received"
                if words.len() >= 6 && words[1] == "messages" && words[2] == "sent" {
                    s.sent = words[0].parse().ok();
                    s.received = words[4].parse().ok();
                }
                // "from first to last received message X s, Y msgs/s"
                if rest.starts_with("from first to last received message") && words.len() >= 10 {
                    s.first_to_last_received = words[6].parse().ok();
                    s.received_rate = words[8].parse().ok();
                }
            }
        }
        s
    }

    fn shutdown(&mut self) -> bool {
        let Some(c) = self.child.take() else {
            return true;
        };
        let clean = terminate(c, libc::SIGINT, Duration::from_secs(5));
        let deadline = Instant::now() + Duration::from_secs(10);
        while self.connected() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
        self.live.store(false, Ordering::SeqCst);
        clean
    }
}

impl Drop for Fakesmsc {
    fn drop(&mut self) {
        self.shutdown();
    }
}

/// An MO for fakesmsc's command line: `"<from> <to> <type> <data>"`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mo(pub String);

impl Mo {
    /// `text`: the text as raw bytes (coding 0). It must fit on one line.
    pub fn text(from: &str, to: &str, text: &str) -> Mo {
        assert!(
            !text.contains('\n') && !text.contains('\r'),
            "a fakesmsc text MO cannot carry a newline: use Mo::ucs2 or Mo::data"
        );
        Mo(format!("{from} {to} text {text}"))
    }

    /// `ucs2`: the text as URL-encoded UTF-16BE (coding 2; with mo-recode
    /// smsbox hands it to the application as UTF-8, coding 0).
    pub fn ucs2(from: &str, to: &str, text: &str) -> Mo {
        let bytes: Vec<u8> = text.encode_utf16().flat_map(u16::to_be_bytes).collect();
        Mo(format!("{from} {to} ucs2 {}", url_encode_all(&bytes)))
    }

    /// `data`: URL-encoded 8-bit binary (coding 1).
    pub fn data(from: &str, to: &str, bytes: &[u8]) -> Mo {
        Mo(format!("{from} {to} data {}", url_encode_all(bytes)))
    }

    /// `udh-text`: a UDH (e.g. `[5, 0, 3, ref, total, seq]`) and plain text.
    pub fn udh_text(from: &str, to: &str, udh: &[u8], text: &str) -> Mo {
        Mo(format!(
            "{from} {to} udh-text {} {text}",
            url_encode_all(udh)
        ))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// How an MT reached fakesmsc.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MtKind {
    /// `text <raw text>`: coding 0, UTF-8 bytes as printed.
    Text,
    /// `data <url-encoded>`: 8-bit binary.
    Data,
    /// `ucs-2 <url-encoded UTF-16BE>`.
    Ucs2,
    /// `udh <url-encoded UDH> data <url-encoded payload>`, whatever the
    /// coding (7-bit payloads are UTF-8, UCS-2 ones UTF-16BE).
    Udh,
}

/// One MT as fakesmsc printed it (`Got message N: <sender receiver ...>`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mt {
    /// fakesmsc's counter N.
    pub n: u64,
    pub sender: String,
    pub receiver: String,
    pub kind: MtKind,
    /// Empty unless `kind` is `Udh`.
    pub udh: Vec<u8>,
    /// URL-decoded (raw for `Text`).
    pub payload: Vec<u8>,
}

/// A concatenation information element: IEI 00 (`05 00 03 ref total seq`)
/// or IEI 08 (`06 08 04 ref ref total seq`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Concat {
    pub reference: u16,
    pub total: u8,
    pub seq: u8,
}

impl Mt {
    pub fn concat(&self) -> Option<Concat> {
        let (&len, ies) = self.udh.split_first()?;
        let mut ies = ies.get(..len as usize)?;
        while ies.len() >= 2 {
            let (iei, l) = (ies[0], ies[1] as usize);
            let data = ies.get(2..2 + l)?;
            match (iei, data) {
                (0, &[r, total, seq]) => {
                    return Some(Concat {
                        reference: r as u16,
                        total,
                        seq,
                    });
                }
                (8, &[r1, r2, total, seq]) => {
                    return Some(Concat {
                        reference: u16::from_be_bytes([r1, r2]),
                        total,
                        seq,
                    });
                }
                _ => ies = &ies[2 + l..],
            }
        }
        None
    }
}

/// Parse fakesmsc's output. A `text` MT with a newline is printed as two
/// `Got message` lines; a line that is not `sender receiver kind ...` is
/// taken as the continuation of the previous text MT.
pub fn parse_mts(output: &str) -> Vec<Mt> {
    let mut mts: Vec<Mt> = Vec::new();
    for line in output.lines() {
        // `<date> <time> [pid] [thread] DEBUG: Got message N: <...>`
        let Some(i) = line.find(": Got message ") else {
            continue;
        };
        let rest = &line[i + ": Got message ".len()..];
        let Some((n, body)) = rest.split_once(": <") else {
            continue;
        };
        let body = body.strip_suffix('>').unwrap_or(body);
        let n: u64 = n.trim().parse().unwrap_or(0);
        match parse_mt(n, body) {
            Some(mt) => mts.push(mt),
            None => match mts.last_mut() {
                Some(prev) if prev.kind == MtKind::Text => {
                    prev.payload.push(b'\n');
                    prev.payload.extend_from_slice(body.as_bytes());
                }
                _ => panic!("cannot parse fakesmsc line: {line}"),
            },
        }
    }
    mts
}

fn parse_mt(n: u64, body: &str) -> Option<Mt> {
    let mut it = body.splitn(4, ' ');
    let sender = it.next()?.to_string();
    let receiver = it.next()?.to_string();
    let kind = it.next()?;
    let rest = it.next().unwrap_or("");
    let (kind, udh, payload) = match kind {
        "text" => (MtKind::Text, Vec::new(), rest.as_bytes().to_vec()),
        "data" => (MtKind::Data, Vec::new(), url_decode(rest)),
        "ucs-2" | "ucs2" => (MtKind::Ucs2, Vec::new(), url_decode(rest)),
        "udh" => {
            let (udh, data) = rest.split_once(' ')?;
            let data = data.strip_prefix("data ").or(data.strip_prefix("data"))?;
            (MtKind::Udh, url_decode(udh), url_decode(data))
        }
        _ => return None,
    };
    Some(Mt {
        n,
        sender,
        receiver,
        kind,
        udh,
        payload,
    })
}

/// How to read a payload.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Encoding {
    Utf8,
    Utf16Be,
}

/// A whole message as the phone shows it: one MT, or every part of a
/// concatenated one, in sequence order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sms {
    pub sender: String,
    pub receiver: String,
    /// Of the (first) part.
    pub kind: MtKind,
    pub parts: usize,
    pub concat: Option<Concat>,
    /// The parts' payloads joined (UDH removed).
    pub payload: Vec<u8>,
}

impl Sms {
    /// The text: UTF-8 for `Text`/`Data`, UTF-16BE for `Ucs2`; for `Udh`
    /// (fakesmsc does not say the coding) a guess: UTF-16BE if the bytes
    /// contain NUL or control characters or are not UTF-8. Use
    /// [`Sms::decode`] when the coding is known.
    pub fn text(&self) -> String {
        let enc = match self.kind {
            MtKind::Text | MtKind::Data => Encoding::Utf8,
            MtKind::Ucs2 => Encoding::Utf16Be,
            MtKind::Udh => guess_encoding(&self.payload),
        };
        self.decode(enc)
    }

    pub fn decode(&self, enc: Encoding) -> String {
        match enc {
            Encoding::Utf8 => String::from_utf8_lossy(&self.payload).into_owned(),
            Encoding::Utf16Be => {
                let units: Vec<u16> = self
                    .payload
                    .chunks(2)
                    .map(|c| u16::from_be_bytes([c[0], *c.get(1).unwrap_or(&0)]))
                    .collect();
                String::from_utf16_lossy(&units)
            }
        }
    }
}

fn guess_encoding(b: &[u8]) -> Encoding {
    match std::str::from_utf8(b) {
        Ok(s)
            if !s
                .chars()
                .any(|c| c.is_control() && !matches!(c, '\n' | '\r' | '\t' | '\x0c')) =>
        {
            Encoding::Utf8
        }
        _ if b.len().is_multiple_of(2) => Encoding::Utf16Be,
        _ => Encoding::Utf8,
    }
}

/// Whole messages from MTs: single MTs as they are, concatenated parts
/// joined once all have arrived (grouped by sender, receiver, reference and
/// total), in the order of their first part. Incomplete ones are left out.
pub fn reassemble(mts: &[Mt]) -> Vec<Sms> {
    type Key = (String, String, u16, u8);
    let mut out: Vec<(u64, Sms)> = Vec::new();
    let mut groups: HashMap<Key, Vec<&Mt>> = HashMap::new();
    let mut first: HashMap<Key, u64> = HashMap::new();
    for mt in mts {
        match mt.concat().filter(|c| c.total > 1) {
            None => out.push((
                mt.n,
                Sms {
                    sender: mt.sender.clone(),
                    receiver: mt.receiver.clone(),
                    kind: mt.kind,
                    parts: 1,
                    concat: mt.concat(),
                    payload: mt.payload.clone(),
                },
            )),
            Some(c) => {
                let key = (mt.sender.clone(), mt.receiver.clone(), c.reference, c.total);
                first.entry(key.clone()).or_insert(mt.n);
                let parts = groups.entry(key.clone()).or_default();
                parts.push(mt);
                let mut seqs: Vec<u8> = parts
                    .iter()
                    .filter_map(|m| m.concat().map(|c| c.seq))
                    .collect();
                seqs.sort_unstable();
                seqs.dedup();
                if seqs.len() == c.total as usize {
                    let mut parts = groups.remove(&key).unwrap();
                    parts.sort_by_key(|m| m.concat().map(|c| c.seq));
                    parts.dedup_by_key(|m| m.concat().map(|c| c.seq));
                    let payload = parts
                        .iter()
                        .flat_map(|m| m.payload.iter().copied())
                        .collect();
                    out.push((
                        first[&key],
                        Sms {
                            sender: mt.sender.clone(),
                            receiver: mt.receiver.clone(),
                            kind: parts[0].kind,
                            parts: parts.len(),
                            concat: parts[0].concat(),
                            payload,
                        },
                    ));
                    first.remove(&key);
                }
            }
        }
    }
    out.sort_by_key(|(n, _)| *n);
    out.into_iter().map(|(_, s)| s).collect()
}
