//! The processes: `smsflow run PIPELINE --stage NAME`, each named
//! `<stage>-<n>` with its own listen ports (the admin listener on the next
//! one) and its stderr in a file of its own per start (all kept for the
//! report). No instance id (no static membership): tansu 0.6.0 mishandles
//! static members.
//!
//! A crash is a SIGKILL; the replica is started again with the same name
//! and ports after `restart_after` (a Deployment restarting a crashed
//! container, after its back-off). Trimmed from `tests/chaos/replicas.rs`,
//! with the pause between the kill and the start.
//!
//! Shared by `tests/campaign_faults/` and `tests/campaign_lanes/`.

use std::collections::{BTreeMap, HashSet};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The backend's stage (its replicas take the webhooks).
pub const BACKEND: &str = "backend:gateway";

/// How long a process may take to say its stage started.
const START_WITHIN: Duration = Duration::from_secs(60);

pub struct Replica {
    pub stage: String,
    pub instance: String,
    /// The public listener's port (the admin listener has the next one).
    pub port: u16,
    child: Child,
    spawned: Instant,
    pub log: PathBuf,
}

pub struct Fleet {
    file: PathBuf,
    dir: PathBuf,
    env: Vec<(String, String)>,
    pub replicas: Vec<Replica>,
    next: BTreeMap<String, usize>,
    starts: BTreeMap<String, usize>,
    ports: HashSet<u16>,
    /// What failed to start, with its log.
    pub failures: Vec<(String, PathBuf)>,
    /// Every process's log, in start order.
    pub logs: Vec<(String, PathBuf)>,
}

impl Fleet {
    /// No replica yet; processes run `file` in `dir` with `env` besides
    /// their own `LISTEN`.
    pub fn new(file: &Path, dir: &Path, env: Vec<(String, String)>) -> Fleet {
        Fleet {
            file: file.to_owned(),
            dir: dir.to_owned(),
            env,
            replicas: Vec::new(),
            next: BTreeMap::new(),
            starts: BTreeMap::new(),
            ports: HashSet::new(),
            failures: Vec::new(),
            logs: Vec::new(),
        }
    }

    /// Start a new replica of each of `stages` at once and wait until
    /// their stages started; how many did.
    pub fn scale_up(&mut self, stages: &[&str]) -> usize {
        let wanted: Vec<(String, String, u16)> = stages
            .iter()
            .map(|stage| {
                let n = self.next.entry(stage.to_string()).or_insert(1);
                let instance = format!("{}-{n}", stage.replace(':', "-"));
                *n += 1;
                (stage.to_string(), instance, self.port())
            })
            .collect();
        let spawned: Vec<Replica> = wanted
            .into_iter()
            .map(|(stage, instance, port)| self.spawn(&stage, &instance, port))
            .collect();
        spawned
            .into_iter()
            .map(|r| self.wait(r))
            .filter(|up| *up)
            .count()
    }

    /// SIGKILL the replica at `i`; after `pause`, start it again with the
    /// same name and ports. Whether it started.
    pub fn kill_and_restart(&mut self, i: usize, pause: Duration) -> bool {
        let mut r = self.replicas.remove(i);
        let _ = r.child.kill();
        let _ = r.child.wait();
        std::thread::sleep(pause);
        let again = self.spawn(&r.stage, &r.instance, r.port);
        self.wait(again)
    }

    /// The indexes of `stage`'s replicas.
    pub fn of(&self, stage: &str) -> Vec<usize> {
        (0..self.replicas.len())
            .filter(|&i| self.replicas[i].stage == stage)
            .collect()
    }

    /// The webhook base URL of `stage`'s first replica.
    pub fn base_url(&self, stage: &str) -> String {
        let i = self.of(stage)[0];
        format!("http://127.0.0.1:{}", self.replicas[i].port)
    }

    /// Until `r` says its stage started: kept, or a failure.
    fn wait(&mut self, mut r: Replica) -> bool {
        match wait_started(&mut r) {
            Ok(()) => {
                self.replicas.push(r);
                true
            }
            Err(why) => {
                let _ = r.child.kill();
                let _ = r.child.wait();
                self.failures
                    .push((format!("{} ({}): {why}", r.instance, r.stage), r.log));
                false
            }
        }
    }

    fn spawn(&mut self, stage: &str, instance: &str, port: u16) -> Replica {
        let k = self.starts.entry(instance.to_owned()).or_default();
        *k += 1;
        let log = self.dir.join(format!("{instance}.{k}.log"));
        self.logs.push((instance.to_owned(), log.clone()));
        let out = std::fs::File::create(&log).unwrap();
        let child = Command::new(env!("CARGO_BIN_EXE_smsflow"))
            .arg("run")
            .arg(&self.file)
            .args(["--stage", stage])
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .env("LISTEN", format!("127.0.0.1:{port}"))
            .env_remove("SMSFLOW_INSTANCE_ID")
            .env(
                "RUST_LOG",
                std::env::var("SMSFLOW_CAMPAIGN_LOG").unwrap_or_else(|_| "info".into()),
            )
            .stdout(Stdio::null())
            .stderr(out)
            .spawn()
            .unwrap();
        Replica {
            stage: stage.to_owned(),
            instance: instance.to_owned(),
            port,
            child,
            spawned: Instant::now(),
            log,
        }
    }

    /// A port, and the one after it, free now and not given before; below
    /// the kernel's ephemeral range so that no client connection takes it
    /// while a killed replica waits to listen on it again.
    fn port(&mut self) -> u16 {
        loop {
            let port = fastrand::u16(20_000..32_000);
            if self.ports.contains(&port) || self.ports.contains(&(port + 1)) {
                continue;
            }
            let free = |p: u16| std::net::TcpListener::bind(("127.0.0.1", p)).is_ok();
            if free(port) && free(port + 1) {
                self.ports.insert(port);
                self.ports.insert(port + 1);
                return port;
            }
        }
    }
}

impl Drop for Fleet {
    fn drop(&mut self) {
        for r in &mut self.replicas {
            let _ = r.child.kill();
            let _ = r.child.wait();
        }
    }
}

/// Until the process logs that its stage started; the reason if it exits
/// or takes too long.
fn wait_started(r: &mut Replica) -> Result<(), String> {
    let deadline = r.spawned + START_WITHIN;
    loop {
        let text = std::fs::read_to_string(&r.log).unwrap_or_default();
        if text.contains("stage started") {
            return Ok(());
        }
        if let Some(status) = r.child.try_wait().unwrap() {
            return Err(format!("exited {status} while starting"));
        }
        if Instant::now() > deadline {
            return Err(format!("its stage did not start within {START_WITHIN:?}"));
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The last `n` lines of `log`.
pub fn tail(log: &Path, n: usize) -> String {
    let text = std::fs::read_to_string(log).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}
