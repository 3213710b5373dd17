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
//!
//! The programs are found by [`super::tools`] (`SMSFLOW_BEARERBOX`,
//! `SMSFLOW_SMSBOX`, `SMSFLOW_FAKESMSC` override where): tests check with
//! `require_tools!(Tool::Bearerbox, Tool::Smsbox, Tool::Fakesmsc)` first.
//!
//! Files: this one (the boxes), [`fakesmsc`] (the phone and what it
//! receives), [`echo`] (the trivial application and the ceiling), [`http`]
//! (URL encoding and a blocking GET).

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::tools::Tool;

mod echo;
mod fakesmsc;
mod http;

// Not every test binary uses every part.
#[allow(unused_imports)]
pub use echo::*;
#[allow(unused_imports)]
pub use fakesmsc::*;
#[allow(unused_imports)]
pub use http::*;

/// Kannel's bearerbox.
pub fn bearerbox() -> PathBuf {
    Tool::Bearerbox.path()
}

/// Kannel's smsbox.
pub fn smsbox() -> PathBuf {
    Tool::Smsbox.path()
}

/// Kannel's fake SMS centre.
pub fn fakesmsc() -> PathBuf {
    Tool::Fakesmsc.path()
}

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
        // Each panics naming the package when it is not installed.
        let (bearerbox_bin, smsbox_bin) = (self::bearerbox(), self::smsbox());
        fakesmsc();
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
        k.bearerbox = Some(k.spawn_box(&bearerbox_bin, "bearerbox"));
        k.wait_until(
            "bearerbox's status page answers",
            Duration::from_secs(20),
            |k| k.status().is_some(),
        );
        k.smsbox = Some(k.spawn_box(&smsbox_bin, "smsbox"));
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

    fn spawn_box(&self, bin: &std::path::Path, name: &str) -> Child {
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
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", bin.display()))
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
        let fakesmsc = fakesmsc();
        let mut cmd = Command::new(&fakesmsc);
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
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", fakesmsc.display()));
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
