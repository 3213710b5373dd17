//! `type: modem` — a GSM modem on a serial port.

use std::time::Duration;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::backends::Sending;
use super::value::{humantime_serde_compat, or_interpolated, HumanDuration};

/// A GSM modem on a serial port, spoken to with AT commands in PDU mode
/// (3GPP TS 27.005): one stage per device, as one process may open it.
/// Inbound messages are stored on `sms.inbound` before they are deleted
/// from the modem; long ones are reassembled; delivery reports become
/// events. See docs/backends/modem.md.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Modem {
    /// Backend name, the `backend` of its connections.
    #[serde(default = "default_name")]
    pub name: String,
    /// The serial device: `/dev/ttyUSB0`, or better a name that survives
    /// re-plugging, such as `/dev/serial/by-id/usb-HUAWEI_...-if00-port0`.
    pub port: String,
    /// The port's speed (bits per second).
    #[serde(default = "default_baud")]
    pub baud: u32,
    /// The SIM's PIN, entered once when the SIM asks for it (give it as
    /// `${MODEM_PIN}`). A PIN the SIM refuses is never tried again on its
    /// own: a third wrong one locks the SIM. Empty: none.
    #[serde(default)]
    pub pin: Option<String>,
    /// The modem's vendor quirks: `generic`, `huawei`, `wavecom`, `siemens`.
    #[serde(default)]
    pub profile: Profile,
    /// Where messages are stored (`AT+CPMS`): `SM` (SIM), `ME` (modem), `MT` (both).
    #[serde(default = "default_storage")]
    pub storage: String,
    /// The service centre number to set (`AT+CSCA`); default: the SIM's.
    #[serde(default)]
    pub smsc: Option<String>,
    /// More AT commands sent at the end of the init, each must answer `OK`.
    #[serde(default)]
    pub init: Vec<String>,
    /// A country (ISO 3166 code) whose national numbers from the network
    /// are rewritten to E.164, as a webhook backend's `receive.country`.
    #[serde(default)]
    pub country: Option<String>,
    /// Ask the network for a delivery report of each message (TP-SRR).
    #[serde(default = "default_true")]
    pub reports: bool,
    /// How long one AT command may take.
    #[serde(default = "default_command_timeout", with = "humantime_serde_compat")]
    #[schemars(with = "HumanDuration")]
    pub command_timeout: Duration,
    /// How often stored messages are listed (`AT+CMGL=4`), besides at
    /// start-up: a modem whose storage was full sends no `+CMTI` for them.
    #[serde(default = "default_sweep", with = "humantime_serde_compat")]
    #[schemars(with = "HumanDuration")]
    pub sweep: Duration,
    /// How long the parts of a long inbound message are waited for; then
    /// what came is delivered with the field `incomplete: "true"`.
    #[serde(default = "default_multipart", with = "humantime_serde_compat")]
    #[schemars(with = "HumanDuration")]
    pub multipart_timeout: Duration,
    /// How long a sent message's reference (0–255, reused) is matched with
    /// delivery reports.
    #[serde(default = "default_multipart", with = "humantime_serde_compat")]
    #[schemars(with = "HumanDuration")]
    pub report_window: Duration,
    /// How the sink hands messages over: rate, tries (`send.timeout` is
    /// the wait for `+CMGS`; `concurrency` is 1, a modem sends one at a time).
    #[serde(default = "default_send")]
    pub send: Sending,
}

fn default_name() -> String {
    "modem".into()
}

fn default_baud() -> u32 {
    115_200
}

fn default_storage() -> String {
    "SM".into()
}

fn default_true() -> bool {
    true
}

fn default_command_timeout() -> Duration {
    Duration::from_secs(10)
}

fn default_sweep() -> Duration {
    Duration::from_secs(60)
}

fn default_multipart() -> Duration {
    Duration::from_secs(600)
}

/// Kannel's at2 waits 20 s for `+CMGS`; one message at a time.
fn default_send() -> Sending {
    Sending {
        concurrency: 1,
        timeout: Duration::from_secs(20),
        ..Sending::default()
    }
}

/// Vendor quirks, as Kannel's `modems.conf` keeps them: extra commands
/// before the SMS set-up, and how messages and status reports arrive.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
#[schemars(transform = or_interpolated)]
pub enum Profile {
    /// Any 3GPP modem: messages stored with `+CMTI`, reports routed as `+CDS`.
    #[default]
    Generic,
    /// Huawei USB sticks (E1752, E3372 in serial mode): periodic `^RSSI`
    /// and `^BOOT` URCs off (`AT^CURC=0`), reports stored with `+CDSI`.
    Huawei,
    /// Sierra Wireless/Wavecom (Fastrack, Multiband): its `+WIND`
    /// indications off (`AT+WIND=0`), as RapidSMS's pygsm does.
    Wavecom,
    /// Siemens/Cinterion (TC35, MC55, BGS2): reports stored with `+CDSI`.
    Siemens,
}

impl Profile {
    /// Commands sent before the SMS set-up (each may answer ERROR).
    pub fn before(self) -> &'static [&'static str] {
        match self {
            Profile::Generic | Profile::Siemens => &[],
            Profile::Huawei => &["AT^CURC=0"],
            Profile::Wavecom => &["AT+WIND=0"],
        }
    }

    /// `AT+CNMI`: store each message and notify (`+CMTI`); status reports
    /// routed (`+CDS`, ds=1) or stored (`+CDSI`, ds=2).
    pub fn cnmi(self) -> &'static str {
        match self {
            Profile::Generic | Profile::Wavecom => "AT+CNMI=2,1,0,1,0",
            Profile::Huawei => "AT+CNMI=2,1,0,2,0",
            Profile::Siemens => "AT+CNMI=1,1,0,2,1",
        }
    }
}
