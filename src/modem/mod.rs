//! The GSM modem backend talks to a modem over a serial port with AT
//! commands in PDU mode (`AT+CMGF=0`): messages go out and come in as
//! hex-encoded 3GPP TS 23.040 PDUs ([`pdu`]), over an AT command link
//! ([`at`]) whose error codes are named in [`errors`].

pub mod at;
pub mod device;
pub mod errors;
pub mod inbox;
pub mod pdu;
pub mod reports;
