//! The GSM modem backend talks to a modem over a serial port with AT
//! commands in PDU mode (`AT+CMGF=0`): messages go out and come in as
//! hex-encoded 3GPP TS 23.040 PDUs. So far this holds the PDU codec
//! ([`pdu`]) and a simulated modem ([`sim`]) that tests and `smsflow
//! modem-sim` drive; the serial link and the backend itself come next.

pub mod pdu;
pub mod sim;
