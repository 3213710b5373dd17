//! One modem's session: the init sequence (with vendor profiles), and the
//! SMS commands the backend uses — send a PDU, read, list and delete
//! stored messages, acknowledge routed ones, signal and registration.

use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite};

use super::at::{AtError, Lines, Link, Urc};

/// How to set a modem up.
#[derive(Debug, Clone)]
pub struct Setup {
    /// Vendor commands sent before the SMS set-up (each may answer ERROR).
    pub vendor: Vec<String>,
    /// `AT+CNMI`: how messages and status reports are announced.
    pub cnmi: String,
    /// The SIM's PIN, entered once when the SIM asks for it.
    pub pin: Option<String>,
    /// The message storage (`AT+CPMS`): `SM` (SIM), `ME` (modem), `MT` (both).
    pub storage: String,
    /// The service centre to set (`AT+CSCA`); none: the SIM's.
    pub smsc: Option<String>,
    /// Commands sent last, each must answer OK.
    pub init: Vec<String>,
    /// How long a command may take.
    pub timeout: Duration,
}

/// Why the modem is not ready. The PIN cases are never retried on their
/// own: a third wrong PIN locks the SIM (PUK).
#[derive(Debug, thiserror::Error)]
pub enum InitError {
    #[error("the SIM asks for its PIN and none is configured (set `pin:`)")]
    PinRequired,
    #[error("the SIM refused the configured PIN ({0}); not tried again, as a third wrong PIN locks the SIM: fix `pin:` and restart")]
    WrongPin(AtError),
    #[error("the SIM is locked and asks for its PUK; unlock it in a phone, then restart")]
    PukRequired,
    #[error("not registered on a network (AT+CREG? says {0}: {name})", name = registration(*.0))]
    NotRegistered(u8),
    #[error("init step {step:?} failed: {source}")]
    Step {
        step: &'static str,
        #[source]
        source: AtError,
    },
}

impl InitError {
    /// Trying again (after a back-off) may help; the PIN cases need an operator.
    pub fn retryable(&self) -> bool {
        !matches!(
            self,
            InitError::PinRequired | InitError::WrongPin(_) | InitError::PukRequired
        )
    }

    /// The port is gone or broken.
    pub fn is_link(&self) -> bool {
        matches!(self, InitError::Step { source, .. } if source.is_link())
    }
}

/// `AT+CREG?`'s `<stat>` in words.
pub fn registration(stat: u8) -> &'static str {
    match stat {
        0 => "not registered, not searching",
        1 => "registered, home network",
        2 => "not registered, searching",
        3 => "registration denied",
        5 => "registered, roaming",
        _ => "unknown",
    }
}

/// What the modem said about itself at init.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Status {
    /// `AT+CSQ`'s RSSI: 0–31 (−113 to −51 dBm), 99 unknown.
    pub signal: u8,
    /// `AT+CREG?`'s `<stat>`.
    pub registration: u8,
    /// `AT+CSCA?`'s number.
    pub smsc: Option<String>,
    /// `AT+CSMS=1` accepted: routed messages need `AT+CNMA`.
    pub phase2plus: bool,
}

/// A modem on a link.
pub struct Modem<P> {
    pub link: Link<P>,
    timeout: Duration,
    phase2plus: bool,
}

impl<P: AsyncRead + AsyncWrite + Unpin> Modem<P> {
    pub fn new(port: P, timeout: Duration) -> Self {
        Modem {
            link: Link::new(port),
            timeout,
            phase2plus: false,
        }
    }

    async fn at(&mut self, command: &str) -> Result<Lines, AtError> {
        self.link.command(command, self.timeout).await
    }

    /// Run the init sequence: every step's failure names the step.
    pub async fn init(&mut self, setup: &Setup) -> Result<Status, InitError> {
        let step = |step: &'static str| move |source| InitError::Step { step, source };
        // A modem left at a `> ` prompt takes ESC; then it must answer AT.
        self.link.cancel().await.map_err(step("wake"))?;
        let mut answered = Err(AtError::Closed);
        for _ in 0..3 {
            answered = self.at("AT").await;
            if answered.is_ok() {
                break;
            }
        }
        answered.map_err(step("AT"))?;
        self.at("ATE0").await.map_err(step("echo off (ATE0)"))?;
        if let Err(e) = self.at("AT+CMEE=1").await {
            tracing::info!(error = %e, "numeric error codes not supported");
        }
        for command in &setup.vendor {
            if let Err(e) = self.at(command).await {
                tracing::info!(error = %e, "profile command refused");
            }
        }
        self.unlock(setup.pin.as_deref()).await?;
        self.at("AT+CMGF=0")
            .await
            .map_err(step("PDU mode (AT+CMGF=0)"))?;
        self.phase2plus = self.at("AT+CSMS=1").await.is_ok();
        let memory = &setup.storage;
        let cpms = format!("AT+CPMS=\"{memory}\",\"{memory}\",\"{memory}\"");
        self.at(&cpms).await.map_err(step("storage (AT+CPMS)"))?;
        self.at(&setup.cnmi)
            .await
            .map_err(step("notifications (AT+CNMI)"))?;
        if let Some(smsc) = &setup.smsc {
            let csca = format!("AT+CSCA=\"{smsc}\"");
            self.at(&csca)
                .await
                .map_err(step("service centre (AT+CSCA)"))?;
        }
        let smsc = self
            .smsc()
            .await
            .map_err(step("service centre (AT+CSCA?)"))?;
        for command in &setup.init {
            self.at(command).await.map_err(step("init (configured)"))?;
        }
        let registration = self
            .registration()
            .await
            .map_err(step("registration (AT+CREG?)"))?;
        let signal = self.signal().await.map_err(step("signal (AT+CSQ)"))?;
        if !matches!(registration, 1 | 5) {
            return Err(InitError::NotRegistered(registration));
        }
        Ok(Status {
            signal,
            registration,
            smsc,
            phase2plus: self.phase2plus,
        })
    }

    /// `AT+CPIN?`, and the PIN once when the SIM asks.
    async fn unlock(&mut self, pin: Option<&str>) -> Result<(), InitError> {
        let step = |source| InitError::Step {
            step: "SIM (AT+CPIN?)",
            source,
        };
        let state = |lines: &Lines| {
            lines
                .iter()
                .find_map(|l| l.strip_prefix("+CPIN:"))
                .map(|s| s.trim().trim_matches('"').to_owned())
                .unwrap_or_default()
        };
        let lines = self.at("AT+CPIN?").await.map_err(step)?;
        match state(&lines).as_str() {
            "READY" => return Ok(()),
            "SIM PIN" => {}
            "SIM PUK" => return Err(InitError::PukRequired),
            other => {
                return Err(step(AtError::Protocol {
                    command: "AT+CPIN?".into(),
                    message: format!("SIM state {other:?}"),
                }))
            }
        }
        let pin = pin.ok_or(InitError::PinRequired)?;
        match self.at(&format!("AT+CPIN=\"{pin}\"")).await {
            Ok(_) => {}
            Err(e @ (AtError::Cme { .. } | AtError::Cms { .. } | AtError::Error { .. })) => {
                return Err(InitError::WrongPin(e))
            }
            Err(e) => return Err(step(e)),
        }
        // The SIM takes a moment after its PIN; it must say READY.
        for _ in 0..10 {
            if let Ok(lines) = self.at("AT+CPIN?").await {
                if state(&lines) == "READY" {
                    return Ok(());
                }
            }
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
        Err(step(AtError::Protocol {
            command: "AT+CPIN?".into(),
            message: "the SIM did not become READY after its PIN".into(),
        }))
    }

    /// `AT+CSCA?`: the service centre's number, if set.
    pub async fn smsc(&mut self) -> Result<Option<String>, AtError> {
        let lines = self.at("AT+CSCA?").await?;
        Ok(field(&lines, "+CSCA:", 0)
            .map(|n| n.trim_matches('"').to_owned())
            .filter(|n| !n.is_empty()))
    }

    /// `AT+CREG?`'s `<stat>`.
    pub async fn registration(&mut self) -> Result<u8, AtError> {
        let lines = self.at("AT+CREG?").await?;
        number(&lines, "+CREG:", 1, "AT+CREG?")
    }

    /// `AT+CSQ`'s RSSI (0–31, 99 unknown).
    pub async fn signal(&mut self) -> Result<u8, AtError> {
        let lines = self.at("AT+CSQ").await?;
        number(&lines, "+CSQ:", 0, "AT+CSQ")
    }

    /// Hand a PDU over (`AT+CMGS`): its message reference.
    pub async fn send(
        &mut self,
        tpdu_len: usize,
        hex: &str,
        timeout: Duration,
    ) -> Result<u8, AtError> {
        let sent = self.link.send_pdu(tpdu_len, hex, timeout).await;
        if let Err(AtError::Timeout { .. }) = &sent {
            // It may still sit at the prompt: ESC cancels what it holds.
            let _ = self.link.cancel().await;
        }
        sent
    }

    /// `AT+CMGR=<index>`: the stored PDU (hex), or none when the slot is
    /// empty (`+CMS ERROR: 321`, or an answer without a PDU).
    pub async fn read(&mut self, index: u32) -> Result<Option<String>, AtError> {
        match self.at(&format!("AT+CMGR={index}")).await {
            Ok(lines) => Ok(pdu_after(&lines, "+CMGR:").next().map(|(_, pdu)| pdu)),
            Err(AtError::Cms { code: 321, .. }) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// `AT+CMGL=4`: every stored message, as (index, PDU hex).
    pub async fn list(&mut self) -> Result<Vec<(u32, String)>, AtError> {
        let lines = self.at("AT+CMGL=4").await?;
        Ok(pdu_after(&lines, "+CMGL:").collect())
    }

    /// `AT+CMGD=<index>`; an already empty slot is deleted.
    pub async fn delete(&mut self, index: u32) -> Result<(), AtError> {
        match self.at(&format!("AT+CMGD={index}")).await {
            Ok(_) | Err(AtError::Cms { code: 321, .. }) => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// `AT+CNMA`: acknowledge a routed message or report (phase 2+ only).
    pub async fn acknowledge(&mut self) -> Result<(), AtError> {
        if !self.phase2plus {
            return Ok(());
        }
        match self.at("AT+CNMA").await {
            Ok(_) | Err(AtError::Cms { code: 340, .. }) => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// The next unsolicited result code, waiting at most `wait`.
    pub async fn urc(&mut self, wait: Duration) -> Result<Option<Urc>, AtError> {
        self.link.urc(wait).await
    }
}

/// The `n`th comma-separated field after `prefix` in the first line that has it.
fn field<'a>(lines: &'a Lines, prefix: &str, n: usize) -> Option<&'a str> {
    let rest = lines.iter().find_map(|l| l.strip_prefix(prefix))?;
    rest.split(',').nth(n).map(str::trim)
}

/// That field as a number, or a protocol error naming the answer.
fn number(lines: &Lines, prefix: &str, n: usize, command: &str) -> Result<u8, AtError> {
    field(lines, prefix, n)
        .and_then(|v| v.parse().ok())
        .ok_or_else(|| AtError::Protocol {
            command: command.to_owned(),
            message: format!("no number in {lines:?}"),
        })
}

/// `+CMGR:`/`+CMGL:` headers, each followed by its PDU line: (index, PDU).
/// `+CMGR` has no index (0 is given); a header without its PDU is skipped.
fn pdu_after<'a>(lines: &'a Lines, prefix: &'a str) -> impl Iterator<Item = (u32, String)> + 'a {
    lines.iter().enumerate().filter_map(move |(i, line)| {
        let header = line.strip_prefix(prefix)?;
        let pdu = lines.get(i + 1)?;
        if pdu.starts_with('+') || !pdu.bytes().all(|b| b.is_ascii_hexdigit()) {
            return None;
        }
        let index = match prefix {
            "+CMGL:" => header.split(',').next()?.trim().parse().ok()?,
            _ => 0,
        };
        Some((index, pdu.clone()))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lines(l: &[&str]) -> Lines {
        l.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn stored_lists_are_read_and_broken_entries_skipped() {
        let l = lines(&[
            "+CMGL: 1,0,,24",
            "07911326040000F0040B",
            "+CMGL: 2,1,,30",
            "+CMGL: 3,1,,24",
            "0791ZZ",
            "+CMGL: 4,1,,24",
            "00AB",
        ]);
        let got: Vec<(u32, String)> = pdu_after(&l, "+CMGL:").collect();
        assert_eq!(
            got,
            vec![(1, "07911326040000F0040B".into()), (4, "00AB".into())]
        );
        assert_eq!(field(&lines(&["+CREG: 0,5"]), "+CREG:", 1), Some("5"));
        assert!(number(&lines(&["+CSQ: x"]), "+CSQ:", 0, "AT+CSQ").is_err());
    }
}
