//! A real Kannel 1.4.5 for tests (Debian's `kannel` and `kannel-extras`,
//! installed by scripts/tools.sh): bearerbox and smsbox on free loopback
//! ports, configured from tests/kannel/kannel.conf.in, plus drivers for
//! Kannel's fake SMS centre `fakesmsc` (the "phone"), a parser for what it
//! receives, and a trivial echo application to measure Kannel's own ceiling.
//! See /work/shared/reference/kannel.md for how Kannel really behaves.
//!
//! * [`Kannel::start`] renders the template into a temporary directory and
//!   starts bearerbox, then smsbox, as foreground children (SIGKILLed on drop,
//!   or [`Kannel::stop`] for a graceful SIGTERM). Logs stay in the directory;
//!   [`Kannel::logs`] / [`Kannel::dump_logs`] show them.
//! * [`Kannel::fakesmsc`] starts one fakesmsc (bearerbox serves a single one
//!   at a time; a second one would just wait, so starting two panics). MOs
//!   are always given on the command line ([`Mo`]): interactive stdin lines
//!   over 254 bytes are split by fakesmsc. It runs until [`Fakesmsc::stop`]
//!   (SIGINT, after which it prints its summary).
//! * [`Fakesmsc::received`] parses its `Got message N: <...>` lines into
//!   [`Mt`]s; [`reassemble`] joins concatenated parts into [`Sms`]s whose
//!   [`Sms::text`] is the text the phone would show.
//! * [`EchoApp`] answers every MO GET with 200 and sends the text back
//!   through sendsms; [`round_trip`] / [`ceiling`] measure MO to MT rates.

use std::collections::HashMap;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

pub const BEARERBOX: &str = "/usr/sbin/bearerbox";
pub const SMSBOX: &str = "/usr/sbin/smsbox";
pub const FAKESMSC: &str = "/usr/lib/kannel/test/fakesmsc";

pub const STATUS_PASSWORD: &str = "harness-status";
pub const USERNAME: &str = "tester";
pub const PASSWORD: &str = "foobar";
/// The smsc-id of the fake SMSC (`%i` in the get-url).
pub const SMSC_ID: &str = "fake";

/// The escape codes of the get-url, after the application's `?` (reference
/// section 1.1): `format!("{base}/backend/kannel/?{MO_QUERY}")`.
pub const MO_QUERY: &str =
    "from=%p&to=%P&text=%b&coding=%c&charset=%C&ts=%T&smsc=%i&id=%I&udh=%u&service=%n";

/// The webhook secret smsflow's Kannel backend gets in these tests
/// (`receive.secret`): its get-url carries it, and smsflow its dlr-urls.
pub const WEBHOOK_SECRET: &str = "kannel-harness-secret-0123456789";

/// smsflow's get-url on `port`, with [`WEBHOOK_SECRET`] and [`MO_QUERY`].
pub fn smsflow_get_url(port: u16) -> String {
    format!("http://127.0.0.1:{port}/backend/kannel/?secret={WEBHOOK_SECRET}&{MO_QUERY}")
}

fn template() -> PathBuf {
    super::root().join("tests/kannel/kannel.conf.in")
}

fn assert_installed() {
    for bin in [BEARERBOX, SMSBOX, FAKESMSC] {
        assert!(
            Path::new(bin).exists(),
            "{bin} is missing: run ./scripts/test (scripts/tools.sh installs Debian's kannel and kannel-extras)"
        );
    }
}

/// bearerbox + smsbox on free loopback ports, killed on drop.
pub struct Kannel {
    bearerbox: Option<Child>,
    smsbox: Option<Child>,
    pub admin_port: u16,
    pub smsbox_port: u16,
    pub smsc_port: u16,
    pub sendsms_port: u16,
    pub get_url: String,
    /// The temporary directory: kannel.conf and every log.
    pub dir: PathBuf,
    pub conf: PathBuf,
    fakesmsc_live: Arc<AtomicBool>,
    fakesmsc_runs: AtomicU64,
    _dir: tempfile::TempDir,
}

impl Kannel {
    /// Start Kannel whose catch-all service fetches `get_url` (the whole URL
    /// with Kannel escape codes, e.g. `format!("http://127.0.0.1:{p}/mo?{MO_QUERY}")`)
    /// for every MO. Log files at debug level.
    pub fn start(get_url: &str) -> Kannel {
        Kannel::start_with_log_level(get_url, 0)
    }

    /// Like [`Kannel::start`] with the log files' `log-level` (0 debug,
    /// 1 info, 2 warning, 3 error): use 2 for benchmarks.
    pub fn start_with_log_level(get_url: &str, log_level: u8) -> Kannel {
        Kannel::start_configured(get_url, log_level, &[])
    }

    /// [`Kannel::start_with_log_level`] with more `key = value` settings in
    /// the smsbox group (e.g. `http-request-retry`).
    pub fn start_configured(get_url: &str, log_level: u8, smsbox: &[(&str, &str)]) -> Kannel {
        assert_installed();
        assert!(
            !get_url.contains('"') && !get_url.contains('\n'),
            "get-url must not contain quotes or newlines: {get_url}"
        );
        let mut ports: Vec<u16> = Vec::new();
        while ports.len() < 4 {
            let p = super::free_port();
            if !ports.contains(&p) {
                ports.push(p);
            }
        }
        let dir = tempfile::Builder::new()
            .prefix("smsflow-kannel-")
            .tempdir()
            .unwrap();
        let path = dir.path().to_path_buf();
        let vars = [
            ("@ADMIN_PORT@", ports[0].to_string()),
            ("@SMSBOX_PORT@", ports[1].to_string()),
            ("@SMSC_PORT@", ports[2].to_string()),
            ("@SENDSMS_PORT@", ports[3].to_string()),
            ("@LOG_DIR@", path.display().to_string()),
            ("@LOG_LEVEL@", log_level.to_string()),
            ("@GET_URL@", get_url.to_string()),
            (
                "@SMSBOX_EXTRA@",
                smsbox
                    .iter()
                    .map(|(k, v)| format!("{k} = {v}"))
                    .collect::<Vec<_>>()
                    .join("\n"),
            ),
        ];
        let conf = path.join("kannel.conf");
        std::fs::write(
            &conf,
            render(&std::fs::read_to_string(template()).unwrap(), &vars),
        )
        .unwrap();
        let mut k = Kannel {
            bearerbox: None,
            smsbox: None,
            admin_port: ports[0],
            smsbox_port: ports[1],
            smsc_port: ports[2],
            sendsms_port: ports[3],
            get_url: get_url.to_string(),
            dir: path,
            conf,
            fakesmsc_live: Arc::new(AtomicBool::new(false)),
            fakesmsc_runs: AtomicU64::new(0),
            _dir: dir,
        };
        k.bearerbox = Some(k.spawn_box(BEARERBOX, "bearerbox"));
        k.wait_until(
            "bearerbox's status page answers",
            Duration::from_secs(20),
            |k| k.status().is_some(),
        );
        k.smsbox = Some(k.spawn_box(SMSBOX, "smsbox"));
        k.wait_until(
            "smsbox is connected and its sendsms port accepts connections",
            Duration::from_secs(20),
            |k| {
                k.status().is_some_and(|s| s.contains("smsbox:"))
                    && std::net::TcpStream::connect(("127.0.0.1", k.sendsms_port)).is_ok()
            },
        );
        k
    }

    fn spawn_box(&self, bin: &str, name: &str) -> Child {
        // -v 3: only errors on stderr; the log files get everything.
        Command::new(bin)
            .arg("-v")
            .arg("3")
            .arg(&self.conf)
            .current_dir(&self.dir)
            .stdin(Stdio::null())
            .stdout(std::fs::File::create(self.dir.join(format!("{name}.stdout"))).unwrap())
            .stderr(std::fs::File::create(self.dir.join(format!("{name}.stderr"))).unwrap())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {bin}: {e}"))
    }

    /// Poll `ready` every 50 ms; panic with the logs after `timeout` or if a
    /// box exited.
    fn wait_until(&mut self, what: &str, timeout: Duration, ready: impl Fn(&Kannel) -> bool) {
        let deadline = Instant::now() + timeout;
        loop {
            if ready(self) {
                return;
            }
            let mut exited = None;
            for (name, child) in [
                ("bearerbox", &mut self.bearerbox),
                ("smsbox", &mut self.smsbox),
            ] {
                if let Some(Ok(Some(status))) = child.as_mut().map(Child::try_wait) {
                    exited = Some((name, status));
                }
            }
            if let Some((name, status)) = exited {
                panic!(
                    "{name} exited ({status}) while waiting until {what}\n{}",
                    self.logs()
                );
            }
            if Instant::now() > deadline {
                panic!("Kannel: timed out waiting until {what}\n{}", self.logs());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    pub fn sendsms_url(&self) -> String {
        format!("http://127.0.0.1:{}/cgi-bin/sendsms", self.sendsms_port)
    }

    pub fn username(&self) -> &'static str {
        USERNAME
    }

    pub fn password(&self) -> &'static str {
        PASSWORD
    }

    pub fn status_url(&self) -> String {
        format!(
            "http://127.0.0.1:{}/status.txt?password={STATUS_PASSWORD}",
            self.admin_port
        )
    }

    /// bearerbox's status.txt, None while it does not answer 200.
    pub fn status(&self) -> Option<String> {
        status_page(self.admin_port)
    }

    /// GET sendsms as user `tester` with `params` (values percent-encoded
    /// here): `k.sendsms(&[("from", "15000"), ("to", "2557"), ("text", "hi")])`.
    /// Returns the HTTP status and body (e.g. 202, `0: Accepted for delivery`).
    pub fn sendsms(&self, params: &[(&str, &str)]) -> (u16, String) {
        let mut url = format!(
            "{}?username={USERNAME}&password={PASSWORD}",
            self.sendsms_url()
        );
        for (k, v) in params {
            url.push_str(&format!("&{k}={}", url_encode(v.as_bytes())));
        }
        let (status, body) = http_get(&url).unwrap_or_else(|e| panic!("sendsms {url}: {e}"));
        (status, String::from_utf8_lossy(&body).into_owned())
    }

    pub fn bearerbox_log(&self) -> PathBuf {
        self.dir.join("bearerbox.log")
    }

    pub fn smsbox_log(&self) -> PathBuf {
        self.dir.join("smsbox.log")
    }

    /// smsbox's access log: one line per MO fetch and per sendsms.
    pub fn smsbox_access_log(&self) -> PathBuf {
        self.dir.join("smsbox-access.log")
    }

    pub fn bearerbox_access_log(&self) -> PathBuf {
        self.dir.join("bearerbox-access.log")
    }

    /// Every log of this Kannel and of its fakesmscs (the last 150 lines of
    /// each), for a failure message.
    pub fn logs(&self) -> String {
        let mut files: Vec<PathBuf> = std::fs::read_dir(&self.dir)
            .map(|d| d.filter_map(|e| e.ok().map(|e| e.path())).collect())
            .unwrap_or_default();
        files.retain(|p| p.extension().is_some_and(|e| e != "conf"));
        files.sort();
        let mut out = format!("==== Kannel in {} ====\n", self.dir.display());
        for f in files {
            let text = std::fs::read(&f).unwrap_or_default();
            let text = String::from_utf8_lossy(&text);
            let lines: Vec<&str> = text.lines().collect();
            out.push_str(&format!(
                "---- {} ({} lines, last 150) ----\n",
                f.display(),
                lines.len()
            ));
            for l in &lines[lines.len().saturating_sub(150)..] {
                out.push_str(l);
                out.push('\n');
            }
        }
        out
    }

    pub fn dump_logs(&self) {
        eprintln!("{}", self.logs());
    }

    /// Start `fakesmsc -H 127.0.0.1 -r <smsc port> -i <interval> -m <max>
    /// <msg>...` (fakesmsc picks one of `msgs` at random for each MO; `max`
    /// 0 sends nothing and only receives) and wait until bearerbox shows it
    /// connected. Its output goes to `fakesmsc-<n>.log` in [`Kannel::dir`].
    /// Panics if another one is still running.
    pub fn fakesmsc(&self, interval: f64, max: u64, msgs: &[Mo]) -> Fakesmsc {
        self.fakesmsc_randomized(interval, max, 0, msgs)
    }

    /// [`Kannel::fakesmsc`] with `-z <randomize>` (bitmask: 1 sender,
    /// 2 receiver, 4 last word of the text get a random number appended).
    pub fn fakesmsc_randomized(
        &self,
        interval: f64,
        max: u64,
        randomize: u8,
        msgs: &[Mo],
    ) -> Fakesmsc {
        // Without a message fakesmsc would read stdin (interactive mode).
        let placeholder = [Mo::text("0", "0", "unused")];
        let msgs = if msgs.is_empty() {
            assert_eq!(max, 0, "fakesmsc needs a message to send");
            &placeholder[..]
        } else {
            msgs
        };
        assert!(
            !self.fakesmsc_live.swap(true, Ordering::SeqCst),
            "only one fakesmsc can be connected at a time: stop the previous one"
        );
        let run = self.fakesmsc_runs.fetch_add(1, Ordering::SeqCst) + 1;
        let log = self.dir.join(format!("fakesmsc-{run}.log"));
        let mut cmd = Command::new(FAKESMSC);
        cmd.arg("-H")
            .arg("127.0.0.1")
            .arg("-r")
            .arg(self.smsc_port.to_string())
            .arg("-i")
            .arg(interval.to_string())
            .arg("-m")
            .arg(max.to_string());
        if randomize != 0 {
            cmd.arg("-z").arg(randomize.to_string());
        }
        for m in msgs {
            cmd.arg(m.as_str());
        }
        let out = std::fs::File::create(&log).unwrap();
        let started = Instant::now();
        let child = cmd
            .current_dir(&self.dir)
            .stdin(Stdio::null())
            .stdout(out.try_clone().unwrap())
            .stderr(out)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {FAKESMSC}: {e}"));
        let mut f = Fakesmsc {
            child: Some(child),
            log,
            started,
            admin_port: self.admin_port,
            smsc_port: self.smsc_port,
            live: self.fakesmsc_live.clone(),
        };
        let deadline = Instant::now() + Duration::from_secs(20);
        while !f.connected() {
            if let Some(Ok(Some(status))) = f.child.as_mut().map(Child::try_wait) {
                panic!(
                    "fakesmsc exited ({status}) before connecting\n{}\n{}",
                    f.output(),
                    self.logs()
                );
            }
            if Instant::now() > deadline {
                panic!(
                    "fakesmsc did not connect to bearerbox\n{}\n{}",
                    f.output(),
                    self.logs()
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        f
    }

    /// A phone that only receives (`-m 0`).
    pub fn phone(&self) -> Fakesmsc {
        self.fakesmsc(0.0, 0, &[])
    }

    /// Send one MO with a fresh fakesmsc, collect what it receives until
    /// `until` holds, stop it and return the MTs. Panics with every log after
    /// `timeout`.
    pub fn exchange(&self, mo: &Mo, until: impl Fn(&[Mt]) -> bool, timeout: Duration) -> Vec<Mt> {
        let f = self.fakesmsc(0.0, 1, std::slice::from_ref(mo));
        match f.wait_for(until, timeout) {
            Ok(mts) => {
                f.stop();
                mts
            }
            Err(mts) => {
                let out = f.stop();
                panic!(
                    "timed out after {timeout:?} sending {mo:?}; received {mts:#?}\n{}\n{}",
                    out.output,
                    self.logs()
                );
            }
        }
    }

    /// SIGTERM smsbox, then bearerbox (each takes about 2 s to shut down),
    /// SIGKILL after 10 s.
    pub fn stop(&mut self) {
        for c in [self.smsbox.take(), self.bearerbox.take()]
            .into_iter()
            .flatten()
        {
            terminate(c, libc::SIGTERM, Duration::from_secs(10));
        }
    }
}

impl Drop for Kannel {
    /// SIGKILL both boxes (nothing of theirs needs a clean shutdown: queues
    /// and DLRs are in memory, logs are written as they go). When the test is
    /// panicking the directory and its logs are kept, and its path printed.
    fn drop(&mut self) {
        for c in [&mut self.smsbox, &mut self.bearerbox] {
            if let Some(mut c) = c.take() {
                let _ = c.kill();
                let _ = c.wait();
            }
        }
        if std::thread::panicking() {
            self._dir.disable_cleanup(true);
            eprintln!(
                "Kannel's configuration and logs kept in {}",
                self.dir.display()
            );
        }
    }
}

/// Send `signal`, wait up to `grace`, then SIGKILL. Returns whether it
/// exited by itself.
fn terminate(mut c: Child, signal: libc::c_int, grace: Duration) -> bool {
    if c.try_wait().ok().flatten().is_some() {
        return true;
    }
    unsafe {
        libc::kill(c.id() as libc::pid_t, signal);
    }
    let deadline = Instant::now() + grace;
    while Instant::now() < deadline {
        if c.try_wait().ok().flatten().is_some() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let _ = c.kill();
    let _ = c.wait();
    false
}

/// Replace the placeholders outside comment lines; panic on a leftover one.
fn render(template: &str, vars: &[(&str, String)]) -> String {
    let mut out = String::new();
    for line in template.lines() {
        if line.trim_start().starts_with('#') {
            out.push_str(line);
        } else {
            let mut l = line.to_string();
            for (k, v) in vars {
                l = l.replace(k, v);
            }
            let at = l.find('@').and_then(|i| {
                let rest = &l[i + 1..];
                let end = rest.find('@')?;
                let name = &rest[..end];
                (!name.is_empty() && name.bytes().all(|b| b.is_ascii_uppercase() || b == b'_'))
                    .then_some(name.to_string())
            });
            assert!(
                at.is_none(),
                "unknown placeholder @{}@ in {line}",
                at.unwrap_or_default()
            );
            out.push_str(&l);
        }
        out.push('\n');
    }
    out
}

fn status_page(admin_port: u16) -> Option<String> {
    let url = format!("http://127.0.0.1:{admin_port}/status.txt?password={STATUS_PASSWORD}");
    match http_get(&url) {
        Ok((200, body)) => Some(String::from_utf8_lossy(&body).into_owned()),
        _ => None,
    }
}

// ---------------------------------------------------------------------------
// fakesmsc

/// One fakesmsc process; SIGINT then SIGKILL on drop if not stopped.
pub struct Fakesmsc {
    child: Option<Child>,
    /// Its stdout and stderr (fakesmsc logs everything on stderr).
    pub log: PathBuf,
    /// When it was spawned.
    pub started: Instant,
    admin_port: u16,
    smsc_port: u16,
    live: Arc<AtomicBool>,
}

/// What [`Fakesmsc::stop`] returns.
#[derive(Debug, Clone)]
pub struct FakesmscSummary {
    pub mts: Vec<Mt>,
    /// Its whole output.
    pub output: String,
    /// From `fakesmsc: N messages sent and M received`.
    pub sent: Option<u64>,
    pub received: Option<u64>,
    /// From `from first to last received message X s, Y msgs/s`.
    pub first_to_last_received: Option<f64>,
    pub received_rate: Option<f64>,
    /// Whether it exited by itself after SIGINT (else it was SIGKILLed and
    /// printed no summary).
    pub clean: bool,
}

impl Fakesmsc {
    pub fn output(&self) -> String {
        String::from_utf8_lossy(&std::fs::read(&self.log).unwrap_or_default()).into_owned()
    }

    /// Every MT received so far.
    pub fn received(&self) -> Vec<Mt> {
        parse_mts(&self.output())
    }

    /// How many `Got message` lines so far (cheaper than [`Fakesmsc::received`]).
    pub fn received_count(&self) -> usize {
        self.output().matches(": Got message ").count()
    }

    /// How many MOs it has sent so far (its `fakesmsc: sent message N` lines).
    pub fn sent_count(&self) -> usize {
        self.output().matches("fakesmsc: sent message ").count()
    }

    /// Poll [`Fakesmsc::received`] every 20 ms until `until` holds (Ok) or
    /// `timeout` passed (Err, with what was received).
    pub fn wait_for(
        &self,
        until: impl Fn(&[Mt]) -> bool,
        timeout: Duration,
    ) -> Result<Vec<Mt>, Vec<Mt>> {
        let deadline = Instant::now() + timeout;
        loop {
            let mts = self.received();
            if until(&mts) {
                return Ok(mts);
            }
            if Instant::now() > deadline {
                return Err(mts);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Whether bearerbox's status page shows the fake SMSC online.
    fn connected(&self) -> bool {
        let needle = format!("FAKE:{} (online", self.smsc_port);
        status_page(self.admin_port).is_some_and(|s| s.contains(&needle))
    }

    /// SIGINT (fakesmsc then prints its summary and exits 0; SIGKILL after
    /// 5 s), then wait until bearerbox no longer shows it online, so that the
    /// next fakesmsc can connect.
    pub fn stop(mut self) -> FakesmscSummary {
        let clean = self.shutdown();
        let output = self.output();
        let mut s = FakesmscSummary {
            mts: parse_mts(&output),
            sent: None,
            received: None,
            first_to_last_received: None,
            received_rate: None,
            clean,
            output,
        };
        for line in s.output.lines() {
            if let Some(rest) = line.split("fakesmsc: ").nth(1) {
                let words: Vec<&str> = rest.split_whitespace().collect();
                // "N messages sent and M received"
                if words.len() >= 6 && words[1] == "messages" && words[2] == "sent" {
                    s.sent = words[0].parse().ok();
                    s.received = words[4].parse().ok();
                }
                // "from first to last received message X s, Y msgs/s"
                if rest.starts_with("from first to last received message") && words.len() >= 10 {
                    s.first_to_last_received = words[6].parse().ok();
                    s.received_rate = words[8].parse().ok();
                }
            }
        }
        s
    }

    fn shutdown(&mut self) -> bool {
        let Some(c) = self.child.take() else {
            return true;
        };
        let clean = terminate(c, libc::SIGINT, Duration::from_secs(5));
        let deadline = Instant::now() + Duration::from_secs(10);
        while self.connected() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
        self.live.store(false, Ordering::SeqCst);
        clean
    }
}

impl Drop for Fakesmsc {
    fn drop(&mut self) {
        self.shutdown();
    }
}

/// An MO for fakesmsc's command line: `"<from> <to> <type> <data>"`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mo(pub String);

impl Mo {
    /// `text`: the text as raw bytes (coding 0). It must fit on one line.
    pub fn text(from: &str, to: &str, text: &str) -> Mo {
        assert!(
            !text.contains('\n') && !text.contains('\r'),
            "a fakesmsc text MO cannot carry a newline: use Mo::ucs2 or Mo::data"
        );
        Mo(format!("{from} {to} text {text}"))
    }

    /// `ucs2`: the text as URL-encoded UTF-16BE (coding 2; with mo-recode
    /// smsbox hands it to the application as UTF-8, coding 0).
    pub fn ucs2(from: &str, to: &str, text: &str) -> Mo {
        let bytes: Vec<u8> = text.encode_utf16().flat_map(u16::to_be_bytes).collect();
        Mo(format!("{from} {to} ucs2 {}", url_encode_all(&bytes)))
    }

    /// `data`: URL-encoded 8-bit binary (coding 1).
    pub fn data(from: &str, to: &str, bytes: &[u8]) -> Mo {
        Mo(format!("{from} {to} data {}", url_encode_all(bytes)))
    }

    /// `udh-text`: a UDH (e.g. `[5, 0, 3, ref, total, seq]`) and plain text.
    pub fn udh_text(from: &str, to: &str, udh: &[u8], text: &str) -> Mo {
        Mo(format!(
            "{from} {to} udh-text {} {text}",
            url_encode_all(udh)
        ))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// How an MT reached fakesmsc.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MtKind {
    /// `text <raw text>`: coding 0, UTF-8 bytes as printed.
    Text,
    /// `data <url-encoded>`: 8-bit binary.
    Data,
    /// `ucs-2 <url-encoded UTF-16BE>`.
    Ucs2,
    /// `udh <url-encoded UDH> data <url-encoded payload>`, whatever the
    /// coding (7-bit payloads are UTF-8, UCS-2 ones UTF-16BE).
    Udh,
}

/// One MT as fakesmsc printed it (`Got message N: <sender receiver ...>`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mt {
    /// fakesmsc's counter N.
    pub n: u64,
    pub sender: String,
    pub receiver: String,
    pub kind: MtKind,
    /// Empty unless `kind` is `Udh`.
    pub udh: Vec<u8>,
    /// URL-decoded (raw for `Text`).
    pub payload: Vec<u8>,
}

/// A concatenation information element: IEI 00 (`05 00 03 ref total seq`)
/// or IEI 08 (`06 08 04 ref ref total seq`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Concat {
    pub reference: u16,
    pub total: u8,
    pub seq: u8,
}

impl Mt {
    pub fn concat(&self) -> Option<Concat> {
        let (&len, ies) = self.udh.split_first()?;
        let mut ies = ies.get(..len as usize)?;
        while ies.len() >= 2 {
            let (iei, l) = (ies[0], ies[1] as usize);
            let data = ies.get(2..2 + l)?;
            match (iei, data) {
                (0, &[r, total, seq]) => {
                    return Some(Concat {
                        reference: r as u16,
                        total,
                        seq,
                    });
                }
                (8, &[r1, r2, total, seq]) => {
                    return Some(Concat {
                        reference: u16::from_be_bytes([r1, r2]),
                        total,
                        seq,
                    });
                }
                _ => ies = &ies[2 + l..],
            }
        }
        None
    }
}

/// Parse fakesmsc's output. A `text` MT with a newline is printed as two
/// `Got message` lines; a line that is not `sender receiver kind ...` is
/// taken as the continuation of the previous text MT.
pub fn parse_mts(output: &str) -> Vec<Mt> {
    let mut mts: Vec<Mt> = Vec::new();
    for line in output.lines() {
        // `<date> <time> [pid] [thread] DEBUG: Got message N: <...>`
        let Some(i) = line.find(": Got message ") else {
            continue;
        };
        let rest = &line[i + ": Got message ".len()..];
        let Some((n, body)) = rest.split_once(": <") else {
            continue;
        };
        let body = body.strip_suffix('>').unwrap_or(body);
        let n: u64 = n.trim().parse().unwrap_or(0);
        match parse_mt(n, body) {
            Some(mt) => mts.push(mt),
            None => match mts.last_mut() {
                Some(prev) if prev.kind == MtKind::Text => {
                    prev.payload.push(b'\n');
                    prev.payload.extend_from_slice(body.as_bytes());
                }
                _ => panic!("cannot parse fakesmsc line: {line}"),
            },
        }
    }
    mts
}

fn parse_mt(n: u64, body: &str) -> Option<Mt> {
    let mut it = body.splitn(4, ' ');
    let sender = it.next()?.to_string();
    let receiver = it.next()?.to_string();
    let kind = it.next()?;
    let rest = it.next().unwrap_or("");
    let (kind, udh, payload) = match kind {
        "text" => (MtKind::Text, Vec::new(), rest.as_bytes().to_vec()),
        "data" => (MtKind::Data, Vec::new(), url_decode(rest)),
        "ucs-2" | "ucs2" => (MtKind::Ucs2, Vec::new(), url_decode(rest)),
        "udh" => {
            let (udh, data) = rest.split_once(' ')?;
            let data = data.strip_prefix("data ").or(data.strip_prefix("data"))?;
            (MtKind::Udh, url_decode(udh), url_decode(data))
        }
        _ => return None,
    };
    Some(Mt {
        n,
        sender,
        receiver,
        kind,
        udh,
        payload,
    })
}

/// How to read a payload.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Encoding {
    Utf8,
    Utf16Be,
}

/// A whole message as the phone shows it: one MT, or every part of a
/// concatenated one, in sequence order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sms {
    pub sender: String,
    pub receiver: String,
    /// Of the (first) part.
    pub kind: MtKind,
    pub parts: usize,
    pub concat: Option<Concat>,
    /// The parts' payloads joined (UDH removed).
    pub payload: Vec<u8>,
}

impl Sms {
    /// The text: UTF-8 for `Text`/`Data`, UTF-16BE for `Ucs2`; for `Udh`
    /// (fakesmsc does not say the coding) a guess: UTF-16BE if the bytes
    /// contain NUL or control characters or are not UTF-8. Use
    /// [`Sms::decode`] when the coding is known.
    pub fn text(&self) -> String {
        let enc = match self.kind {
            MtKind::Text | MtKind::Data => Encoding::Utf8,
            MtKind::Ucs2 => Encoding::Utf16Be,
            MtKind::Udh => guess_encoding(&self.payload),
        };
        self.decode(enc)
    }

    pub fn decode(&self, enc: Encoding) -> String {
        match enc {
            Encoding::Utf8 => String::from_utf8_lossy(&self.payload).into_owned(),
            Encoding::Utf16Be => {
                let units: Vec<u16> = self
                    .payload
                    .chunks(2)
                    .map(|c| u16::from_be_bytes([c[0], *c.get(1).unwrap_or(&0)]))
                    .collect();
                String::from_utf16_lossy(&units)
            }
        }
    }
}

fn guess_encoding(b: &[u8]) -> Encoding {
    match std::str::from_utf8(b) {
        Ok(s)
            if !s
                .chars()
                .any(|c| c.is_control() && !matches!(c, '\n' | '\r' | '\t' | '\x0c')) =>
        {
            Encoding::Utf8
        }
        _ if b.len() % 2 == 0 => Encoding::Utf16Be,
        _ => Encoding::Utf8,
    }
}

/// Whole messages from MTs: single MTs as they are, concatenated parts
/// joined once all have arrived (grouped by sender, receiver, reference and
/// total), in the order of their first part. Incomplete ones are left out.
pub fn reassemble(mts: &[Mt]) -> Vec<Sms> {
    type Key = (String, String, u16, u8);
    let mut out: Vec<(u64, Sms)> = Vec::new();
    let mut groups: HashMap<Key, Vec<&Mt>> = HashMap::new();
    let mut first: HashMap<Key, u64> = HashMap::new();
    for mt in mts {
        match mt.concat().filter(|c| c.total > 1) {
            None => out.push((
                mt.n,
                Sms {
                    sender: mt.sender.clone(),
                    receiver: mt.receiver.clone(),
                    kind: mt.kind,
                    parts: 1,
                    concat: mt.concat(),
                    payload: mt.payload.clone(),
                },
            )),
            Some(c) => {
                let key = (mt.sender.clone(), mt.receiver.clone(), c.reference, c.total);
                first.entry(key.clone()).or_insert(mt.n);
                let parts = groups.entry(key.clone()).or_default();
                parts.push(mt);
                let mut seqs: Vec<u8> = parts
                    .iter()
                    .filter_map(|m| m.concat().map(|c| c.seq))
                    .collect();
                seqs.sort_unstable();
                seqs.dedup();
                if seqs.len() == c.total as usize {
                    let mut parts = groups.remove(&key).unwrap();
                    parts.sort_by_key(|m| m.concat().map(|c| c.seq));
                    parts.dedup_by_key(|m| m.concat().map(|c| c.seq));
                    let payload = parts
                        .iter()
                        .flat_map(|m| m.payload.iter().copied())
                        .collect();
                    out.push((
                        first[&key],
                        Sms {
                            sender: mt.sender.clone(),
                            receiver: mt.receiver.clone(),
                            kind: parts[0].kind,
                            parts: parts.len(),
                            concat: parts[0].concat(),
                            payload,
                        },
                    ));
                    first.remove(&key);
                }
            }
        }
    }
    out.sort_by_key(|(n, _)| *n);
    out.into_iter().map(|(_, s)| s).collect()
}

// ---------------------------------------------------------------------------
// Encoding helpers and a minimal HTTP client (tests only)

/// Percent-encode everything but `A-Za-z0-9-_.~`.
pub fn url_encode(b: &[u8]) -> String {
    let mut s = String::with_capacity(b.len() * 3);
    for &c in b {
        if c.is_ascii_alphanumeric() || matches!(c, b'-' | b'_' | b'.' | b'~') {
            s.push(c as char);
        } else {
            s.push_str(&format!("%{c:02X}"));
        }
    }
    s
}

/// Percent-encode every byte (what fakesmsc's `ucs2`/`data` fields take).
pub fn url_encode_all(b: &[u8]) -> String {
    b.iter().map(|c| format!("%{c:02X}")).collect()
}

/// Decode `%XX` and `+` (space); a malformed `%` stays as it is.
pub fn url_decode(s: &str) -> Vec<u8> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < b.len() => {
                let hex = std::str::from_utf8(&b[i + 1..i + 3]).ok();
                match hex.and_then(|h| u8::from_str_radix(h, 16).ok()) {
                    Some(v) => {
                        out.push(v);
                        i += 2;
                    }
                    None => out.push(b'%'),
                }
            }
            c => out.push(c),
        }
        i += 1;
    }
    out
}

/// A query string's parameters, values URL-decoded to bytes.
pub fn parse_query(q: &str) -> Vec<(String, Vec<u8>)> {
    q.split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            (
                String::from_utf8_lossy(&url_decode(k)).into_owned(),
                url_decode(v),
            )
        })
        .collect()
}

/// Whether every character is in the GSM 03.38 default alphabet or its
/// extension table (what coding 0 can carry).
pub fn is_gsm7(s: &str) -> bool {
    const BASIC: &str = "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?\
                         ¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà";
    const EXTENSION: &str = "\x0c^{}\\[~]|€";
    s.chars()
        .all(|c| BASIC.contains(c) || EXTENSION.contains(c))
}

/// GET `url` (`http://host:port/path?query`) with HTTP/1.0; returns the
/// status and body. Timeouts of 10 s.
pub fn http_get(url: &str) -> std::io::Result<(u16, Vec<u8>)> {
    let rest = url
        .strip_prefix("http://")
        .ok_or_else(|| std::io::Error::other(format!("not an http:// URL: {url}")))?;
    let (host, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    };
    let mut s = std::net::TcpStream::connect(host)?;
    s.set_read_timeout(Some(Duration::from_secs(10)))?;
    s.set_write_timeout(Some(Duration::from_secs(10)))?;
    write!(
        s,
        "GET {path} HTTP/1.0\r\nHost: {host}\r\nConnection: close\r\n\r\n"
    )?;
    let mut buf = Vec::new();
    let mut chunk = [0u8; 8192];
    let (head_end, content_length) = loop {
        let n = s.read(&mut chunk)?;
        if n == 0 {
            return Err(std::io::Error::other(
                "connection closed before the headers ended",
            ));
        }
        buf.extend_from_slice(&chunk[..n]);
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&buf[..i]).to_ascii_lowercase();
            let cl = head
                .lines()
                .find_map(|l| l.strip_prefix("content-length:"))
                .and_then(|v| v.trim().parse::<usize>().ok());
            break (i + 4, cl);
        }
    };
    loop {
        if content_length.is_some_and(|cl| buf.len() >= head_end + cl) {
            break;
        }
        let n = s.read(&mut chunk)?;
        if n == 0 {
            break;
        }
        buf.extend_from_slice(&chunk[..n]);
    }
    let head = String::from_utf8_lossy(&buf[..head_end]).into_owned();
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .ok_or_else(|| std::io::Error::other(format!("bad status line: {head}")))?;
    let mut body = buf[head_end..].to_vec();
    if let Some(cl) = content_length {
        body.truncate(cl);
    }
    Ok((status, body))
}

// ---------------------------------------------------------------------------
// The echo application and the ceiling

/// An MO as the application received it from smsbox.
#[derive(Debug, Clone)]
pub struct MoRequest {
    /// Path and query as received.
    pub uri: String,
    pub params: Vec<(String, Vec<u8>)>,
}

impl MoRequest {
    pub fn bytes(&self, name: &str) -> Option<&[u8]> {
        self.params
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_slice())
    }

    /// A parameter as text (lossy UTF-8), "" when missing.
    pub fn get(&self, name: &str) -> String {
        String::from_utf8_lossy(self.bytes(name).unwrap_or_default()).into_owned()
    }

    pub fn text(&self) -> String {
        self.get("text")
    }
}

/// The sendsms call the echo app made for one MO.
#[derive(Debug, Clone)]
pub struct Echo {
    /// The `ref=` of its dlr-url (a counter from 1, in MO arrival order).
    pub reference: u64,
    pub to: String,
    pub text: String,
    pub coding: u8,
    /// HTTP status and body of sendsms (0 and the error on a failed request).
    pub status: u16,
    pub body: String,
}

/// A delivery report GET: `ref` and `status` (`%d`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dlr {
    pub reference: u64,
    pub status: u32,
    pub uri: String,
}

#[derive(Default)]
struct EchoState {
    sendsms: Option<String>,
    mos: Vec<MoRequest>,
    echoes: Vec<Echo>,
    dlrs: Vec<Dlr>,
    next_ref: u64,
}

/// A trivial Kannel application on a free loopback port: every MO GET
/// (`/mo?...`, see [`EchoApp::get_url`]) is answered 200 with an empty body,
/// then its text is sent back to the sender through sendsms (GET,
/// `charset=UTF-8`, `coding=2` unless [`is_gsm7`]), at most `concurrency`
/// sendsms requests at a time over keep-alive connections; with `dlr`, each
/// with `dlr-mask=31` and a `dlr-url` carrying `ref=<n>`, whose GETs
/// (`/dlr?...`) are recorded. Runs its own tokio runtime on a thread, so it
/// can be used from sync and async tests alike.
pub struct EchoApp {
    pub port: u16,
    state: Arc<Mutex<EchoState>>,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl EchoApp {
    pub fn start(dlr: bool, concurrency: usize) -> EchoApp {
        use axum::extract::{RawQuery, State};
        use axum::http::Uri;
        use axum::routing::get;

        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let port = listener.local_addr().unwrap().port();
        let state: Arc<Mutex<EchoState>> = Arc::default();

        #[derive(Clone)]
        struct Ctx {
            state: Arc<Mutex<EchoState>>,
            client: reqwest::Client,
            limit: Arc<tokio::sync::Semaphore>,
            dlr: bool,
            port: u16,
        }

        async fn mo(State(ctx): State<Ctx>, uri: Uri, RawQuery(q): RawQuery) -> &'static str {
            let req = MoRequest {
                uri: uri.to_string(),
                params: parse_query(q.as_deref().unwrap_or("")),
            };
            let (reference, sendsms) = {
                let mut st = ctx.state.lock().unwrap();
                st.next_ref += 1;
                st.mos.push(req.clone());
                (st.next_ref, st.sendsms.clone())
            };
            tokio::spawn(async move {
                let Some(sendsms) = sendsms else {
                    return;
                };
                let _permit = ctx.limit.acquire().await.unwrap();
                let text = req.text();
                let to = req.get("from");
                let coding = if is_gsm7(&text) { 0 } else { 2 };
                let mut url = format!(
                    "{sendsms}&from={}&to={}&text={}&charset=UTF-8",
                    url_encode(req.get("to").as_bytes()),
                    url_encode(to.as_bytes()),
                    url_encode(text.as_bytes())
                );
                if coding == 2 {
                    url.push_str("&coding=2");
                }
                if ctx.dlr {
                    let dlr_url = format!(
                        "http://127.0.0.1:{}/dlr?ref={reference}&status=%d",
                        ctx.port
                    );
                    url.push_str(&format!(
                        "&dlr-mask=31&dlr-url={}",
                        url_encode(dlr_url.as_bytes())
                    ));
                }
                let (status, body) = match ctx.client.get(&url).send().await {
                    Ok(r) => {
                        let status = r.status().as_u16();
                        (status, r.text().await.unwrap_or_default())
                    }
                    Err(e) => (0, e.to_string()),
                };
                ctx.state.lock().unwrap().echoes.push(Echo {
                    reference,
                    to,
                    text,
                    coding,
                    status,
                    body,
                });
            });
            ""
        }

        async fn dlr_report(
            State(ctx): State<Ctx>,
            uri: Uri,
            RawQuery(q): RawQuery,
        ) -> &'static str {
            let req = MoRequest {
                uri: uri.to_string(),
                params: parse_query(q.as_deref().unwrap_or("")),
            };
            ctx.state.lock().unwrap().dlrs.push(Dlr {
                reference: req.get("ref").parse().unwrap_or(0),
                status: req.get("status").parse().unwrap_or(0),
                uri: req.uri,
            });
            ""
        }

        let ctx = Ctx {
            state: state.clone(),
            client: reqwest::Client::builder()
                .pool_max_idle_per_host(concurrency.max(1))
                .build()
                .unwrap(),
            limit: Arc::new(tokio::sync::Semaphore::new(concurrency.max(1))),
            dlr,
            port,
        };
        let app = axum::Router::new()
            .route("/mo", get(mo))
            .route("/dlr", get(dlr_report))
            .with_state(ctx);
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let thread = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async move {
                let listener = tokio::net::TcpListener::from_std(listener).unwrap();
                // Not a graceful shutdown: smsbox keeps its connections open.
                tokio::select! {
                    r = axum::serve(listener, app) => r.unwrap(),
                    _ = rx => {}
                }
            });
        });
        EchoApp {
            port,
            state,
            shutdown: Some(tx),
            thread: Some(thread),
        }
    }

    /// The get-url for [`Kannel::start`].
    pub fn get_url(&self) -> String {
        format!("http://127.0.0.1:{}/mo?{MO_QUERY}", self.port)
    }

    /// Send the echoes through this Kannel (MOs received before are not
    /// echoed).
    pub fn connect(&self, k: &Kannel) {
        self.state.lock().unwrap().sendsms = Some(format!(
            "{}?username={}&password={}",
            k.sendsms_url(),
            k.username(),
            k.password()
        ));
    }

    pub fn mos(&self) -> Vec<MoRequest> {
        self.state.lock().unwrap().mos.clone()
    }

    pub fn mo_count(&self) -> usize {
        self.state.lock().unwrap().mos.len()
    }

    pub fn echoes(&self) -> Vec<Echo> {
        self.state.lock().unwrap().echoes.clone()
    }

    pub fn dlrs(&self) -> Vec<Dlr> {
        self.state.lock().unwrap().dlrs.clone()
    }
}

impl Drop for EchoApp {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// One round-trip measurement.
#[derive(Debug, Clone)]
pub struct RoundTrip {
    pub n: usize,
    /// MOs fakesmsc reported sent, and `Got message` lines it printed.
    pub sent: usize,
    pub received: usize,
    /// From starting fakesmsc (it connects, then sends at once) to the n-th
    /// MT seen in its output (polled every 5 ms).
    pub elapsed: Duration,
    /// `received / elapsed`, messages per second.
    pub rate: f64,
    /// fakesmsc's own `from first to last received message X s, Y msgs/s`.
    pub fakesmsc_rate: Option<f64>,
    pub fakesmsc_seconds: Option<f64>,
}

/// Send `n` copies of `mo` with `fakesmsc -i 0 -m n` through `kannel`, whose
/// application answers each with one single-part MT, and wait (at most
/// `timeout`) until n MTs came back. Does not panic on a shortfall: check
/// `received`. The application is whatever `kannel`'s get-url points at
/// ([`EchoApp`] for [`ceiling`], smsflow for the benchmark).
pub fn round_trip(kannel: &Kannel, mo: &Mo, n: usize, timeout: Duration) -> RoundTrip {
    let f = kannel.fakesmsc(0.0, n as u64, std::slice::from_ref(mo));
    let deadline = f.started + timeout;
    // Count `Got message` lines as they are appended, without re-reading.
    let mut log = std::fs::File::open(&f.log).unwrap();
    let mut partial: Vec<u8> = Vec::new();
    let mut received = 0;
    let mut done_at;
    loop {
        log.read_to_end(&mut partial).unwrap();
        if let Some(end) = partial.iter().rposition(|&b| b == b'\n') {
            received += String::from_utf8_lossy(&partial[..end])
                .matches(": Got message ")
                .count();
            partial.drain(..=end);
        }
        done_at = Instant::now();
        if received >= n || done_at > deadline {
            break;
        }
        std::thread::sleep(Duration::from_millis(2));
    }
    let elapsed = done_at - f.started;
    let sent = f.sent_count();
    let summary = f.stop();
    RoundTrip {
        n,
        sent: summary.sent.map_or(sent, |s| s as usize),
        received,
        elapsed,
        rate: received as f64 / elapsed.as_secs_f64(),
        fakesmsc_rate: summary.received_rate,
        fakesmsc_seconds: summary.first_to_last_received,
    }
}

/// Kannel's own round trip with [`EchoApp`] (concurrency 32, no DLRs, log
/// files at warning level): `fakesmsc -i 0 -m n` → bearerbox → smsbox → the
/// app → sendsms → bearerbox → fakesmsc. Panics with the logs unless all n
/// came back within 60 s + 50 ms per message.
pub fn ceiling_round_trip(n: usize) -> RoundTrip {
    let app = EchoApp::start(false, 32);
    let k = Kannel::start_with_log_level(&app.get_url(), 2);
    app.connect(&k);
    let timeout = Duration::from_secs(60) + Duration::from_millis(50 * n as u64);
    let rt = round_trip(&k, &Mo::text("255700000001", "15000", "ping"), n, timeout);
    if rt.received < n {
        panic!(
            "only {} of {n} echoes came back ({} MOs reached the app, {} sendsms calls: {:?})\n{}",
            rt.received,
            app.mo_count(),
            app.echoes().len(),
            app.echoes().iter().find(|e| e.status != 202),
            k.logs()
        );
    }
    rt
}

/// Messages per second Kannel round-trips by itself (see
/// [`ceiling_round_trip`]).
pub fn ceiling(n: usize) -> f64 {
    ceiling_round_trip(n).rate
}
