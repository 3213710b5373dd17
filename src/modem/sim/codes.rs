//! The `+CMS ERROR` (3GPP TS 27.005 §3.2.5) and `+CME ERROR` (27.007
//! §9.2) codes the simulated modem answers with, and their texts for
//! `AT+CMEE=2`.

/// The text of `code` (a `+CMS ERROR` if `cms`, else a `+CME ERROR`), if
/// it is one the simulated modem uses.
pub(super) fn text(code: u16, cms: bool) -> Option<&'static str> {
    match (cms, code) {
        (false, 3) => Some("operation not allowed"),
        (false, 10) => Some("SIM not inserted"),
        (false, 11) => Some("SIM PIN required"),
        (false, 12) => Some("SIM PUK required"),
        (false, 16) => Some("incorrect password"),
        (false, 30) => Some("no network service"),
        (true, 302) => Some("operation not allowed"),
        (true, 304) => Some("invalid PDU mode parameter"),
        (true, 311) => Some("SIM PIN required"),
        (true, 316) => Some("SIM PUK required"),
        (true, 321) => Some("invalid memory index"),
        (true, 322) => Some("memory full"),
        (true, 330) => Some("SMSC address unknown"),
        (true, 331) => Some("no network service"),
        (true, 340) => Some("no +CNMA acknowledgement expected"),
        (true, 500) => Some("unknown error"),
        _ => None,
    }
}
