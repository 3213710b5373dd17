//! The simulated modem's state and everything it writes: settings the host
//! changed, the SIM, the network, pending faults, the bytes waiting to go
//! out, and what arrives from the "network" side (messages, reports).
//! Commands are in `commands.rs`; nothing here does I/O or waits: time
//! comes in as arguments and delays go out as [`Timer`]s.

use std::collections::VecDeque;
use std::time::Duration;

use chrono::{DateTime, FixedOffset, Utc};
use tokio::time::Instant;

use super::codes;
use super::config::{ReportMode, SentSms, SimConfig};
use super::pdus;
use super::storage::{Placed, Slot, Storage, READ, UNREAD};

/// The longest command line or PDU kept; longer input is cut (a real
/// modem's buffer is smaller still).
const MAX_INPUT: usize = 4096;
/// Transcript lines kept (the oldest go first).
const MAX_TRANSCRIPT: usize = 20_000;
/// How long a modem reset in the middle of a send stays mute.
pub(super) const REBOOT_DELAY: Duration = Duration::from_millis(500);

/// What the modem does once a delay has passed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Timer {
    /// The network's status report for message `mr`.
    StatusReport {
        mr: u8,
        recipient: String,
        submitted: DateTime<FixedOffset>,
    },
    /// The host did not acknowledge routed message `id` in time.
    AckTimeout(u64),
    /// The end of a reset: the boot banner, and power-on state.
    Reboot,
}

/// The final result code of a command.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Final {
    Ok,
    Error,
    Cms(u16),
    Cme(u16),
}

/// What a command line gets back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Reply {
    /// Information lines, then the final result.
    Done(Vec<String>, Final),
    /// The `> ` of `AT+CMGS=<len>`: a PDU of `len` TPDU octets comes next.
    Prompt(usize),
}

/// Where the bytes from the host go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Input {
    /// A command line, up to `\r`.
    Command(Vec<u8>),
    /// The hex after `AT+CMGS=<len>`'s prompt, up to Ctrl-Z.
    Pdu { len: usize, hex: Vec<u8> },
    /// Rebooting: nothing is heard.
    Rebooting,
}

/// The SIM's lock.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Lock {
    Ready,
    /// PIN needed; wrong tries left before the PUK is.
    Pin(u8),
    Puk,
}

/// `AT+CNMI=<mode>,<mt>,<bm>,<ds>,<bfr>`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(super) struct Cnmi {
    pub mode: u8,
    pub mt: u8,
    pub bm: u8,
    pub ds: u8,
    pub bfr: u8,
}

/// A message routed to the host (`+CMT`, `+CDS`) waiting for `AT+CNMA`.
#[derive(Debug, Clone)]
pub(super) struct Unacked {
    pub id: u64,
    pub hex: String,
}

#[derive(Debug)]
pub(super) struct Modem {
    pub config: SimConfig,
    // Settings; back to power-on values by ATZ and resets.
    pub echo: bool,
    pub cmee: u8,
    pub text_mode: bool,
    pub csms: u8,
    pub cnmi: Cnmi,
    pub creg_mode: u8,
    pub fun: u8,
    pub lock: Lock,
    pub input: Input,
    // The SIM: survives resets.
    pub smsc: String,
    pub storage: Storage,
    // The network.
    pub registered: bool,
    pub rssi: u8,
    pub unacked: VecDeque<Unacked>,
    next_ack_id: u64,
    pub next_mr: u8,
    pub next_concat_ref: u8,
    // Faults waiting for their moment.
    pub cms_next_send: Option<u16>,
    pub reset_mid_send: bool,
    pub silent_until: Option<Instant>,
    pub hang_on: Option<String>,
    pub garbage: bool,
    pub urc: Option<String>,
    // What was done, for tests.
    pub sent: Vec<SentSms>,
    pub transcript: VecDeque<String>,
    // Waiting to go out.
    pub out: Vec<u8>,
    pub timers: Vec<(Duration, Timer)>,
}

impl Modem {
    pub fn new(config: SimConfig) -> Self {
        let mut modem = Modem {
            smsc: config.smsc.clone(),
            storage: Storage::new(config.storage),
            registered: true,
            rssi: config.rssi.min(31),
            next_mr: config.first_reference,
            config,
            echo: true,
            cmee: 0,
            text_mode: false,
            csms: 0,
            cnmi: Cnmi::default(),
            creg_mode: 0,
            fun: 1,
            lock: Lock::Ready,
            input: Input::Command(Vec::new()),
            unacked: VecDeque::new(),
            next_ack_id: 0,
            next_concat_ref: 0,
            cms_next_send: None,
            reset_mid_send: false,
            silent_until: None,
            hang_on: None,
            garbage: false,
            urc: None,
            sent: Vec::new(),
            transcript: VecDeque::new(),
            out: Vec::new(),
            timers: Vec::new(),
        };
        modem.power_on();
        modem
    }

    /// Power-on state: the settings back to their defaults and the SIM
    /// locked again if it has a PIN. Its messages stay; messages the host
    /// never acknowledged are stored, as the network would deliver them again.
    pub fn power_on(&mut self) {
        self.defaults();
        self.fun = 1;
        self.lock = match self.config.pin {
            Some(_) => Lock::Pin(3),
            None => Lock::Ready,
        };
        self.input = Input::Command(Vec::new());
        self.silent_until = None;
        while let Some(unacked) = self.unacked.pop_front() {
            self.store_silently(unacked.hex);
        }
    }

    /// `ATZ`, `AT&F`: the settings back to their defaults (the SIM stays
    /// unlocked).
    pub fn defaults(&mut self) {
        self.echo = true;
        self.cmee = 0;
        self.text_mode = false;
        self.csms = 0;
        self.cnmi = Cnmi::default();
        self.creg_mode = 0;
    }

    /// Whether the modem is on the network: SIM unlocked, radio on, registered.
    pub fn on_network(&self) -> bool {
        self.registered && self.fun == 1 && self.lock == Lock::Ready
    }

    pub fn log(&mut self, line: String) {
        if self.transcript.len() >= MAX_TRANSCRIPT {
            self.transcript.pop_front();
        }
        self.transcript.push_back(line);
    }

    /// Bytes from the host, at `now`.
    pub fn feed(&mut self, bytes: &[u8], now: Instant) {
        if self.silent_until.is_some_and(|until| now < until) {
            let heard = String::from_utf8_lossy(bytes).escape_debug().to_string();
            self.log(format!("-- silent, ignored {heard}"));
            return;
        }
        self.silent_until = None;
        for &byte in bytes {
            self.byte(byte);
        }
    }

    fn byte(&mut self, byte: u8) {
        match &mut self.input {
            Input::Rebooting => {}
            Input::Command(line) => match byte {
                b'\r' => {
                    let line = std::mem::take(line);
                    self.line(&line);
                }
                b'\n' if line.is_empty() => {}
                0x1B => {
                    line.clear();
                    line.push(byte);
                }
                _ if line.len() < MAX_INPUT => line.push(byte),
                _ => {}
            },
            Input::Pdu { len, hex } => match byte {
                0x1A => {
                    let (len, hex) = (*len, std::mem::take(hex));
                    self.input = Input::Command(Vec::new());
                    self.pdu(len, &hex);
                }
                0x1B => {
                    self.input = Input::Command(Vec::new());
                    self.log(">> <ESC> (send cancelled)".into());
                    self.respond(Reply::Done(Vec::new(), Final::Ok));
                }
                b'\r' | b'\n' => {}
                _ if hex.len() < MAX_INPUT => hex.push(byte),
                _ => {}
            },
        }
    }

    /// A command line (without its `\r`): echoed, answered.
    fn line(&mut self, line: &[u8]) {
        let text = String::from_utf8_lossy(line).into_owned();
        let shown = text.replace('\u{1B}', "<ESC>");
        if text.trim().is_empty() {
            return;
        }
        self.log(format!(">> {shown}"));
        let prefix = self.hang_on.as_deref().map(str::to_ascii_uppercase);
        if prefix.is_some_and(|p| text.trim().to_ascii_uppercase().starts_with(&p)) {
            self.hang_on = None;
            return self.log("-- hung: not carried out, no answer".into());
        }
        if self.echo {
            self.out.extend_from_slice(line);
            self.out.push(b'\r');
        }
        let reply = if text.starts_with('\u{1B}') {
            Reply::Done(Vec::new(), Final::Error)
        } else {
            self.command(text.trim())
        };
        if let Reply::Prompt(len) = reply {
            let hex = Vec::new();
            self.input = Input::Pdu { len, hex };
        }
        self.respond(reply);
    }

    /// Writes a reply, with any garbage or unsolicited line a fault asked for.
    pub fn respond(&mut self, reply: Reply) {
        let (lines, last) = match reply {
            Reply::Prompt(_) => {
                self.emit_garbage();
                self.out.extend_from_slice(b"\r\n> ");
                self.log("<< > ".into());
                return;
            }
            Reply::Done(lines, last) => (lines, last),
        };
        self.emit_garbage();
        // One information block (a PDU line follows its header line with
        // no blank line), cut after its first line by an injected URC.
        match self.urc.is_some() {
            true => {
                let (first, rest) = lines.split_at(lines.len().min(1));
                self.block(first);
                self.emit_urc();
                self.block(rest);
            }
            false => self.block(&lines),
        }
        let last = match last {
            Final::Ok => "OK".to_owned(),
            Final::Error => "ERROR".to_owned(),
            _ if self.cmee == 0 => "ERROR".to_owned(),
            Final::Cms(code) => format!("+CMS ERROR: {}", self.error_text(code, true)),
            Final::Cme(code) => format!("+CME ERROR: {}", self.error_text(code, false)),
        };
        self.line_out(&last);
    }

    /// The code, or with `AT+CMEE=2` its text where this modem knows it.
    fn error_text(&self, code: u16, cms: bool) -> String {
        let text = (self.cmee == 2).then(|| codes::text(code, cms)).flatten();
        text.map_or_else(|| code.to_string(), str::to_owned)
    }

    pub fn line_out(&mut self, line: &str) {
        self.block(&[line.to_owned()]);
    }

    /// Lines as one block: `\r\n`, then each line and `\r\n`.
    fn block(&mut self, lines: &[String]) {
        if !lines.is_empty() {
            self.out.extend_from_slice(b"\r\n");
        }
        for line in lines {
            self.out.extend_from_slice(line.as_bytes());
            self.out.extend_from_slice(b"\r\n");
            self.log(format!("<< {line}"));
        }
    }

    fn emit_urc(&mut self) {
        if let Some(urc) = self.urc.take() {
            self.line_out(&urc);
        }
    }

    fn emit_garbage(&mut self) {
        if !std::mem::take(&mut self.garbage) {
            return;
        }
        // 0xF8–0xFF never occur in UTF-8; a line cut off after its name.
        let noise: Vec<u8> = (0..8).map(|_| fastrand::u8(0xF8..=0xFF)).collect();
        self.out.extend_from_slice(&noise);
        self.out.extend_from_slice(b"\r\n+CMT");
        self.log(format!("<< (garbage {noise:02X?} then \"\\r\\n+CMT\")"));
    }

    /// Where a message from the network goes, per `AT+CNMI`: to the host
    /// (`+CMT`), or the SIM (`+CMTI` when asked for); its index if stored.
    pub fn receive(&mut self, hex: String) -> Option<usize> {
        if matches!(self.cnmi.mt, 2 | 3) {
            let len = pdus::tpdu_len(&hex).unwrap_or_default();
            self.route(format!("+CMT: ,{len}"), hex, "+CMT");
            return None;
        }
        match self.storage.place(Slot { stat: UNREAD, hex }) {
            Placed::Stored(i) => {
                if self.cnmi.mt == 1 {
                    self.line_out(&format!("+CMTI: \"SM\",{i}"));
                }
                Some(i)
            }
            Placed::Held => {
                self.log("-- storage full: message held, no +CMTI".into());
                None
            }
        }
    }

    /// A routed `+CMT`/`+CDS` and its PDU line, and, in phase 2+
    /// (`AT+CSMS=1`), the wait for its `AT+CNMA`.
    fn route(&mut self, head: String, hex: String, what: &str) {
        self.block(&[head, hex.clone()]);
        if self.csms == 1 {
            let id = self.next_ack_id;
            self.next_ack_id += 1;
            self.unacked.push_back(Unacked { id, hex });
            let timeout = self.config.ack_timeout;
            self.timers.push((timeout, Timer::AckTimeout(id)));
            self.log(format!("-- {what} waits for AT+CNMA"));
        }
    }

    /// Stores a message without any notification (held if the SIM is full).
    fn store_silently(&mut self, hex: String) {
        let _ = self.storage.place(Slot { stat: UNREAD, hex });
    }

    /// Slots freed: held messages go in, unannounced.
    pub fn freed(&mut self) {
        for i in self.storage.release_held() {
            self.log(format!("-- held message stored at {i}, no +CMTI"));
        }
    }

    /// The next 8-bit concatenation reference for a delivered long text.
    pub fn concat_ref(&mut self) -> u8 {
        let reference = self.next_concat_ref;
        self.next_concat_ref = reference.wrapping_add(1);
        reference
    }

    /// A delay has passed.
    pub fn fire(&mut self, timer: Timer) {
        match timer {
            Timer::StatusReport {
                mr,
                recipient,
                submitted,
            } => self.status_report(mr, &recipient, submitted),
            Timer::AckTimeout(id) => {
                let Some(at) = self.unacked.iter().position(|u| u.id == id) else {
                    return;
                };
                if let Some(unacked) = self.unacked.remove(at) {
                    self.log("-- no AT+CNMA in time: stored instead".into());
                    self.store_silently(unacked.hex);
                }
            }
            Timer::Reboot => {
                self.out.extend_from_slice(&[0x00, 0xFF, 0xFE]);
                let banner = format!(
                    "{} {} {} ready",
                    self.config.manufacturer, self.config.model, self.config.revision
                );
                self.log("<< (boot noise)".into());
                self.line_out(&banner);
                self.power_on();
            }
        }
    }

    fn status_report(&mut self, mr: u8, recipient: &str, submitted: DateTime<FixedOffset>) {
        let status = match self.config.report {
            ReportMode::Delivered => 0x00,
            ReportMode::Failed(octet) => octet,
            ReportMode::None => return,
        };
        let sca = pdus::sca(&self.smsc);
        let hex = pdus::status_report(&sca, mr, recipient, submitted, now(), status);
        match self.cnmi.ds {
            1 => {
                let len = pdus::tpdu_len(&hex).unwrap_or_default();
                self.route(format!("+CDS: {len}"), hex, "+CDS");
            }
            2 => match self.storage.place(Slot { stat: UNREAD, hex }) {
                Placed::Stored(i) => self.line_out(&format!("+CDSI: \"SM\",{i}")),
                Placed::Held => self.log("-- storage full: report held".into()),
            },
            _ => self.log(format!("-- status report for mr {mr} dropped (CNMI ds=0)")),
        }
    }

    /// A message the host sent: recorded, and its report asked for.
    pub fn record_sent(&mut self, sms: SentSms) {
        if sms.status_report && self.config.report != ReportMode::None {
            let timer = Timer::StatusReport {
                mr: sms.mr,
                recipient: sms.to.clone(),
                submitted: now(),
            };
            self.timers.push((self.config.report_delay, timer));
        }
        self.sent.push(sms);
    }

    /// `AT+CMGR`/`AT+CMGL`'s `<stat>` read: unread becomes read.
    pub fn mark_read(&mut self, indexes: &[usize]) {
        self.storage.mark_read(indexes);
    }

    /// A full SIM: every free slot taken by an old, read message.
    pub fn fill_storage(&mut self) {
        let sca = pdus::sca(&self.smsc);
        let hex = pdus::deliver(&sca, "+15550000009", "old message", 0, now())
            .ok()
            .and_then(|parts| parts.into_iter().next())
            .unwrap_or_else(|| "00".into());
        let filled = self.storage.fill(&Slot { stat: READ, hex });
        self.log(format!("-- storage full: {filled} slots filled"));
    }
}

/// The service centre's clock: UTC.
pub(super) fn now() -> DateTime<FixedOffset> {
    Utc::now().fixed_offset()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::modem::sim::config::Fault;

    /// Commands, then the bits that go around their arguments.
    const PIECES: [&[u8]; 14] = [
        b"AT+CMGS=",
        b"AT+CMGR=",
        b"AT+CMGD=",
        b"AT+CMGL=",
        b"AT+CPMS=",
        b"AT+CNMI=",
        b"AT+CPIN=",
        b"AT+CSCA=",
        b"\"",
        b",",
        b"\n",
        b"=?",
        b"?",
        b"00",
    ];

    /// A line: maybe junk, a command, maybe a number and bits, maybe more
    /// junk, usually `\r`; then maybe hex ended by Ctrl-Z, ESC or nothing.
    fn line(rng: &mut fastrand::Rng) -> Vec<u8> {
        let mut input = Vec::new();
        let junk = |rng: &mut fastrand::Rng, input: &mut Vec<u8>| {
            input.extend((0..rng.usize(0..4)).map(|_| rng.u8(..)));
        };
        if rng.u8(..4) == 0 {
            junk(rng, &mut input);
        }
        input.extend_from_slice(PIECES[rng.usize(..8)]);
        if rng.bool() {
            input.extend_from_slice(rng.u16(..300).to_string().as_bytes());
        }
        for _ in 0..rng.usize(0..3) {
            input.extend_from_slice(PIECES[rng.usize(8..PIECES.len())]);
        }
        if rng.u8(..4) == 0 {
            junk(rng, &mut input);
        }
        if rng.u8(..8) != 0 {
            input.push(b'\r');
        }
        if rng.bool() {
            let hex = (0..rng.usize(0..400)).map(|_| b"0123456789ABCDEF"[rng.usize(..16)]);
            input.extend(hex);
            input.extend_from_slice([&b"\x1A"[..], b"\x1B", b""][rng.usize(..3)]);
        }
        input
    }

    #[test]
    fn no_input_makes_it_panic() {
        let faults = [
            Fault::Garbage,
            Fault::ResetMidSend,
            Fault::StorageFull,
            Fault::CmsOnNextSend(1),
        ];
        let config = SimConfig {
            storage: 3,
            ..SimConfig::default()
        };
        let mut modem = Modem::new(config);
        let mut rng = fastrand::Rng::with_seed(18);
        let now = tokio::time::Instant::now();
        let mut sends = 0;
        for round in 0..20_000 {
            modem.feed(&line(&mut rng), now);
            let reached = modem.transcript.iter().any(|l| l.ends_with("<Ctrl-Z>"));
            sends += usize::from(reached);
            modem.transcript.clear();
            if round % 97 == 0 {
                let _ = modem.receive(format!("{:X}", rng.u128(..)));
                modem.fire(Timer::Reboot);
                modem.fire(Timer::AckTimeout(rng.u64(..4)));
            }
            if round % 211 == 0 {
                match faults[rng.usize(..faults.len())].clone() {
                    Fault::Garbage => modem.garbage = true,
                    Fault::ResetMidSend => modem.reset_mid_send = true,
                    Fault::StorageFull => modem.fill_storage(),
                    _ => modem.cms_next_send = Some(1),
                }
            }
            modem.out.clear();
            modem.timers.clear();
        }
        assert!(sends > 10, "the PDU path was reached {sends} times");
    }
}
