//! What a simulated modem is configured with, the faults a test can inject
//! into it, and what it records of each message it was asked to send.

use std::time::Duration;

use crate::modem::pdu::Concat;

/// How the simulated modem starts: its SIM, its identity, and what its
/// "network" does with status reports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SimConfig {
    /// The SIM's PIN; `None`: the SIM needs none (`+CPIN: READY` at once).
    pub pin: Option<String>,
    /// SIM message slots (`AT+CPMS` total); indexes run from 1.
    pub storage: usize,
    /// The service centre's number (`AT+CSCA?`, and the SCA of stored PDUs).
    pub smsc: String,
    /// `AT+CGMI`.
    pub manufacturer: String,
    /// `AT+CGMM`.
    pub model: String,
    /// `AT+CGMR`.
    pub revision: String,
    /// `AT+CGSN`.
    pub imei: String,
    /// `AT+CIMI`.
    pub imsi: String,
    /// What follows a send that asked for a status report (TP-SRR).
    pub report: ReportMode,
    /// How long after the send that report comes.
    pub report_delay: Duration,
    /// How long a `+CMT`/`+CDS` routed to the host (with `AT+CSMS=1`) waits
    /// for `AT+CNMA` before the modem stores it instead.
    pub ack_timeout: Duration,
    /// The TP-MR the first send is answered with; it then counts up and
    /// wraps from 255 to 0.
    pub first_reference: u8,
    /// `AT+CSQ`'s rssi (0–31) at power-on.
    pub rssi: u8,
}

impl Default for SimConfig {
    fn default() -> Self {
        SimConfig {
            pin: None,
            storage: 20,
            smsc: "+15550000000".into(),
            manufacturer: "Smsflow".into(),
            model: "SimModem 1".into(),
            revision: "1.0".into(),
            imei: "356938035643809".into(),
            imsi: "001010123456789".into(),
            report: ReportMode::Delivered,
            report_delay: Duration::from_millis(200),
            ack_timeout: Duration::from_secs(10),
            first_reference: 0,
            rssi: 20,
        }
    }
}

/// The status report the network sends for a message that asked for one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ReportMode {
    /// TP-ST 0x00: delivered.
    #[default]
    Delivered,
    /// This TP-ST (e.g. 0x46, validity period expired; 0x20–0x3F pending).
    Failed(u8),
    /// No report at all.
    None,
}

/// A fault to inject (see `SimModem::inject`). Each one-shot fault acts on
/// the next command it concerns and is then spent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fault {
    /// Ask for the PIN again, as after a power cycle (needs `SimConfig::pin`).
    PinRequired,
    /// The network is lost: `+CREG: 0,0`, `+CSQ: 99,99`, sends answer
    /// `+CMS ERROR: 331`. `SimModem::set_registered(true)` ends it.
    NoNetwork,
    /// The next `AT+CMGS`, once its PDU is in, answers `+CMS ERROR: <n>`
    /// (e.g. 330 SMSC unknown, 500 unknown error).
    CmsOnNextSend(u16),
    /// Every free SIM slot is filled with an old, read message: new
    /// messages wait, unannounced, until a slot frees, and are then stored
    /// without `+CMTI` (only an `AT+CMGL` sweep finds them).
    StorageFull,
    /// After the next `> ` prompt and PDU: no answer, then a boot banner
    /// and the modem back at power-on (echo on, PDU mode, no `AT+CNMI`,
    /// PIN asked again if it has one). The SIM's messages survive.
    ResetMidSend,
    /// No answer (not even an echo) to anything for this long.
    Silent(Duration),
    /// The next command starting with this (`AT+CMGD`) is neither carried
    /// out nor answered: the modem hangs on it (later commands are heard).
    HangOn(String),
    /// Random bytes that are not UTF-8 and a cut-off `+CMT` line before the
    /// next response.
    Garbage,
    /// This unsolicited line in the middle of the next command's response
    /// (after its first line, before its final result).
    Urc(String),
}

/// A message the modem was asked to send: one `AT+CMGS`, so one part of a
/// long text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SentSms {
    /// TP-DA.
    pub to: String,
    /// The part's text (8-bit data as U+FFFD per octet).
    pub text: String,
    /// The TP-MR `+CMGS` answered.
    pub mr: u8,
    /// Whether it asked for a status report (TP-SRR).
    pub status_report: bool,
    /// Which part of a long text it is.
    pub concat: Option<Concat>,
    /// The hex the host wrote after the prompt: SCA, then the TPDU.
    pub hex: String,
}
