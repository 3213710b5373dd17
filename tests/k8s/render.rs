//! What `smsflow k8s render` makes of a pipeline.

use std::process::Command;

use serde_json::Value;
use smsflow::k8s::{Mode, Options, LAG_THRESHOLD, SECRET};
use smsflow::topology::{load_str, Topology};

use super::{named, of_kind, production, render, render_with, secrets, stage_of};

/// The production pipeline's stage names, as the topology sees them.
fn stage_names() -> Vec<String> {
    let text = std::fs::read_to_string(production()).unwrap();
    let env = secrets();
    let p = load_str(&text, &|k| env.get(k).cloned()).unwrap();
    Topology::new(p)
        .unwrap()
        .stages()
        .into_iter()
        .map(|s| s.name)
        .collect()
}

#[test]
fn prod_has_exactly_one_deployment_per_stage_running_it() {
    let docs = render(Mode::Prod);
    assert_eq!(
        docs,
        render(Mode::Auto),
        "on Kafka the mode by default is prod"
    );
    let stages = stage_names();
    assert!(stages.len() >= 5, "{stages:?}");
    let deployments = of_kind(&docs, "Deployment");
    let mut run: Vec<String> = deployments.iter().filter_map(|d| stage_of(d)).collect();
    assert_eq!(run.len(), deployments.len(), "a Deployment without --stage");
    run.sort();
    let mut want = stages.clone();
    want.sort();
    assert_eq!(run, want);
    let echo = named(&docs, "Deployment", "smsflow-app-echo");
    let c = &echo["spec"]["template"]["spec"]["containers"][0];
    assert_eq!(c["command"], serde_json::json!(["smsflow"]));
    assert_eq!(
        c["args"],
        serde_json::json!(["run", "/etc/smsflow/pipeline.yaml", "--stage", "app:echo"])
    );
    // One PodDisruptionBudget per stage, Services for the admin listener of
    // each and the public one of the backend (its webhooks) only.
    assert_eq!(of_kind(&docs, "PodDisruptionBudget").len(), stages.len());
    let public: Vec<&str> = of_kind(&docs, "Service")
        .into_iter()
        .filter(|s| s["metadata"]["labels"]["smsflow.io/listener"] == "public")
        .map(|s| s["metadata"]["name"].as_str().unwrap())
        .collect();
    assert_eq!(public, vec!["smsflow-backend-twilio"]);
    assert_eq!(of_kind(&docs, "Service").len(), stages.len() + 1);
}

#[test]
fn dev_is_one_deployment_of_one_replica_running_every_stage() {
    let docs = render(Mode::Dev);
    let deployments = of_kind(&docs, "Deployment");
    assert_eq!(deployments.len(), 1);
    let d = deployments[0];
    assert_eq!(d["metadata"]["name"], "smsflow");
    assert_eq!(d["spec"]["replicas"], 1);
    assert_eq!(stage_of(d), None);
    assert!(of_kind(&docs, "ScaledObject").is_empty());
    assert_eq!(of_kind(&docs, "PodDisruptionBudget").len(), 1);
}

#[test]
fn stage_filter_renders_only_those_stages() {
    let mut opts = Options::new(Mode::Prod);
    opts.stages = vec!["app:echo".into(), "router-in".into()];
    let docs = render_with(&production(), &opts).unwrap();
    let mut names: Vec<String> = of_kind(&docs, "Deployment")
        .iter()
        .filter_map(|d| stage_of(d))
        .collect();
    names.sort();
    assert_eq!(names, vec!["app:echo", "router-in"]);
    for kind in ["ConfigMap", "KafkaTopic", "ServiceMonitor"] {
        assert!(of_kind(&docs, kind).is_empty(), "{kind} with --stage");
    }
    opts.stages = vec!["app:nope".into()];
    let e = render_with(&production(), &opts).unwrap_err().to_string();
    assert!(
        e.contains("no stage \"app:nope\"") && e.contains("app:echo"),
        "{e}"
    );
}

#[test]
fn every_variable_comes_from_the_secret_and_no_secret_value_is_in_the_output() {
    let env = secrets();
    let out = Command::new(env!("CARGO_BIN_EXE_smsflow"))
        .args(["k8s", "render"])
        .arg(production())
        .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).unwrap();
    let leaked = |text: &str| -> Vec<&str> {
        env.iter()
            .filter(|(k, v)| **k != "TWILIO_FROM" && text.contains(v.as_str()))
            .map(|(k, _)| *k)
            .collect()
    };
    // The check finds a value when there is one.
    assert_eq!(
        leaked(&format!("x: {}", env["TWILIO_AUTH_TOKEN"])),
        vec!["TWILIO_AUTH_TOKEN"]
    );
    assert_eq!(leaked(&text), Vec::<&str>::new());
    let docs = super::parse_yaml(&text);
    for d in of_kind(&docs, "Deployment") {
        let c = &d["spec"]["template"]["spec"]["containers"][0];
        let env: Vec<&Value> = c["env"].as_array().unwrap().iter().collect();
        let from_secret = |name: &str| {
            env.iter().any(|e| {
                e["name"] == name
                    && e["valueFrom"]["secretKeyRef"]["name"] == SECRET
                    && e["valueFrom"]["secretKeyRef"]["key"] == name
            })
        };
        for var in secrets().keys() {
            assert!(from_secret(var), "{var} is not from the Secret");
        }
        // A secret's default only lets the file validate: the Secret must
        // have it. Other defaults apply when the key is absent.
        let optional = |name: &str| {
            env.iter().find(|e| e["name"] == name).unwrap()["valueFrom"]["secretKeyRef"]["optional"]
                .clone()
        };
        assert_eq!(optional("TWILIO_AUTH_TOKEN"), false);
        assert_eq!(optional("SMSFLOW_ADMIN_TOKEN"), false);
        assert_eq!(optional("SMSFLOW_PROJECT"), true);
        assert_eq!(optional("KAFKA_BROKERS"), true);
        let plain = |name: &str| env.iter().find(|e| e["name"] == name).unwrap()["value"].clone();
        assert_eq!(plain("SMSFLOW_LISTEN"), "0.0.0.0:8080");
        assert_eq!(plain("SMSFLOW_ADMIN_LISTEN"), "0.0.0.0:8081");
        let id = env
            .iter()
            .find(|e| e["name"] == "SMSFLOW_INSTANCE_ID")
            .unwrap();
        assert_eq!(id["valueFrom"]["fieldRef"]["fieldPath"], "metadata.name");
    }
}

#[test]
fn keda_scales_each_consuming_stage_on_its_group_up_to_the_partitions() {
    let docs = render(Mode::Prod);
    let scaled = of_kind(&docs, "ScaledObject");
    assert_eq!(scaled.len(), of_kind(&docs, "Deployment").len());
    for s in scaled {
        let name = s["metadata"]["name"].as_str().unwrap();
        let d = named(&docs, "Deployment", name);
        let stage = stage_of(d).unwrap();
        let t = &s["spec"]["triggers"][0];
        assert_eq!(t["type"], "kafka");
        let m = &t["metadata"];
        assert_eq!(m["consumerGroup"], format!("smsflow.{stage}"));
        assert_eq!(m["lagThreshold"], LAG_THRESHOLD.to_string());
        assert_eq!(m["bootstrapServersFromEnv"], "KAFKA_BROKERS");
        let topic = m["topic"].as_str().unwrap();
        let partitions = named(&docs, "KafkaTopic", topic)["spec"]["partitions"]
            .as_i64()
            .unwrap();
        let (min, max) = (
            s["spec"]["minReplicaCount"].as_i64().unwrap(),
            s["spec"]["maxReplicaCount"].as_i64().unwrap(),
        );
        assert!(
            1 <= min && min <= max && max <= partitions,
            "{name}: {min}..{max} of {partitions}"
        );
        assert!(
            d["spec"].get("replicas").is_none(),
            "{name}: KEDA owns replicas"
        );
    }
}

/// One process opens a serial port: the modem's stage is one replica,
/// replaced by stopping the old pod first, and never autoscaled.
#[test]
fn a_modem_backend_runs_alone_and_is_never_autoscaled() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("p.yaml");
    std::fs::write(
        &file,
        "kafka: {mode: kafka, brokers: '${KAFKA_BROKERS}'}\n\
         http: {listen: '0.0.0.0:8080'}\nbackends: [{type: modem, port: /dev/ttyUSB0}]\n\
         routes: [{app: echo}]\napps: [{type: echo}]\n",
    )
    .unwrap();
    let docs = render_with(&file, &Options::new(Mode::Prod)).unwrap();
    let modem = named(&docs, "Deployment", "smsflow-backend-modem");
    assert_eq!(modem["spec"]["replicas"], 1);
    assert_eq!(modem["spec"]["strategy"]["type"], "Recreate");
    let scaled: Vec<&str> = of_kind(&docs, "ScaledObject")
        .iter()
        .map(|s| s["metadata"]["name"].as_str().unwrap())
        .collect();
    assert!(!scaled.contains(&"smsflow-backend-modem"), "{scaled:?}");
}

#[test]
fn a_tester_backend_runs_alone_and_is_never_autoscaled() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("p.yaml");
    std::fs::write(
        &file,
        "kafka: {mode: kafka, brokers: '${KAFKA_BROKERS}'}\n\
         http: {listen: '0.0.0.0:8080'}\nbackends: [{type: tester}]\n\
         routes: [{app: echo}]\napps: [{type: echo}]\n",
    )
    .unwrap();
    let docs = render_with(&file, &Options::new(Mode::Prod)).unwrap();
    let tester = named(&docs, "Deployment", "smsflow-backend-message-tester");
    assert_eq!(tester["spec"]["replicas"], 1);
    assert_eq!(tester["spec"]["strategy"]["type"], "Recreate");
    let scaled: Vec<&str> = of_kind(&docs, "ScaledObject")
        .iter()
        .map(|s| s["metadata"]["name"].as_str().unwrap())
        .collect();
    assert!(
        !scaled.contains(&"smsflow-backend-message-tester"),
        "{scaled:?}"
    );
    assert!(scaled.contains(&"smsflow-router-in"), "{scaled:?}");
    // The admin listener stays on loopback: no admin Service, no ServiceMonitor.
    assert!(of_kind(&docs, "ServiceMonitor").is_empty());
}

#[test]
fn topics_carry_partitions_replicas_and_cleanup() {
    let docs = render(Mode::Prod);
    let sent = named(&docs, "KafkaTopic", "sms.send.twilio.sent");
    assert_eq!(sent["metadata"]["labels"]["strimzi.io/cluster"], "kafka");
    assert_eq!(sent["spec"]["partitions"], 6);
    assert_eq!(sent["spec"]["replicas"], 3);
    assert_eq!(sent["spec"]["config"]["cleanup.policy"], "compact,delete");
    assert_eq!(sent["spec"]["config"]["retention.ms"], "604800000");
    let inbound = named(&docs, "KafkaTopic", "sms.inbound");
    assert!(inbound["spec"].get("topicName").is_none());
    assert_eq!(
        named(&docs, "KafkaTopic", "sms.optouts")["spec"]["config"]["cleanup.policy"],
        "compact"
    );
}

#[test]
fn pods_probe_drain_and_run_locked_down() {
    let docs = render(Mode::Prod);
    for d in of_kind(&docs, "Deployment") {
        let pod = &d["spec"]["template"]["spec"];
        let c = &pod["containers"][0];
        assert_eq!(c["livenessProbe"]["httpGet"]["path"], "/healthz");
        assert_eq!(c["readinessProbe"]["httpGet"]["path"], "/readyz");
        assert_eq!(c["readinessProbe"]["httpGet"]["port"], "http");
        // shutdown_timeout is 20 s.
        assert!(pod["terminationGracePeriodSeconds"].as_u64().unwrap() > 20);
        assert_eq!(pod["securityContext"]["runAsNonRoot"], true);
        assert_eq!(
            pod["securityContext"]["seccompProfile"]["type"],
            "RuntimeDefault"
        );
        assert_eq!(c["securityContext"]["readOnlyRootFilesystem"], true);
        assert_eq!(
            c["securityContext"]["capabilities"]["drop"],
            serde_json::json!(["ALL"])
        );
        assert!(c["resources"]["limits"]["memory"].is_string());
        let hash = &d["spec"]["template"]["metadata"]["annotations"]["smsflow.io/pipeline-sha1"];
        assert_eq!(hash.as_str().unwrap().len(), 40);
    }
    let monitor = &of_kind(&docs, "ServiceMonitor")[0]["spec"]["endpoints"][0];
    assert_eq!(monitor["port"], "admin");
    assert_eq!(monitor["path"], "/metrics");
    assert_eq!(
        monitor["authorization"]["credentials"]["key"],
        "SMSFLOW_ADMIN_TOKEN"
    );
}

#[test]
fn a_changed_pipeline_changes_the_pod_template() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("p.yaml");
    let text = std::fs::read_to_string(production()).unwrap();
    let hash = |text: &str| {
        std::fs::write(&file, text).unwrap();
        let docs = render_with(&file, &Options::new(Mode::Prod)).unwrap();
        named(&docs, "Deployment", "smsflow-router-in")["spec"]["template"]["metadata"]
            ["annotations"]["smsflow.io/pipeline-sha1"]
            .clone()
    };
    assert_eq!(hash(&text), hash(&text));
    assert_ne!(
        hash(&text),
        hash(&text.replace("shutdown_timeout: 20s", "shutdown_timeout: 25s"))
    );
}

/// What rendering `yaml` (with an app) in `mode` says is wrong.
fn error(yaml: &str, mode: Mode) -> String {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("bad.yaml");
    std::fs::write(
        &file,
        format!("{yaml}routes: [{{app: echo}}]\napps: [{{type: echo}}]\n"),
    )
    .unwrap();
    match render_with(&file, &Options::new(mode)) {
        Ok(_) => panic!("rendered:\n{yaml}"),
        Err(e) => format!("{e:#}"),
    }
}

#[test]
fn bad_pipelines_are_refused_saying_why() {
    let e = error("kafka: {mode: kafka, brokers: x:1}\nhttp: {listen: '0.0.0.0:8080'}\nbackends: [{type: nope}]\n", Mode::Prod);
    assert!(
        e.contains("does not load") && e.contains("bad.yaml:3"),
        "{e}"
    );
    let e = error(
        "kafka: embedded\nhttp: {listen: '0.0.0.0:8080'}\nbackends: [{type: tester}]\n",
        Mode::Prod,
    );
    assert!(e.contains("--mode dev"), "{e}");
    let e = error("kafka: embedded\nbackends: [{type: tester}]\n", Mode::Dev);
    assert!(e.contains("http.listen is on loopback"), "{e}");
    let e = error(
        "kafka: embedded\nhttp: {listen: '10.1.2.3:8080'}\nbackends: [{type: tester}]\n",
        Mode::Dev,
    );
    assert!(e.contains("0.0.0.0:8080"), "{e}");
    let e = error("kafka: {mode: kafka, brokers: '${A:-x}:1'}\nhttp: {listen: '0.0.0.0:8080'}\nbackends: [{type: tester}]\n", Mode::Prod);
    assert!(e.contains("kafka.brokers"), "{e}");
    let e = error("a: [\n", Mode::Prod);
    assert!(e.contains("invalid YAML"), "{e}");
    let missing = smsflow::k8s::documents_with(
        std::path::Path::new("/nonexistent/p.yaml"),
        &Options::new(Mode::Prod),
        &|_| None,
    )
    .unwrap_err();
    assert!(
        missing
            .to_string()
            .contains("cannot read /nonexistent/p.yaml"),
        "{missing}"
    );
    // A required variable unset at render time: the pipeline does not load.
    let e = error(
        "kafka: {mode: kafka, brokers: '${NEEDED}'}\nhttp: {listen: '0.0.0.0:8080'}\nbackends: [{type: tester}]\n",
        Mode::Prod,
    );
    assert!(e.contains("NEEDED is not set"), "{e}");
}

#[test]
fn the_demo_pipeline_renders_for_one_pod() {
    let demo = super::common::root().join("pipelines/demo.yaml");
    // On the embedded bus, the mode by default is dev.
    let docs = render_with(&demo, &Options::new(Mode::Auto)).unwrap();
    assert_eq!(docs, render_with(&demo, &Options::new(Mode::Dev)).unwrap());
    assert_eq!(of_kind(&docs, "Deployment").len(), 1);
    assert!(of_kind(&docs, "KafkaTopic").is_empty());
    // Its translation file is in the ConfigMap and mounted beside it.
    let cm = &of_kind(&docs, "ConfigMap")[0];
    assert!(cm["data"]["translations-sw-yaml"]
        .as_str()
        .unwrap()
        .contains("sw"));
    let items = &of_kind(&docs, "Deployment")[0]["spec"]["template"]["spec"]["volumes"][0]
        ["configMap"]["items"];
    assert!(items
        .as_array()
        .unwrap()
        .iter()
        .any(|i| i["path"] == "translations/sw.yaml"));
}
