//! The GSM modem backend's lower half: a modem over a serial port, spoken
//! to with AT commands in PDU mode (`AT+CMGF=0`), messages going out and
//! coming in as hex-encoded 3GPP TS 23.040 PDUs ([`pdu`]). [`at`] is the
//! command link (its error codes named in [`errors`]), [`device`] the
//! modem's session (init, send, read, delete), [`inbox`] joins long
//! inbound messages, [`reports`] matches status reports to sends, and
//! [`sim`] is a simulated modem that tests and `smsflow modem-sim` drive.
//! The stage itself is `backends::modem`.

pub mod at;
pub mod device;
pub mod errors;
pub mod inbox;
pub mod pdu;
pub mod reports;
pub mod sim;
