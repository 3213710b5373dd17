//! A real Kafka-compatible broker for tests: tansu, started on a free
//! loopback port with in-memory storage, stopped when dropped.
//!
//! The binary comes from `$SMSFLOW_TANSU`, or from where `scripts/test`
//! installs it (`~/.cache/smsflow/tansu-<version>/bin/tansu`): see
//! [`super::tools`].

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::tools::Tool;

/// The tansu binary (`$SMSFLOW_TANSU`, or where `scripts/test` installs
/// it); panics saying how to install it. Tests check with
/// `require_tools!(Tool::Tansu)` first.
pub fn tansu_binary() -> PathBuf {
    Tool::Tansu.path()
}

pub struct Broker {
    child: Option<Child>,
    pub port: u16,
    /// The port clients are told to connect to (a TLS proxy's, or `port`).
    advertised: u16,

    pub log: PathBuf,
    _dir: tempfile::TempDir,
}

impl Broker {
    pub fn start() -> Broker {
        Broker::start_advertising(None)
    }

    /// A broker that tells clients to connect to loopback port `advertised`
    /// (a TLS proxy in front of it) instead of its own.
    pub fn start_advertising(advertised: Option<u16>) -> Broker {
        let port = super::free_port();
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("tansu.log");
        let mut b = Broker {
            child: None,
            port,
            advertised: advertised.unwrap_or(port),
            log,
            _dir: dir,
        };
        b.spawn();
        b
    }

    fn spawn(&mut self) {
        let url = format!("tcp://127.0.0.1:{}", self.port);
        let advertised = format!("tcp://127.0.0.1:{}", self.advertised);
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .unwrap();
        let child = Command::new(tansu_binary())
            .args([
                "broker",
                "--listener-url",
                &url,
                "--advertised-listener-url",
                &advertised,
                "--storage-engine",
                "memory://tansu/",
            ])
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap();
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(30);
        while std::net::TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            assert!(
                Instant::now() < deadline,
                "tansu did not start listening; log: {}",
                std::fs::read_to_string(&self.log).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// The broker's process id, while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    pub fn brokers(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    fn signal(&self, sig: &str) {
        if let Some(c) = &self.child {
            let _ = Command::new("kill")
                .arg(format!("-{sig}"))
                .arg(c.id().to_string())
                .status();
        }
    }

    /// Freeze the broker (SIGSTOP): it keeps its data but answers nothing.
    pub fn pause(&self) {
        self.signal("STOP");
    }

    /// Let a paused broker go on (SIGCONT).
    pub fn resume(&self) {
        self.signal("CONT");
    }

    /// SIGTERM, then SIGKILL if it is still there after 5 s (tansu was seen
    /// ignoring SIGTERM for seconds).
    pub fn stop(&mut self) {
        let Some(mut c) = self.child.take() else {
            return;
        };
        let _ = Command::new("kill")
            .arg("-CONT")
            .arg(c.id().to_string())
            .status();
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(c.id().to_string())
            .status();
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if c.try_wait().ok().flatten().is_some() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = c.kill();
        let _ = c.wait();
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        self.stop();
    }
}
