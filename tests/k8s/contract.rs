//! The manifest ↔ binary contract: the committed prod manifests
//! (`k8s/base` + `k8s/overlays/prod`) run as local processes against a
//! tansu broker, each Deployment as many times as it declares (its
//! `replicas`, or its ScaledObject's `minReplicaCount`), with its command,
//! args and env: the ConfigMap written where it is mounted (a temporary
//! directory), Secret values from fixtures, the pod's name for
//! `fieldRef: metadata.name` (but for `SMSFLOW_INSTANCE_ID`: tansu mishandles
//! static members), and each declared container port moved to a
//! free local one. Then every declared probe answers 200 within what its
//! thresholds allow, the ServiceMonitor's port and path serve Prometheus
//! text with the Secret's token, and each process exits 0 on SIGTERM within
//! the pod's `terminationGracePeriodSeconds`.

use std::collections::BTreeMap;
use std::io::{Read as _, Write as _};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use super::common::broker::Broker;
use super::common::{self, Tool};
use super::{named, of_kind, parse_yaml, secrets};

/// One replica of a Deployment, running.
struct Pod {
    name: String,
    child: Child,
    /// Container port → the local port it was moved to.
    ports: BTreeMap<u64, u16>,
    /// Container port name → container port.
    port_names: BTreeMap<String, u64>,
    log: PathBuf,
    deployment: Value,
}

impl Pod {
    fn port(&self, name_or_number: &Value) -> u16 {
        let container = match name_or_number {
            Value::String(n) => self.port_names[n],
            v => v.as_u64().unwrap(),
        };
        self.ports[&container]
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

/// Kills what is still running when the test fails half-way.
struct Pods(Vec<Pod>);

impl Drop for Pods {
    fn drop(&mut self) {
        for p in &mut self.0 {
            let _ = p.child.kill();
            let _ = p.child.wait();
        }
    }
}

/// A free local port this test has not handed out yet, nor its neighbour
/// (the kernel can give a port released by one pick to the next: two pods
/// then collide on it).
fn unused_port() -> u16 {
    static GIVEN: std::sync::Mutex<std::collections::BTreeSet<u16>> =
        std::sync::Mutex::new(std::collections::BTreeSet::new());
    let mut given = GIVEN.lock().unwrap();
    loop {
        let port = common::free_port();
        if !(port - 1..=port + 1).any(|p| given.contains(&p)) {
            given.insert(port);
            return port;
        }
    }
}

/// A `GET` on a local port: the status and body, or None when nothing answers.
fn get(port: u16, path: &str, token: Option<&str>) -> Option<(u16, String)> {
    let mut s = TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    let auth = token
        .map(|t| format!("Authorization: Bearer {t}\r\n"))
        .unwrap_or_default();
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n{auth}Connection: close\r\n\r\n"
    )
    .ok()?;
    let mut out = String::new();
    s.read_to_string(&mut out).ok()?;
    let status = out.split(' ').nth(1)?.parse().ok()?;
    let body = out.split_once("\r\n\r\n").map(|(_, b)| b.to_owned())?;
    Some((status, body))
}

fn secs(v: &Value, default: u64) -> u64 {
    v.as_u64().unwrap_or(default)
}

/// The most a probe may take to pass: its period × failure threshold.
fn budget(probe: &Value) -> Duration {
    Duration::from_secs(
        secs(&probe["initialDelaySeconds"], 0)
            + secs(&probe["periodSeconds"], 10) * secs(&probe["failureThreshold"], 3),
    )
}

/// Wait until `probe` (an `httpGet`) answers 200 by `deadline`.
fn passes(pod: &mut Pod, probe: &Value, deadline: Instant) {
    let port = pod.port(&probe["httpGet"]["port"]);
    let path = probe["httpGet"]["path"].as_str().unwrap();
    loop {
        match get(port, path, None) {
            Some((200, _)) => return,
            // Never a state to wait out: nothing is served there.
            Some((404, body)) => panic!("{}: nothing at {path} ({body})", pod.name),
            _ => {}
        }
        if let Ok(Some(status)) = pod.child.try_wait() {
            panic!(
                "{} exited ({status}) before {path} answered 200:\n{}",
                pod.name,
                pod.log()
            );
        }
        assert!(
            Instant::now() < deadline,
            "{}: {path} did not answer 200 within what its probe allows:\n{}",
            pod.name,
            pod.log()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// Write the ConfigMap's files where `deployment` mounts them, under `root`.
fn mount(deployment: &Value, config_maps: &[&Value], root: &Path) {
    let pod = &deployment["spec"]["template"]["spec"];
    for m in pod["containers"][0]["volumeMounts"].as_array().unwrap() {
        let volume = pod["volumes"]
            .as_array()
            .unwrap()
            .iter()
            .find(|v| v["name"] == m["name"])
            .unwrap();
        let cm = config_maps
            .iter()
            .find(|c| c["metadata"]["name"] == volume["configMap"]["name"])
            .expect("the mounted ConfigMap is in the base");
        let dir = root.join(m["mountPath"].as_str().unwrap().trim_start_matches('/'));
        for item in volume["configMap"]["items"].as_array().unwrap() {
            let file = dir.join(item["path"].as_str().unwrap());
            std::fs::create_dir_all(file.parent().unwrap()).unwrap();
            let key = item["key"].as_str().unwrap();
            std::fs::write(file, cm["data"][key].as_str().unwrap()).unwrap();
        }
    }
}

/// Start replica `i` of `deployment` as the manifest says, its volumes
/// under a directory of its own in `dir`.
fn start(
    deployment: &Value,
    i: usize,
    dir: &Path,
    config_maps: &[&Value],
    fixtures: &BTreeMap<&str, String>,
) -> Pod {
    let name = format!("{}-{i}", deployment["metadata"]["name"].as_str().unwrap());
    let root = dir.join(&name);
    mount(deployment, config_maps, &root);
    let c = &deployment["spec"]["template"]["spec"]["containers"][0];
    let mut ports = BTreeMap::new();
    let mut port_names = BTreeMap::new();
    for p in c["ports"].as_array().unwrap() {
        let container = p["containerPort"].as_u64().unwrap();
        ports.insert(container, unused_port());
        port_names.insert(p["name"].as_str().unwrap().to_owned(), container);
    }
    let mut env = BTreeMap::new();
    for e in c["env"].as_array().unwrap() {
        let key = e["name"].as_str().unwrap().to_owned();
        if let Some(v) = e["value"].as_str() {
            // A listen address on a declared port: the same host, the moved port.
            let moved = v.rsplit_once(':').and_then(|(host, port)| {
                let local = ports.get(&port.parse::<u64>().ok()?)?;
                Some(format!("{host}:{local}"))
            });
            env.insert(key, moved.unwrap_or_else(|| v.to_owned()));
        } else if let Some(r) = e["valueFrom"].get("secretKeyRef") {
            let k = r["key"].as_str().unwrap();
            match fixtures.get(k) {
                Some(v) => {
                    env.insert(key, v.clone());
                }
                None => assert_eq!(r["optional"], true, "no fixture for the required {k}"),
            }
        } else if e["valueFrom"]["fieldRef"]["fieldPath"] == "metadata.name" {
            // The pod's name, except as SMSFLOW_INSTANCE_ID: tansu 0.6.0
            // mishandles static members (a second one never completes its
            // join), so the replicas run here as dynamic members.
            if key != "SMSFLOW_INSTANCE_ID" {
                env.insert(key, name.clone());
            }
        } else {
            panic!("an env entry the test cannot give: {e}");
        }
    }
    let root_str = root.display().to_string();
    let args: Vec<String> = c["args"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| {
            let a = a.as_str().unwrap();
            match a.starts_with('/') {
                true => format!("{root_str}{a}"),
                false => a.to_owned(),
            }
        })
        .collect();
    assert_eq!(c["command"], serde_json::json!(["smsflow"]));
    let log = dir.join(format!("{name}.log"));
    let child = Command::new(env!("CARGO_BIN_EXE_smsflow"))
        .args(&args)
        .env_clear()
        .envs(&env)
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    Pod {
        name,
        child,
        ports,
        port_names,
        log,
        deployment: deployment.clone(),
    }
}

#[test]
fn the_prod_manifests_run_as_local_processes_as_declared() {
    crate::require_tools!(Tool::Tansu);
    let read = |p: &str| std::fs::read_to_string(common::root().join(p)).unwrap();
    let mut docs = parse_yaml(&read("k8s/base/resources.yaml"));
    docs.extend(parse_yaml(&read("k8s/overlays/prod/stages.yaml")));
    let broker = Broker::start();
    let mut fixtures = secrets();
    fixtures.insert("KAFKA_BROKERS", broker.brokers());
    fixtures.insert("SMSFLOW_PUBLIC_URL", "http://127.0.0.1:8080".to_owned());
    let dir = tempfile::tempdir().unwrap();
    let config_maps = of_kind(&docs, "ConfigMap");

    let mut pods = Pods(Vec::new());
    for d in of_kind(&docs, "Deployment") {
        let name = d["metadata"]["name"].as_str().unwrap();
        let replicas = d["spec"]["replicas"].as_u64().unwrap_or_else(|| {
            named(&docs, "ScaledObject", name)["spec"]["minReplicaCount"]
                .as_u64()
                .unwrap()
        });
        assert!(replicas >= 1, "{name}");
        for i in 0..replicas as usize {
            pods.0
                .push(start(d, i, dir.path(), &config_maps, &fixtures));
        }
    }
    assert!(pods.0.len() >= 5, "{} processes", pods.0.len());

    for pod in &mut pods.0 {
        let c = pod.deployment["spec"]["template"]["spec"]["containers"][0].clone();
        let started = Instant::now() + budget(&c["startupProbe"]);
        passes(pod, &c["startupProbe"], started);
        passes(
            pod,
            &c["livenessProbe"],
            Instant::now() + budget(&c["livenessProbe"]),
        );
        passes(
            pod,
            &c["readinessProbe"],
            started + budget(&c["readinessProbe"]),
        );
    }

    let monitor = &of_kind(&docs, "ServiceMonitor")[0]["spec"]["endpoints"][0];
    let token = &fixtures[monitor["authorization"]["credentials"]["key"]
        .as_str()
        .unwrap()];
    let path = monitor["path"].as_str().unwrap();
    for pod in &pods.0 {
        let port = pod.port(&monitor["port"]);
        let (status, body) = get(port, path, Some(token)).expect("the admin port answers");
        assert_eq!(status, 200, "{}: {body}", pod.name);
        assert!(
            body.contains("# TYPE smsflow_"),
            "{}: not Prometheus text: {body}",
            pod.name
        );
        // Without the Secret's token, the scrape is refused.
        assert_eq!(
            get(port, path, None).map(|(s, _)| s),
            Some(401),
            "{}",
            pod.name
        );
    }

    let sent = Instant::now();
    for pod in &pods.0 {
        // SAFETY: a plain kill(2) of a child this test started.
        unsafe { libc::kill(pod.child.id() as i32, libc::SIGTERM) };
    }
    for pod in &mut pods.0 {
        let grace = pod.deployment["spec"]["template"]["spec"]["terminationGracePeriodSeconds"]
            .as_u64()
            .unwrap();
        let deadline = sent + Duration::from_secs(grace);
        let status = loop {
            if let Some(s) = pod.child.try_wait().unwrap() {
                break s;
            }
            assert!(
                Instant::now() < deadline,
                "{} still running {grace} s after SIGTERM:\n{}",
                pod.name,
                pod.log()
            );
            std::thread::sleep(Duration::from_millis(100));
        };
        assert!(
            status.success(),
            "{} exited {status}:\n{}",
            pod.name,
            pod.log()
        );
    }
}
