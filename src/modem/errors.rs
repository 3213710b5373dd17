//! The modem's error codes named: `+CMS ERROR` (3GPP TS 27.005 §3.2.5,
//! with the TP-Failure-Cause values of TS 23.040 §9.2.3.22 and the RP
//! causes of TS 24.011) and `+CME ERROR` (TS 27.007 §9.2), and what each
//! means for a message being sent.

/// What a `+CMS ERROR` on `AT+CMGS` means for the message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// The network or the message refused it: sending it again will not help.
    Refused,
    /// A passing state (network, congestion, the modem busy): try again.
    Transient,
    /// The modem or its SIM needs an operator (no SIM, PIN, SMSC unknown):
    /// not ready; messages wait.
    Modem,
}

/// `+CMS ERROR` codes: (code, name, verdict).
const CMS: &[(u16, &str, Verdict)] = &[
    (1, "unassigned (unallocated) number", Verdict::Refused),
    (8, "operator determined barring", Verdict::Refused),
    (10, "call barred", Verdict::Refused),
    (21, "short message transfer rejected", Verdict::Refused),
    (27, "destination out of service", Verdict::Refused),
    (28, "unidentified subscriber", Verdict::Refused),
    (29, "facility rejected", Verdict::Refused),
    (30, "unknown subscriber", Verdict::Refused),
    (38, "network out of order", Verdict::Transient),
    (41, "temporary failure", Verdict::Transient),
    (42, "congestion", Verdict::Transient),
    (47, "resources unavailable, unspecified", Verdict::Transient),
    (50, "requested facility not subscribed", Verdict::Refused),
    (69, "requested facility not implemented", Verdict::Refused),
    (
        81,
        "invalid short message transfer reference value",
        Verdict::Refused,
    ),
    (95, "invalid message, unspecified", Verdict::Refused),
    (96, "invalid mandatory information", Verdict::Refused),
    (
        97,
        "message type non-existent or not implemented",
        Verdict::Refused,
    ),
    (
        98,
        "message not compatible with short message protocol state",
        Verdict::Refused,
    ),
    (
        99,
        "information element non-existent or not implemented",
        Verdict::Refused,
    ),
    (111, "protocol error, unspecified", Verdict::Refused),
    (127, "interworking, unspecified", Verdict::Refused),
    (
        128,
        "telematic interworking not supported",
        Verdict::Refused,
    ),
    (129, "short message type 0 not supported", Verdict::Refused),
    (130, "cannot replace short message", Verdict::Refused),
    (143, "unspecified TP-PID error", Verdict::Refused),
    (
        144,
        "data coding scheme (alphabet) not supported",
        Verdict::Refused,
    ),
    (145, "message class not supported", Verdict::Refused),
    (159, "unspecified TP-DCS error", Verdict::Refused),
    (160, "command cannot be actioned", Verdict::Refused),
    (161, "command unsupported", Verdict::Refused),
    (175, "unspecified TP-Command error", Verdict::Refused),
    (176, "TPDU not supported", Verdict::Refused),
    (192, "SC busy", Verdict::Transient),
    (193, "no SC subscription", Verdict::Modem),
    (194, "SC system failure", Verdict::Transient),
    (195, "invalid SME address", Verdict::Refused),
    (196, "destination SME barred", Verdict::Refused),
    (197, "SM rejected: duplicate SM", Verdict::Refused),
    (198, "TP-VPF not supported", Verdict::Refused),
    (199, "TP-VP not supported", Verdict::Refused),
    (208, "SIM SMS storage full", Verdict::Transient),
    (209, "no SMS storage capability in SIM", Verdict::Modem),
    (210, "error in MS", Verdict::Transient),
    (211, "memory capacity exceeded", Verdict::Transient),
    (212, "SIM Application Toolkit busy", Verdict::Transient),
    (213, "SIM data download error", Verdict::Transient),
    (255, "unspecified error cause", Verdict::Transient),
    (300, "ME failure", Verdict::Transient),
    (301, "SMS service of ME reserved", Verdict::Transient),
    (302, "operation not allowed", Verdict::Transient),
    (303, "operation not supported", Verdict::Modem),
    (304, "invalid PDU mode parameter", Verdict::Refused),
    (305, "invalid text mode parameter", Verdict::Refused),
    (310, "SIM not inserted", Verdict::Modem),
    (311, "SIM PIN required", Verdict::Modem),
    (312, "PH-SIM PIN required", Verdict::Modem),
    (313, "SIM failure", Verdict::Modem),
    (314, "SIM busy", Verdict::Transient),
    (315, "SIM wrong", Verdict::Modem),
    (316, "SIM PUK required", Verdict::Modem),
    (317, "SIM PIN2 required", Verdict::Modem),
    (318, "SIM PUK2 required", Verdict::Modem),
    (320, "memory failure", Verdict::Transient),
    (321, "invalid memory index", Verdict::Transient),
    (322, "memory full", Verdict::Transient),
    (330, "SMSC address unknown", Verdict::Modem),
    (331, "no network service", Verdict::Transient),
    (332, "network timeout", Verdict::Transient),
    (340, "no +CNMA acknowledgement expected", Verdict::Transient),
    (500, "unknown error", Verdict::Transient),
    (
        512,
        "manufacturer specific: SIM not ready or lower-layer failure",
        Verdict::Transient,
    ),
    (
        515,
        "manufacturer specific: please wait, initialisation or command in progress",
        Verdict::Transient,
    ),
    (
        527,
        "manufacturer specific: RR/MM busy, please wait",
        Verdict::Transient,
    ),
];

/// `+CME ERROR` codes.
const CME: &[(u16, &str)] = &[
    (0, "phone failure"),
    (1, "no connection to phone"),
    (2, "phone-adaptor link reserved"),
    (3, "operation not allowed"),
    (4, "operation not supported"),
    (5, "PH-SIM PIN required"),
    (10, "SIM not inserted"),
    (11, "SIM PIN required"),
    (12, "SIM PUK required"),
    (13, "SIM failure"),
    (14, "SIM busy"),
    (15, "SIM wrong"),
    (16, "incorrect password"),
    (17, "SIM PIN2 required"),
    (18, "SIM PUK2 required"),
    (20, "memory full"),
    (21, "invalid index"),
    (22, "not found"),
    (23, "memory failure"),
    (24, "text string too long"),
    (25, "invalid characters in text string"),
    (26, "dial string too long"),
    (27, "invalid characters in dial string"),
    (30, "no network service"),
    (31, "network timeout"),
    (32, "network not allowed, emergency calls only"),
    (100, "unknown"),
];

/// The name of `+CMS ERROR: code`.
pub fn cms(code: u16) -> &'static str {
    match CMS.iter().find(|(c, ..)| *c == code) {
        Some((_, name, _)) => name,
        None if code >= 512 => "manufacturer specific",
        None => "reserved or unknown code",
    }
}

/// What `+CMS ERROR: code` on a send means for the message. Unknown codes
/// are transient: the sink's tries are bounded anyway.
pub fn cms_verdict(code: u16) -> Verdict {
    CMS.iter()
        .find(|(c, ..)| *c == code)
        .map_or(Verdict::Transient, |(.., v)| *v)
}

/// The name of `+CME ERROR: code`.
pub fn cme(code: u16) -> &'static str {
    CME.iter()
        .find(|(c, _)| *c == code)
        .map_or("reserved or unknown code", |(_, name)| name)
}

/// The `+CMS ERROR` table as (code, name, verdict), for the docs and tests.
pub fn cms_table() -> impl Iterator<Item = (u16, &'static str, Verdict)> {
    CMS.iter().copied()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_named_and_judged() {
        assert_eq!(cms(330), "SMSC address unknown");
        assert_eq!(cms_verdict(330), Verdict::Modem);
        assert_eq!(cms_verdict(500), Verdict::Transient);
        assert_eq!(cms_verdict(1), Verdict::Refused);
        assert_eq!(cms(600), "manufacturer specific");
        assert_eq!(cms(7), "reserved or unknown code");
        assert_eq!(cme(16), "incorrect password");
        assert_eq!(cme(99), "reserved or unknown code");
    }

    #[test]
    fn each_code_is_listed_once_in_order() {
        let codes: Vec<u16> = cms_table().map(|(c, ..)| c).collect();
        assert!(codes.windows(2).all(|w| w[0] < w[1]), "{codes:?}");
        let codes: Vec<u16> = CME.iter().map(|(c, _)| *c).collect();
        assert!(codes.windows(2).all(|w| w[0] < w[1]), "{codes:?}");
    }
}
