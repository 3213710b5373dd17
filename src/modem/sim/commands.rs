//! The AT commands the simulated modem answers (3GPP TS 27.007 for the
//! modem and SIM, 27.005 for SMS in PDU mode), and the PDU after
//! `AT+CMGS`'s prompt. Anything else answers `ERROR`, as real modems do to
//! the vendor commands clients such as gammu probe for.

use super::config::SentSms;
use super::pdus;
use super::state::{Final, Input, Lock, Modem, Reply, Timer, REBOOT_DELAY};
use crate::modem::pdu::{self, Pdu};

/// An extended command's form: `AT+X`, `AT+X?`, `AT+X=?`, `AT+X=<args>`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Form<'a> {
    Exec,
    Read,
    Test,
    Set(&'a str),
}

fn done(lines: Vec<String>, last: Final) -> Reply {
    Reply::Done(lines, last)
}

fn ok() -> Reply {
    done(Vec::new(), Final::Ok)
}

fn error() -> Reply {
    done(Vec::new(), Final::Error)
}

fn info(line: String) -> Reply {
    done(vec![line], Final::Ok)
}

fn fail(last: Final) -> Reply {
    done(Vec::new(), last)
}

/// Comma-separated arguments, quotes removed (commas inside quotes kept).
fn args(text: &str) -> Vec<String> {
    let (mut out, mut current, mut quoted) = (Vec::new(), String::new(), false);
    for c in text.chars() {
        match c {
            '"' => quoted = !quoted,
            ',' if !quoted => out.push(std::mem::take(&mut current).trim().to_owned()),
            _ => current.push(c),
        }
    }
    out.push(current.trim().to_owned());
    out
}

fn num<T: std::str::FromStr>(arg: Option<&String>) -> Option<T> {
    arg?.parse().ok()
}

impl Modem {
    /// One command line, `AT` and all (trimmed).
    pub(super) fn command(&mut self, line: &str) -> Reply {
        let upper = line.to_ascii_uppercase();
        let Some(body) = upper.strip_prefix("AT") else {
            return error();
        };
        // Upper-casing keeps every byte where it was: arguments are taken
        // from `line` at the same offsets, in their own case.
        let original = line.get(2..).unwrap_or_default();
        let Some(extended) = body.strip_prefix('+') else {
            return self.basic(body);
        };
        let end = extended.find(['=', '?']).unwrap_or(extended.len());
        let name = extended.get(..end).unwrap_or_default();
        let rest = original.get(1 + end..).unwrap_or_default();
        let form = match rest {
            "" => Form::Exec,
            "?" => Form::Read,
            "=?" => Form::Test,
            _ => match rest.strip_prefix('=') {
                Some(arguments) => Form::Set(arguments),
                None => return error(),
            },
        };
        self.extended(name, form)
    }

    /// `AT`, `ATE0`, `ATZ`, `ATI`… (V.250 commands).
    fn basic(&mut self, body: &str) -> Reply {
        match body {
            "" | "V1" | "Q0" | "&C1" | "&D2" => ok(),
            "E" | "E0" => {
                self.echo = false;
                ok()
            }
            "E1" => {
                self.echo = true;
                ok()
            }
            "Z" | "Z0" | "&F" | "&F0" => {
                self.defaults();
                ok()
            }
            "I" | "I0" => {
                let c = &self.config;
                let lines = vec![c.manufacturer.clone(), c.model.clone(), c.revision.clone()];
                done(lines, Final::Ok)
            }
            _ => error(),
        }
    }

    /// The SIM-locked answer to an SMS command, if the SIM is locked.
    fn sms_locked(&self) -> Option<Reply> {
        match self.lock {
            Lock::Ready => None,
            Lock::Pin(_) => Some(fail(Final::Cms(311))),
            Lock::Puk => Some(fail(Final::Cms(316))),
        }
    }

    fn extended(&mut self, name: &str, form: Form) -> Reply {
        let c = &self.config;
        match (name, form) {
            ("CGMI" | "GMI", Form::Exec) => info(c.manufacturer.clone()),
            ("CGMM" | "GMM", Form::Exec) => info(c.model.clone()),
            ("CGMR" | "GMR", Form::Exec) => info(c.revision.clone()),
            ("CGSN" | "GSN", Form::Exec) => info(c.imei.clone()),
            ("CIMI", Form::Exec) => match self.lock {
                Lock::Ready => info(c.imsi.clone()),
                Lock::Pin(_) => fail(Final::Cme(11)),
                Lock::Puk => fail(Final::Cme(12)),
            },
            ("CMEE", _) => self.cmee(form),
            ("CFUN", _) => self.cfun(form),
            ("CPIN", _) => self.cpin(form),
            ("CSQ", Form::Exec) => match self.on_network() {
                true => info(format!("+CSQ: {},99", self.rssi)),
                false => info("+CSQ: 99,99".into()),
            },
            ("CSQ", Form::Test) => info("+CSQ: (0-31,99),(0-7,99)".into()),
            ("CREG", _) => self.creg(form),
            ("COPS", Form::Read) => match self.on_network() {
                true => info("+COPS: 0,0,\"Sim Network\"".into()),
                false => info("+COPS: 0".into()),
            },
            ("COPS", Form::Set(_)) => ok(),
            ("COPS", Form::Test) => {
                info("+COPS: (2,\"Sim Network\",\"Sim\",\"00101\"),,(0-4),(0-2)".into())
            }
            ("CSCS", Form::Read) => info("+CSCS: \"GSM\"".into()),
            ("CSCS", Form::Test) => info("+CSCS: (\"GSM\",\"UCS2\",\"IRA\")".into()),
            ("CSCS", Form::Set(_)) => ok(),
            ("CMGF", _) => self.cmgf(form),
            ("CSMS", _) => self.csms(form),
            ("CNMI", _) => self.cnmi(form),
            ("CNMA", Form::Exec | Form::Set(_)) => match self.unacked.pop_front() {
                Some(_) => ok(),
                None => fail(Final::Cms(340)),
            },
            ("CSCA" | "CPMS" | "CMGS" | "CMGR" | "CMGL" | "CMGD", _) => {
                if let Some(locked) = self.sms_locked() {
                    return locked;
                }
                self.sms(name, form)
            }
            _ => error(),
        }
    }

    fn cmee(&mut self, form: Form) -> Reply {
        match form {
            Form::Set(a) => match num(args(a).first()) {
                Some(n @ 0..=2) => {
                    self.cmee = n;
                    ok()
                }
                _ => error(),
            },
            Form::Read => info(format!("+CMEE: {}", self.cmee)),
            Form::Test => info("+CMEE: (0-2)".into()),
            Form::Exec => error(),
        }
    }

    fn cfun(&mut self, form: Form) -> Reply {
        match form {
            Form::Set(a) => match num(args(a).first()) {
                Some(n @ (0 | 1 | 4)) => {
                    self.fun = n;
                    ok()
                }
                _ => error(),
            },
            Form::Read => info(format!("+CFUN: {}", self.fun)),
            Form::Test => info("+CFUN: (0,1,4),(0-1)".into()),
            Form::Exec => error(),
        }
    }

    /// `AT+CPIN?`, and the PIN: three wrong ones lock the SIM (PUK).
    fn cpin(&mut self, form: Form) -> Reply {
        match form {
            Form::Read => info(
                match self.lock {
                    Lock::Ready => "+CPIN: READY",
                    Lock::Pin(_) => "+CPIN: SIM PIN",
                    Lock::Puk => "+CPIN: SIM PUK",
                }
                .into(),
            ),
            Form::Test => ok(),
            Form::Exec => error(),
            Form::Set(a) => match self.lock {
                Lock::Ready => fail(Final::Cme(3)),
                Lock::Puk => fail(Final::Cme(12)),
                Lock::Pin(left) => {
                    let given = args(a).into_iter().next();
                    if given.is_some() && given == self.config.pin {
                        self.lock = Lock::Ready;
                        return ok();
                    }
                    let left = left.saturating_sub(1);
                    self.lock = if left == 0 {
                        Lock::Puk
                    } else {
                        Lock::Pin(left)
                    };
                    fail(Final::Cme(16))
                }
            },
        }
    }

    fn creg(&mut self, form: Form) -> Reply {
        match form {
            Form::Set(a) => match num(args(a).first()) {
                Some(n @ 0..=2) => {
                    self.creg_mode = n;
                    ok()
                }
                _ => error(),
            },
            Form::Read => {
                let stat = u8::from(self.on_network());
                info(format!("+CREG: {},{stat}", self.creg_mode))
            }
            Form::Test => info("+CREG: (0-2)".into()),
            Form::Exec => error(),
        }
    }

    fn cmgf(&mut self, form: Form) -> Reply {
        match form {
            Form::Set(a) => match num::<u8>(args(a).first()) {
                Some(n @ 0..=1) => {
                    self.text_mode = n == 1;
                    ok()
                }
                _ => error(),
            },
            Form::Read => info(format!("+CMGF: {}", u8::from(self.text_mode))),
            Form::Test => info("+CMGF: (0,1)".into()),
            Form::Exec => error(),
        }
    }

    fn csms(&mut self, form: Form) -> Reply {
        match form {
            Form::Set(a) => match num(args(a).first()) {
                Some(n @ 0..=1) => {
                    self.csms = n;
                    info("+CSMS: 1,1,1".into())
                }
                _ => error(),
            },
            Form::Read => info(format!("+CSMS: {},1,1,1", self.csms)),
            Form::Test => info("+CSMS: (0,1)".into()),
            Form::Exec => error(),
        }
    }

    /// `AT+CNMI=<mode>,<mt>,<bm>,<ds>,<bfr>`; a field left empty keeps its value.
    fn cnmi(&mut self, form: Form) -> Reply {
        let n = self.cnmi;
        match form {
            Form::Read => info(format!(
                "+CNMI: {},{},{},{},{}",
                n.mode, n.mt, n.bm, n.ds, n.bfr
            )),
            Form::Test => info("+CNMI: (0-3),(0-3),(0-3),(0-2),(0,1)".into()),
            Form::Exec => error(),
            Form::Set(a) => {
                let given = args(a);
                if given.len() > 5 {
                    return error();
                }
                let mut fields = [n.mode, n.mt, n.bm, n.ds, n.bfr];
                for (field, arg) in fields.iter_mut().zip(&given) {
                    match arg.parse::<u8>() {
                        Ok(value) => *field = value,
                        Err(_) if arg.is_empty() => {}
                        Err(_) => return error(),
                    }
                }
                let [mode, mt, bm, ds, bfr] = fields;
                if mode > 3 || mt > 3 || bm > 3 || ds > 2 || bfr > 1 {
                    return error();
                }
                self.cnmi = super::state::Cnmi {
                    mode,
                    mt,
                    bm,
                    ds,
                    bfr,
                };
                ok()
            }
        }
    }

    /// The SMS commands that need the SIM (unlocked: checked by the caller).
    fn sms(&mut self, name: &str, form: Form) -> Reply {
        let (used, total) = (self.storage.used(), self.storage.total());
        let text_only = matches!(name, "CMGS" | "CMGR" | "CMGL");
        if self.text_mode && text_only && form != Form::Test {
            // Text mode is accepted by AT+CMGF=1 but not implemented.
            return error();
        }
        match (name, form) {
            ("CSCA", Form::Read) => {
                let kind = if self.smsc.starts_with('+') { 145 } else { 129 };
                info(format!("+CSCA: \"{}\",{kind}", self.smsc))
            }
            ("CSCA", Form::Set(a)) => match args(a).into_iter().next() {
                Some(number) if !number.is_empty() => {
                    self.smsc = number;
                    ok()
                }
                _ => error(),
            },
            ("CPMS", Form::Read) => {
                let m = format!("\"SM\",{used},{total}");
                info(format!("+CPMS: {m},{m},{m}"))
            }
            ("CPMS", Form::Test) => info("+CPMS: (\"SM\"),(\"SM\"),(\"SM\")".into()),
            ("CPMS", Form::Set(a)) => match args(a).iter().all(|m| m == "SM") {
                true => info(format!(
                    "+CPMS: {used},{total},{used},{total},{used},{total}"
                )),
                false => fail(Final::Cms(302)),
            },
            ("CMGS", Form::Set(a)) => match num::<usize>(args(a).first()) {
                Some(len @ 1..=255) => Reply::Prompt(len),
                _ => error(),
            },
            ("CMGS", Form::Test) => ok(),
            ("CMGR", Form::Set(a)) => {
                let index = num::<usize>(args(a).first()).unwrap_or_default();
                let Some(slot) = self.storage.get_mut(index).cloned() else {
                    return fail(Final::Cms(321));
                };
                let len = pdus::tpdu_len(&slot.hex).unwrap_or_default();
                self.mark_read(&[index]);
                done(
                    vec![format!("+CMGR: {},,{len}", slot.stat), slot.hex],
                    Final::Ok,
                )
            }
            ("CMGL", Form::Exec | Form::Set(_)) => {
                let stat = match form {
                    Form::Set(a) => num::<u8>(args(a).first()),
                    _ => Some(0),
                };
                let filter = match stat {
                    Some(4) => None,
                    Some(s @ 0..=3) => Some(s),
                    _ => return error(),
                };
                let listed = self.storage.list(filter);
                let mut lines = Vec::with_capacity(listed.len() * 2);
                for (i, slot) in &listed {
                    let len = pdus::tpdu_len(&slot.hex).unwrap_or_default();
                    lines.push(format!("+CMGL: {i},{},,{len}", slot.stat));
                    lines.push(slot.hex.clone());
                }
                let indexes: Vec<usize> = listed.iter().map(|(i, _)| *i).collect();
                self.mark_read(&indexes);
                done(lines, Final::Ok)
            }
            ("CMGL", Form::Test) => info("+CMGL: (0-4)".into()),
            ("CMGD", Form::Set(a)) => {
                let given = args(a);
                let index = num::<usize>(given.first());
                match num::<u8>(given.get(1)).unwrap_or(0) {
                    flag @ 1..=4 => self.storage.delete_flagged(flag),
                    0 => match index {
                        Some(i) if self.storage.valid(i) => self.storage.delete(i),
                        _ => return fail(Final::Cms(321)),
                    },
                    _ => return error(),
                }
                self.freed();
                ok()
            }
            ("CMGD", Form::Test) => info(format!("+CMGD: (1-{total}),(0-4)")),
            _ => error(),
        }
    }

    /// The hex after the prompt, ended by Ctrl-Z: checked, "sent", and
    /// answered `+CMGS: <mr>` (or an error, or nothing if a reset is due).
    pub(super) fn pdu(&mut self, len: usize, hex: &[u8]) {
        let hex = String::from_utf8_lossy(hex).trim().to_owned();
        self.log(format!(">> {hex}<Ctrl-Z>"));
        if std::mem::take(&mut self.reset_mid_send) {
            self.log("-- reset in the middle of the send".into());
            self.input = Input::Rebooting;
            self.timers.push((REBOOT_DELAY, Timer::Reboot));
            return;
        }
        let reply = match self.send(len, &hex) {
            Ok(mr) => info(format!("+CMGS: {mr}")),
            Err(last) => fail(last),
        };
        self.respond(reply);
    }

    fn send(&mut self, len: usize, hex: &str) -> Result<u8, Final> {
        if pdus::tpdu_len(hex) != Some(len) {
            let counted = pdus::tpdu_len(hex);
            self.log(format!(
                "-- AT+CMGS={len} but the TPDU has {counted:?} octets"
            ));
            return Err(Final::Cms(304));
        }
        let submit = match pdu::decode(hex) {
            Ok(Pdu::Submit(submit)) => submit,
            Ok(other) => {
                self.log(format!("-- not an SMS-SUBMIT: {other:?}"));
                return Err(Final::Cms(304));
            }
            Err(e) => {
                self.log(format!("-- bad PDU: {e}"));
                return Err(Final::Cms(304));
            }
        };
        if let Some(code) = self.cms_next_send.take() {
            return Err(Final::Cms(code));
        }
        if !self.on_network() {
            return Err(Final::Cms(331));
        }
        let mr = self.next_mr;
        self.next_mr = mr.wrapping_add(1);
        let text = match &submit.user_data.body {
            pdu::Body::Text(text) => text.clone(),
            pdu::Body::Data(data) => "\u{FFFD}".repeat(data.len()),
        };
        self.record_sent(SentSms {
            to: submit.destination,
            text,
            mr,
            status_report: submit.status_report,
            concat: submit.user_data.concat,
            hex: hex.to_owned(),
        });
        Ok(mr)
    }
}
