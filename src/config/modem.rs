//! `type: modem`'s vendor profiles (the backend's settings are
//! [`super::ModemBackend`]).

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::value::or_interpolated;

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
