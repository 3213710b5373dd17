//! The objects of one unit: its Deployment (the pod: command, env from the
//! Secret, probes, security), its Services and its PodDisruptionBudget.

use serde_json::{json, Value};

use super::plan::{self, Options, Unit, CONFIG_MAP, SECRET};
use super::source::{Source, FILE, INSTANCE_ID, MOUNT};

/// Seconds the pod gets after SIGTERM beyond the pipeline's drain deadline
/// (`shutdown_timeout`): for the process to close its Kafka clients and exit.
pub const GRACE_SLACK: u64 = 15;

/// Probe timings. The startup probe allows a long table restore (the
/// listeners answer once every stage has started); liveness and readiness
/// take over after it.
pub const STARTUP_PERIOD: u64 = 5;
pub const STARTUP_FAILURES: u64 = 60;
pub const LIVENESS_PERIOD: u64 = 10;
pub const READINESS_PERIOD: u64 = 5;

/// The Deployment of `unit`; `hash` is the ConfigMap's content hash.
pub fn deployment(src: &Source, opts: &Options, unit: &Unit, hash: &str) -> Value {
    let mut args = vec!["run".to_owned(), format!("{MOUNT}/{FILE}")];
    if let Some(stage) = &unit.stage {
        args.extend(["--stage".to_owned(), stage.clone()]);
    }
    let mut ports =
        vec![json!({"name": "http", "containerPort": src.public.port, "protocol": "TCP"})];
    if let Some(admin) = &src.admin {
        ports.push(json!({"name": "admin", "containerPort": admin.port, "protocol": "TCP"}));
    }
    let probe = |path: &str, period: u64, failures: u64| {
        json!({
            "httpGet": {"path": path, "port": "http"},
            "periodSeconds": period,
            "timeoutSeconds": 3,
            "failureThreshold": failures,
        })
    };
    let container = json!({
        "name": "smsflow",
        "image": opts.image,
        "imagePullPolicy": "IfNotPresent",
        "command": ["smsflow"],
        "args": args,
        "env": env(src),
        "ports": ports,
        "startupProbe": probe("/healthz", STARTUP_PERIOD, STARTUP_FAILURES),
        "livenessProbe": probe("/healthz", LIVENESS_PERIOD, 3),
        "readinessProbe": probe("/readyz", READINESS_PERIOD, 2),
        "resources": {
            "requests": {"cpu": "100m", "memory": "128Mi"},
            "limits": {"cpu": "1", "memory": "512Mi"},
        },
        "securityContext": {
            "allowPrivilegeEscalation": false,
            "readOnlyRootFilesystem": true,
            "runAsNonRoot": true,
            "capabilities": {"drop": ["ALL"]},
        },
        "volumeMounts": [{"name": "pipeline", "mountPath": MOUNT, "readOnly": true}],
    });
    let items: Vec<Value> = src
        .files
        .iter()
        .map(|(key, (path, _))| json!({"key": key, "path": path}))
        .collect();
    let grace = src.shutdown_timeout.as_secs_f64().ceil() as u64 + GRACE_SLACK;
    let pod = json!({
        "metadata": {
            "labels": plan::labels(&unit.name),
            "annotations": {"smsflow.io/pipeline-sha1": hash},
        },
        "spec": {
            "automountServiceAccountToken": false,
            "enableServiceLinks": false,
            "terminationGracePeriodSeconds": grace,
            "securityContext": {
                "runAsNonRoot": true,
                "runAsUser": 65532,
                "runAsGroup": 65532,
                "seccompProfile": {"type": "RuntimeDefault"},
            },
            "containers": [container],
            "volumes": [{"name": "pipeline", "configMap": {"name": CONFIG_MAP, "items": items}}],
        },
    });
    let strategy = match unit.scaled {
        Some(_) => {
            json!({"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0}})
        }
        // One process at a time, even during a rollout.
        None => json!({"type": "Recreate"}),
    };
    let mut meta = plan::meta(&unit.name, opts, plan::labels(&unit.name));
    meta["annotations"] = json!({"smsflow.io/stage": unit.stage.as_deref().unwrap_or("*")});
    let mut spec = json!({
        "selector": {"matchLabels": plan::selector(&unit.name)},
        "strategy": strategy,
        "template": pod,
    });
    // KEDA owns the replica count of a scaled unit; the others run one.
    if unit.scaled.is_none() {
        spec["replicas"] = 1.into();
    }
    json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": meta, "spec": spec})
}

/// The container's environment, sorted by name: what the manifests set
/// (listen addresses, log format, the instance id from the pod's name) and
/// every other variable the pipeline references, from the Secret.
fn env(src: &Source) -> Vec<Value> {
    let plain = src.plain_env();
    let mut env: Vec<(String, Value)> = plain
        .iter()
        .map(|(k, v)| (k.clone(), json!({"name": k, "value": v})))
        .collect();
    env.push((
        INSTANCE_ID.to_owned(),
        json!({"name": INSTANCE_ID, "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}}),
    ));
    for v in &src.vars {
        if plain.contains_key(&v.name) || v.name == INSTANCE_ID {
            continue;
        }
        // A secret's default only lets the file validate: never run on it.
        let optional = !v.required && !v.secret;
        let from = json!({"secretKeyRef": {"name": SECRET, "key": v.name, "optional": optional}});
        env.push((v.name.clone(), json!({"name": v.name, "valueFrom": from})));
    }
    env.sort_by(|a, b| a.0.cmp(&b.0));
    env.into_iter().map(|(_, v)| v).collect()
}

/// The unit's Services: the admin listener's (`<unit>-admin`, what the
/// ServiceMonitor scrapes) and, when it takes webhooks, the public one.
pub fn services(src: &Source, opts: &Options, unit: &Unit) -> Vec<Value> {
    let mut out = Vec::new();
    let service = |name: String, port: u16, port_name: &str, listener: &str| {
        let mut labels = plan::labels(&unit.name);
        labels["smsflow.io/listener"] = listener.into();
        json!({
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": plan::meta(&name, opts, labels),
            "spec": {
                "type": "ClusterIP",
                "selector": plan::selector(&unit.name),
                "ports": [{"name": port_name, "port": port, "targetPort": port_name, "protocol": "TCP"}],
            },
        })
    };
    if unit.webhooks {
        out.push(service(
            unit.name.clone(),
            src.public.port,
            "http",
            "public",
        ));
    }
    if let Some(admin) = &src.admin {
        out.push(service(
            format!("{}-admin", unit.name),
            admin.port,
            "admin",
            "admin",
        ));
    }
    out
}

/// At most one of the unit's pods down at a time for a voluntary
/// disruption (node drains); with one replica, the drain may take it.
pub fn disruption_budget(opts: &Options, unit: &Unit) -> Value {
    json!({
        "apiVersion": "policy/v1",
        "kind": "PodDisruptionBudget",
        "metadata": plan::meta(&unit.name, opts, plan::labels(&unit.name)),
        "spec": {
            "maxUnavailable": 1,
            "selector": {"matchLabels": plan::selector(&unit.name)},
        },
    })
}
