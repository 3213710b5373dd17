//! The replicas: `smsflow run PIPELINE --stage NAME` processes, each named
//! `<stage>-<n>` with its own listen ports, its stderr in a file of its own
//! (one per start, all kept for the failure report). They run without an
//! instance id (no static membership): tansu 0.6.0 mishandles static members.
//!
//! What Kubernetes would do to them, done here: a container restart after a
//! crash (SIGKILL, then the same name and ports again), a scale
//! change (new ids up, SIGTERM down), a rolling restart (a new replica up,
//! then SIGTERM to an old one).

use std::collections::{BTreeMap, HashSet};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// The backend replicas' webhook base URLs, as a Service's endpoints: the
/// load spreads its POSTs over them.
pub type Endpoints = Arc<Mutex<Vec<String>>>;

/// The stage whose replicas take the webhooks.
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

/// Something a replica did that the test counts as a failure.
#[derive(Debug)]
pub struct Failure {
    pub what: String,
    pub log: PathBuf,
}

pub struct Fleet {
    file: PathBuf,
    dir: PathBuf,
    env: Vec<(String, String)>,
    pub replicas: Vec<Replica>,
    /// The next replica number of each stage.
    next: BTreeMap<String, usize>,
    /// How many times each instance id was started.
    starts: BTreeMap<String, usize>,
    ports: HashSet<u16>,
    pub endpoints: Endpoints,
    pub failures: Vec<Failure>,
    /// Replicas that exited non-zero on SIGTERM because the broker did not
    /// take their last records in time (the process says so and fails, as
    /// it should: nothing it read is committed, so nothing is lost).
    pub broker_stalls: Vec<String>,
    /// Every process's log, in start order.
    pub logs: Vec<(String, PathBuf)>,
}

impl Fleet {
    /// No replica yet; processes run `file` in `dir` with `env` besides
    /// their own `LISTEN` and `SMSFLOW_INSTANCE_ID`.
    pub fn new(file: &Path, dir: &Path, env: Vec<(String, String)>) -> Fleet {
        Fleet {
            file: file.to_owned(),
            dir: dir.to_owned(),
            env,
            replicas: Vec::new(),
            next: BTreeMap::new(),
            starts: BTreeMap::new(),
            ports: HashSet::new(),
            endpoints: Endpoints::default(),
            failures: Vec::new(),
            broker_stalls: Vec::new(),
            logs: Vec::new(),
        }
    }

    /// Start a new replica (a new instance id) of each of `stages` at
    /// once, and wait until their stages started; how many did.
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
        self.launch(wanted)
    }

    /// SIGKILL the replica at `i`, then start it again with the same
    /// instance id and ports, as a Deployment restarts a crashed container.
    pub fn kill_and_restart(&mut self, i: usize) -> bool {
        let mut r = self.replicas.remove(i);
        let _ = r.child.kill();
        let _ = r.child.wait();
        self.launch(vec![(r.stage, r.instance, r.port)]) == 1
    }

    /// Take the replicas `instances` out of the endpoints, SIGTERM them at
    /// once and wait up to `grace` for each to exit: a failure unless it
    /// exits 0 in time (then SIGKILLed, as Kubernetes would). Returns the
    /// slowest exit.
    pub fn terminate(&mut self, instances: &[String], grace: Duration) -> Duration {
        let mut going = Vec::new();
        for instance in instances {
            if let Some(i) = self.replicas.iter().position(|r| r.instance == *instance) {
                let r = self.replicas.remove(i);
                self.endpoints
                    .lock()
                    .unwrap()
                    .retain(|e| *e != base_url(r.port));
                going.push(r);
            }
        }
        let asked = Instant::now();
        for r in &going {
            signal(&r.child, "TERM");
        }
        let mut slowest = Duration::ZERO;
        for mut r in going {
            loop {
                if let Some(status) = r.child.try_wait().unwrap() {
                    if status.success() {
                    } else if broker_stalled(&r.log) {
                        self.broker_stalls.push(r.instance.clone());
                    } else {
                        self.fail(&r, format!("exited {status} on SIGTERM"));
                    }
                    break;
                }
                if asked.elapsed() > grace {
                    let _ = r.child.kill();
                    let _ = r.child.wait();
                    self.fail(
                        &r,
                        format!("still running {grace:?} after SIGTERM (SIGKILLed)"),
                    );
                    break;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            slowest = slowest.max(asked.elapsed());
        }
        slowest
    }

    /// The indexes of `stage`'s replicas.
    pub fn of(&self, stage: &str) -> Vec<usize> {
        (0..self.replicas.len())
            .filter(|&i| self.replicas[i].stage == stage)
            .collect()
    }

    /// SIGKILL whatever still runs.
    pub fn kill_all(&mut self) {
        for r in &mut self.replicas {
            let _ = r.child.kill();
            let _ = r.child.wait();
        }
    }

    fn fail(&mut self, r: &Replica, what: String) {
        self.failures.push(Failure {
            what: format!("{} ({}): {what}", r.instance, r.stage),
            log: r.log.clone(),
        });
    }

    /// Spawn each `(stage, instance, port)` and wait until their stages
    /// started; how many did. A port someone else took meanwhile gets a
    /// new one.
    fn launch(&mut self, wanted: Vec<(String, String, u16)>) -> usize {
        let mut pending: Vec<(Replica, usize)> = wanted
            .into_iter()
            .map(|(stage, instance, port)| (self.spawn(&stage, &instance, port), 0))
            .collect();
        let mut up = 0;
        while let Some((mut r, tries)) = pending.pop() {
            let why = match wait_started(&mut r) {
                Ok(()) => {
                    if r.stage == BACKEND {
                        let mut e = self.endpoints.lock().unwrap();
                        if !e.contains(&base_url(r.port)) {
                            e.push(base_url(r.port));
                        }
                    }
                    self.replicas.push(r);
                    up += 1;
                    continue;
                }
                Err(why) => why,
            };
            let text = std::fs::read_to_string(&r.log).unwrap_or_default();
            let _ = r.child.kill();
            let _ = r.child.wait();
            if !text.contains("cannot listen") || tries == 2 {
                self.fail(&r, why);
                continue;
            }
            // Its port was taken between two starts: a new one.
            self.endpoints
                .lock()
                .unwrap()
                .retain(|e| *e != base_url(r.port));
            let port = self.port();
            pending.push((self.spawn(&r.stage, &r.instance, port), tries + 1));
        }
        up
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
            // Static membership is off on tansu 0.6.0: a second static
            // member of a group never completes its join, and the group
            // rebalances every session timeout (docs/operations.md). The
            // instance name still tells the replicas apart in the logs.
            .env_remove("SMSFLOW_INSTANCE_ID")
            .env(
                "RUST_LOG",
                std::env::var("SMSFLOW_CHAOS_LOG").unwrap_or_else(|_| "info".into()),
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

    /// A port, and the one after it, free now and not given before; taken
    /// below the kernel's ephemeral range so that no client connection gets
    /// it while a killed replica waits to listen on it again.
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
        self.kill_all();
    }
}

pub fn base_url(port: u16) -> String {
    format!("http://127.0.0.1:{port}")
}

fn signal(child: &Child, sig: &str) {
    let _ = Command::new("kill")
        .arg(format!("-{sig}"))
        .arg(child.id().to_string())
        .status();
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
/// Whether a replica's unclean shutdown was the broker's doing: it says
/// its final flush timed out, or that the broker did not answer while it
/// ran (with 12 processes and the load on 2 cores, tansu sometimes stops
/// answering for seconds; then a stage cannot drain either).
fn broker_stalled(log: &Path) -> bool {
    let text = std::fs::read_to_string(log).unwrap_or_default();
    let unclean = text
        .lines()
        .rev()
        .find(|l| l.contains("shutdown was not clean"));
    let Some(unclean) = unclean else {
        return false;
    };
    unclean.contains("producer flush: kafka: Flush error: OperationTimedOut")
        || text.contains("the broker does not answer")
}

pub fn tail(log: &Path, n: usize) -> String {
    let text = std::fs::read_to_string(log).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}
