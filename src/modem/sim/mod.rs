//! A simulated GSM modem, for tests and `smsflow modem-sim`: the modem's
//! side of the AT dialogue (3GPP TS 27.007 / 27.005, PDU mode) as real
//! modems speak it (echo, `\r\n`-framed lines, the `> ` prompt, `+CMTI`,
//! `+CMT`, `+CDS`…), with a SIM (PIN, message storage), a scripted
//! "network" (messages from phones, status reports) and faults to inject.
//!
//! [`SimModem::serve`] answers on any stream (`tokio::io::duplex` in unit
//! tests); [`SimModem::on_pty`] puts it on a pseudo-terminal at a path, for
//! clients that open a serial port (gammu checks its realism in
//! `tests/modem_gammu.rs`).
//!
//! Files: `config.rs` (configuration, faults, sent messages), `pdus.rs`
//! (the DELIVER and STATUS-REPORT encoders), `storage.rs` (the SIM's
//! slots), `state.rs` (the modem's state and output), `commands.rs` (the AT
//! commands), `codes.rs` (their error codes), `link.rs` (serving a
//! connection, timers), `pty.rs` (the pty).

mod codes;
mod commands;
mod config;
mod link;
pub mod pdus;
mod pty;
mod state;
mod storage;

#[cfg(test)]
mod tests;

use std::path::Path;

use tokio::io::{AsyncRead, AsyncWrite};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

pub use config::{Fault, ReportMode, SentSms, SimConfig};
pub use pty::PtyHandle;

use crate::modem::pdu::PduError;
use link::Shared;
use state::{Lock, Modem};

/// A simulated modem. Clones are handles on the same modem.
#[derive(Debug, Clone)]
pub struct SimModem {
    shared: Shared,
}

impl SimModem {
    /// A modem at power-on, its SIM empty.
    pub fn new(config: SimConfig) -> SimModem {
        SimModem {
            shared: Shared::new(Modem::new(config)),
        }
    }

    /// Answers the AT dialogue on `stream` until it ends (or fails). One
    /// stream at a time: the modem has one serial port.
    pub async fn serve<S>(&self, stream: S) -> std::io::Result<()>
    where
        S: AsyncRead + AsyncWrite + Unpin + Send,
    {
        self.shared.serve(stream, CancellationToken::new()).await
    }

    /// Serves the modem on a new pseudo-terminal whose slave `link` becomes
    /// a symlink to (an existing file or link there is replaced). Needs a
    /// tokio runtime.
    pub async fn on_pty(&self, link: &Path) -> std::io::Result<PtyHandle> {
        PtyHandle::open(self.shared.clone(), link)
    }

    /// A phone `from` sends `text`: its SMS-DELIVER(s), cut as smsflow cuts
    /// a text (concatenated with an 8-bit reference when long), reach the
    /// modem, which stores and announces them per `AT+CNMI`. Returns the
    /// storage index of each part stored; parts routed to the host
    /// (`+CMT`) or held back by a full SIM have none. A text of more than
    /// 255 parts is refused (the transcript says so).
    pub fn deliver(&self, from: &str, text: &str) -> Vec<usize> {
        self.shared.with(|m| {
            let sca = pdus::sca(&m.smsc);
            let reference = m.concat_ref();
            match pdus::deliver(&sca, from, text, reference, state::now()) {
                Ok(parts) => parts.into_iter().filter_map(|p| m.receive(p)).collect(),
                Err(e) => {
                    m.log(format!("-- deliver refused: {e}"));
                    Vec::new()
                }
            }
        })
    }

    /// Any PDU in hex (SCA first), taken as is, as if the network had
    /// delivered it: out-of-order or duplicate parts, 16-bit references,
    /// even malformed TPDUs. Returns its storage index, as [`deliver`]
    /// does; an error only if `hex` is not hex.
    ///
    /// [`deliver`]: SimModem::deliver
    pub fn deliver_pdu(&self, hex: &str) -> Result<Option<usize>, PduError> {
        let hex = hex.trim();
        if let Some((position, found)) = hex
            .chars()
            .enumerate()
            .find(|(_, c)| !c.is_ascii_hexdigit())
        {
            return Err(PduError::BadHex { position, found });
        }
        if !hex.len().is_multiple_of(2) {
            return Err(PduError::OddHex(hex.len()));
        }
        let hex = hex.to_ascii_uppercase();
        Ok(self.shared.with(|m| m.receive(hex)))
    }

    /// Every message the host sent, one per `AT+CMGS` that was answered
    /// `+CMGS`, in order.
    pub fn sent(&self) -> Vec<SentSms> {
        self.shared.with(|m| m.sent.clone())
    }

    /// The SIM's messages: index and PDU hex (SCA first).
    pub fn stored(&self) -> Vec<(usize, String)> {
        let all = self.shared.with(|m| m.storage.list(None));
        all.into_iter().map(|(i, slot)| (i, slot.hex)).collect()
    }

    /// Signal strength for `AT+CSQ` (0–31; higher values count as 31).
    pub fn set_signal(&self, rssi: u8) {
        self.shared.with(|m| m.rssi = rssi.min(31));
    }

    /// On or off the network (`AT+CREG?`, `AT+CSQ`, sends).
    pub fn set_registered(&self, registered: bool) {
        self.shared.with(|m| m.registered = registered);
    }

    /// Injects a fault (see [`Fault`] for each).
    pub fn inject(&self, fault: Fault) {
        let now = Instant::now();
        self.shared.with(|m| {
            m.log(format!("-- fault injected: {fault:?}"));
            match fault {
                Fault::PinRequired if m.config.pin.is_some() => m.lock = Lock::Pin(3),
                Fault::PinRequired => m.log("-- no PIN configured: ignored".into()),
                Fault::NoNetwork => m.registered = false,
                Fault::CmsOnNextSend(code) => m.cms_next_send = Some(code),
                Fault::StorageFull => m.fill_storage(),
                Fault::ResetMidSend => m.reset_mid_send = true,
                Fault::Silent(duration) => m.silent_until = Some(now + duration),
                Fault::HangOn(prefix) => m.hang_on = Some(prefix),
                Fault::Garbage => m.garbage = true,
                Fault::Urc(line) => m.urc = Some(line),
            }
        });
    }

    /// What was said, in order: `>> ` the host's lines, `<< ` the modem's,
    /// `-- ` what happened besides (faults, reports, storage).
    pub fn transcript(&self) -> Vec<String> {
        self.shared.with(|m| m.transcript.iter().cloned().collect())
    }

    /// The configuration the modem was made with.
    pub fn config(&self) -> SimConfig {
        self.shared.with(|m| m.config.clone())
    }
}
