//! The AT command link to a modem (3GPP TS 27.007, 27.005): one command at
//! a time, its response lines up to the final result code, and the
//! unsolicited result codes (URCs) the modem sends at any time — between
//! commands or in the middle of a response — set apart for the backend.
//!
//! What comes off the wire is not trusted: echoed commands are skipped,
//! bytes that are not UTF-8 are read lossily, an over-long line is dropped,
//! and a modem that does not answer is a [`AtError::Timeout`], never a hang.

use std::collections::VecDeque;
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::time::Instant;

use super::errors;

/// Ctrl-Z: ends the PDU after `AT+CMGS`'s prompt.
const CTRL_Z: u8 = 0x1A;
/// ESC: cancels a prompt (a PDU that will not come).
const ESC: u8 = 0x1B;
/// A line longer than this is garbage (the longest real one, a PDU in hex
/// after `+CMGL`, is under 400 characters).
const MAX_LINE: usize = 4096;

/// A command that failed, named with the command it answered.
#[derive(Debug, thiserror::Error)]
pub enum AtError {
    #[error("{command}: no answer within {after:?}")]
    Timeout { command: String, after: Duration },
    #[error("{command}: ERROR")]
    Error { command: String },
    #[error("{command}: +CMS ERROR {code} ({})", errors::cms(*.code))]
    Cms { command: String, code: u16 },
    #[error("{command}: +CME ERROR {code} ({})", errors::cme(*.code))]
    Cme { command: String, code: u16 },
    #[error("{command}: unexpected answer: {message}")]
    Protocol { command: String, message: String },
    #[error("the serial port closed")]
    Closed,
    #[error("the serial port failed: {0}")]
    Io(#[from] std::io::Error),
}

impl AtError {
    /// The port is gone or broken: reconnect, rather than try the next command.
    pub fn is_link(&self) -> bool {
        matches!(self, AtError::Closed | AtError::Io(_))
    }
}

/// An unsolicited result code, with the PDU line that follows `+CMT` and `+CDS`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Urc {
    /// `+CMTI: "SM",3`: a message was stored at this index of this memory.
    Stored { memory: String, index: u32 },
    /// `+CDSI: "SM",4`: a status report was stored.
    ReportStored { memory: String, index: u32 },
    /// `+CMT: ,<len>` + PDU: a message routed straight here (acknowledge with `AT+CNMA`).
    Message { pdu: String },
    /// `+CDS: <len>` + PDU: a status report routed straight here.
    Report { pdu: String },
    /// Anything else unsolicited (`RING`, `+CREG: 1`, a boot banner): logged.
    Other(String),
}

/// `command` as logs and errors show it: a PIN (`AT+CPIN="1234"`) hidden.
fn shown(command: &str) -> std::borrow::Cow<'_, str> {
    match command.get(..8) {
        Some(start) if start.eq_ignore_ascii_case("AT+CPIN=") => "AT+CPIN=<redacted>".into(),
        _ => command.into(),
    }
}

/// What [`Link::unsolicited`] made of a line.
enum Unsolicited {
    Not,
    /// `+CMT`/`+CDS`: the PDU line comes next.
    Header,
    Is(Urc),
}

/// One read from the wire.
#[derive(Debug, PartialEq, Eq)]
enum Read {
    Line(String),
    Prompt,
}

/// A command's answer: its information lines (the final `OK` left out).
pub type Lines = Vec<String>;

/// The link over a serial port (or any byte stream: a test's pipe).
pub struct Link<P> {
    port: P,
    buf: Vec<u8>,
    urcs: VecDeque<Urc>,
    /// The last command sent: its echo is skipped.
    echo: Option<String>,
    /// A `+CMT`/`+CDS` header read, waiting for its PDU line.
    pending: Option<fn(String) -> Urc>,
    /// How long the current wait is, for its error.
    waiting: Duration,
}

impl<P: AsyncRead + AsyncWrite + Unpin> Link<P> {
    pub fn new(port: P) -> Self {
        Link {
            port,
            buf: Vec::with_capacity(512),
            urcs: VecDeque::new(),
            echo: None,
            pending: None,
            waiting: Duration::ZERO,
        }
    }

    /// Send `command` (without `AT`'s line end) and read its answer until
    /// the final result code, at most `timeout`.
    pub async fn command(&mut self, command: &str, timeout: Duration) -> Result<Lines, AtError> {
        let shown = shown(command);
        tracing::trace!(command = %shown, "AT >>");
        self.write(command.as_bytes(), b"\r").await?;
        self.waiting = timeout;
        self.answer(&shown, Instant::now() + timeout).await
    }

    /// `AT+CMGS=<len>`, then the PDU after the `> ` prompt: the message
    /// reference the modem gave it.
    pub async fn send_pdu(
        &mut self,
        tpdu_len: usize,
        hex: &str,
        timeout: Duration,
    ) -> Result<u8, AtError> {
        let command = format!("AT+CMGS={tpdu_len}");
        self.write(command.as_bytes(), b"\r").await?;
        self.waiting = timeout;
        let deadline = Instant::now() + timeout;
        loop {
            match self.read(&command, deadline).await? {
                Read::Prompt => break,
                Read::Line(line) => {
                    if let Some(lines) = self.final_or_urc(&command, line, &mut Vec::new())? {
                        return Err(AtError::Protocol {
                            command,
                            message: format!("OK without the '> ' prompt: {lines:?}"),
                        });
                    }
                }
            }
        }
        tracing::trace!(hex, "AT >> PDU");
        self.echo = None;
        self.port.write_all(hex.as_bytes()).await?;
        self.port.write_all(&[CTRL_Z]).await?;
        self.port.flush().await?;
        let lines = self.answer(&command, deadline).await?;
        lines
            .iter()
            .find_map(|l| l.strip_prefix("+CMGS:"))
            .and_then(|mr| mr.trim().split(',').next()?.trim().parse::<u8>().ok())
            .ok_or_else(|| AtError::Protocol {
                command,
                message: format!("no +CMGS: <mr> in {lines:?}"),
            })
    }

    /// Cancel a prompt the modem may still be waiting at (after a timeout).
    pub async fn cancel(&mut self) -> Result<(), AtError> {
        self.write(&[ESC], b"").await
    }

    /// The next unsolicited result code; waits for one at most `wait`
    /// (`None`: none came).
    pub async fn urc(&mut self, wait: Duration) -> Result<Option<Urc>, AtError> {
        let deadline = Instant::now() + wait;
        self.waiting = wait;
        loop {
            if let Some(u) = self.urcs.pop_front() {
                return Ok(Some(u));
            }
            match self.read("(waiting)", deadline).await {
                Ok(Read::Line(line)) => {
                    if self
                        .final_or_urc("(waiting)", line, &mut Vec::new())?
                        .is_some()
                    {
                        tracing::debug!("AT: a final result code with no command pending; ignored");
                    }
                }
                Ok(Read::Prompt) => {}
                Err(AtError::Timeout { .. }) => return Ok(self.urcs.pop_front()),
                Err(e) => return Err(e),
            }
        }
    }

    /// URCs read while a command ran, oldest first.
    pub fn take_urcs(&mut self) -> Vec<Urc> {
        self.urcs.drain(..).collect()
    }

    async fn write(&mut self, bytes: &[u8], end: &[u8]) -> Result<(), AtError> {
        self.echo = std::str::from_utf8(bytes).ok().map(str::to_owned);
        self.port.write_all(bytes).await?;
        self.port.write_all(end).await?;
        self.port.flush().await?;
        Ok(())
    }

    async fn answer(&mut self, command: &str, deadline: Instant) -> Result<Lines, AtError> {
        let mut lines = Vec::new();
        loop {
            match self.read(command, deadline).await? {
                Read::Prompt => {}
                Read::Line(line) => {
                    if let Some(done) = self.final_or_urc(command, line, &mut lines)? {
                        return Ok(done);
                    }
                }
            }
        }
    }

    /// Sort one line: the final result code ends the answer (`Some`, or an
    /// error), a URC is set apart, the rest is an information line.
    fn final_or_urc(
        &mut self,
        command: &str,
        line: String,
        lines: &mut Lines,
    ) -> Result<Option<Lines>, AtError> {
        tracing::trace!(line = %shown(&line), "AT <<");
        if let Some(make) = self.pending.take() {
            self.urcs.push_back(make(line));
            return Ok(None);
        }
        if self.echo.as_deref() == Some(line.as_str()) {
            self.echo = None;
            return Ok(None);
        }
        let command = || command.to_owned();
        match line.as_str() {
            "OK" => return Ok(Some(std::mem::take(lines))),
            "ERROR" | "NO CARRIER" | "COMMAND NOT SUPPORT" => {
                return Err(AtError::Error { command: command() })
            }
            _ => {}
        }
        if let Some(code) = line.strip_prefix("+CMS ERROR:") {
            let code = code.trim().parse().unwrap_or(500);
            return Err(AtError::Cms {
                command: command(),
                code,
            });
        }
        if let Some(code) = line.strip_prefix("+CME ERROR:") {
            let code = code.trim().parse().unwrap_or(100);
            return Err(AtError::Cme {
                command: command(),
                code,
            });
        }
        match self.unsolicited(&line) {
            Unsolicited::Not => {}
            Unsolicited::Header => return Ok(None),
            Unsolicited::Is(urc) => {
                self.urcs.push_back(urc);
                return Ok(None);
            }
        }
        lines.push(line);
        Ok(None)
    }

    /// Whether `line` is an unsolicited result code.
    fn unsolicited(&mut self, line: &str) -> Unsolicited {
        let stored = |rest: &str| {
            let (memory, index) = rest.trim().rsplit_once(',')?;
            let memory = memory.trim().trim_matches('"').to_owned();
            Some((memory, index.trim().parse().ok()?))
        };
        if let Some(rest) = line.strip_prefix("+CMTI:") {
            return match stored(rest) {
                Some((memory, index)) => Unsolicited::Is(Urc::Stored { memory, index }),
                None => Unsolicited::Is(Urc::Other(line.to_owned())),
            };
        }
        if let Some(rest) = line.strip_prefix("+CDSI:") {
            return match stored(rest) {
                Some((memory, index)) => Unsolicited::Is(Urc::ReportStored { memory, index }),
                None => Unsolicited::Is(Urc::Other(line.to_owned())),
            };
        }
        if line.starts_with("+CMT:") {
            self.pending = Some(|pdu| Urc::Message { pdu });
            return Unsolicited::Header;
        }
        if line.starts_with("+CDS:") {
            self.pending = Some(|pdu| Urc::Report { pdu });
            return Unsolicited::Header;
        }
        // `+CREG: <stat>` unsolicited; `+CREG: <n>,<stat>` answers `AT+CREG?`.
        if line == "RING" || line.starts_with("+CREG:") && !line.contains(',') {
            return Unsolicited::Is(Urc::Other(line.to_owned()));
        }
        Unsolicited::Not
    }

    /// The next line or prompt, at most until `deadline`.
    async fn read(&mut self, command: &str, deadline: Instant) -> Result<Read, AtError> {
        loop {
            // Line ends first: "\r\n" between lines, a lone "\r" or "\n" too.
            let start = self
                .buf
                .iter()
                .position(|b| *b != b'\r' && *b != b'\n')
                .unwrap_or(self.buf.len());
            self.buf.drain(..start);
            if self.buf.starts_with(b"> ") || self.buf == b">" {
                self.buf.drain(..self.buf.len().min(2));
                return Ok(Read::Prompt);
            }
            if let Some(end) = self.buf.iter().position(|b| *b == b'\r' || *b == b'\n') {
                let line: Vec<u8> = self.buf.drain(..end).collect();
                let line = String::from_utf8_lossy(&line).trim().to_owned();
                if !line.is_empty() {
                    return Ok(Read::Line(line));
                }
                continue;
            }
            if self.buf.len() > MAX_LINE {
                tracing::warn!(
                    bytes = self.buf.len(),
                    "AT: a line longer than {MAX_LINE} bytes; dropped"
                );
                self.buf.clear();
            }
            let mut chunk = [0u8; 512];
            let n = tokio::time::timeout_at(deadline, self.port.read(&mut chunk))
                .await
                .map_err(|_| AtError::Timeout {
                    command: command.to_owned(),
                    after: self.waiting,
                })??;
            if n == 0 {
                return Err(AtError::Closed);
            }
            self.buf.extend_from_slice(&chunk[..n]);
        }
    }
}

#[cfg(test)]
mod tests;
