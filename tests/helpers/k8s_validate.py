#!/usr/bin/env python3
"""Offline validation of rendered Kubernetes manifests (docs/container.md).

Usage:
    k8s_validate.py [--crds DIR] [--k8s-version V ...] [--check NAME ...] FILE...

Each FILE is a stream of YAML documents, e.g. `kubectl kustomize DIR`'s
output ("-" reads standard input). Checks, all run unless --check names some:

  schema      kubernetes-validate --strict: every built-in resource against the
              Kubernetes JSON schemas the package bundles, for each
              --k8s-version (default: 1.32 and the newest it bundles, "latest")
  crd         every resource of a group that has a vendored CRD (DIR, default
              tests/k8s_validate/crds) against that CRD's openAPIV3Schema for
              its apiVersion, made strict: additionalProperties false wherever
              the schema lists properties and does not set
              x-kubernetes-preserve-unknown-fields; metadata.name must be a
              DNS-1123 subdomain. A resource whose kind neither Kubernetes nor
              a vendored CRD defines is an error.
  replicas    KEDA ScaledObject: minReplicaCount <= maxReplicaCount (the CRD's
              CEL rule, defaults 0 and 100), idleReplicaCount <
              minReplicaCount, scaleTargetRef names a workload in the output
  partitions  KEDA ScaledObject: every kafka trigger names its topic(s), each
              declared by a Strimzi KafkaTopic in the output (spec.topicName,
              else metadata.name) with spec.partitions, and maxReplicaCount
              <= those partitions (KEDA never runs more consumers than that)
  containers  every container of every pod template: livenessProbe and
              readinessProbe (init containers excepted), resources.requests
              with cpu and memory, resources.limits with memory,
              runAsNonRoot true (container or pod), readOnlyRootFilesystem
              true, allowPrivilegeEscalation false

Prints one line per error, "<check>: <file>: <Kind>/<name>: <what>", then a
summary; exits 0 when nothing failed, 1 when a check failed, 2 on bad usage or
unreadable input, 3 when the validator itself failed.
"""

import argparse
import copy
import os
import re
import sys

try:
    import jsonschema
    import kubernetes_validate.utils as kv
    import yaml
except ImportError as e:  # pragma: no cover - reported to the user
    print(f"error: {e.name} is not installed (scripts/tools.sh installs "
          "kubernetes-validate and jsonschema into the venv)", file=sys.stderr)
    sys.exit(2)

CHECKS = ("schema", "crd", "replicas", "partitions", "containers")
HERE = os.path.dirname(os.path.abspath(__file__))
DEFAULT_CRDS = os.path.join(HERE, "..", "k8s_validate", "crds")
DNS_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
# Groups whose resources must match a vendored CRD rather than be skipped.
KAFKA_TRIGGERS = ("kafka", "apache-kafka")
WORKLOADS = {
    "Pod": ("spec",),
    "Deployment": ("spec", "template", "spec"),
    "StatefulSet": ("spec", "template", "spec"),
    "DaemonSet": ("spec", "template", "spec"),
    "ReplicaSet": ("spec", "template", "spec"),
    "Job": ("spec", "template", "spec"),
    "CronJob": ("spec", "jobTemplate", "spec", "template", "spec"),
}
KEDA_DEFAULT_MIN = 0
KEDA_DEFAULT_MAX = 100


def die(message):
    """Bad usage or unreadable input: exit 2, distinct from a failed check."""
    print(f"error: {message}", file=sys.stderr)
    sys.exit(2)


def group_of(api_version):
    return api_version.rsplit("/", 1)[0] if "/" in api_version else ""


def version_of(api_version):
    return api_version.rsplit("/", 1)[-1]


def m(x):
    """x when it is a mapping, else an empty one: odd input is reported by the
    schema checks, never a crash here."""
    return x if isinstance(x, dict) else {}


def seq(x):
    return x if isinstance(x, list) else []


def ident(doc):
    name = m(doc.get("metadata")).get("name", "<no name>")
    return f"{doc.get('kind', '<no kind>')}/{name}"


# --- CRD schemas -------------------------------------------------------------

def openapi_to_jsonschema(node, strict=True):
    """An OpenAPI v3 structural schema as JSON Schema, strict where it can be."""
    if isinstance(node, list):
        return [openapi_to_jsonschema(n, strict) for n in node]
    if not isinstance(node, dict):
        return node
    out = {}
    for key, value in node.items():
        if key == "properties":
            out[key] = {k: openapi_to_jsonschema(v, strict) for k, v in value.items()}
        elif key in ("items", "additionalProperties", "not"):
            out[key] = openapi_to_jsonschema(value, strict)
        elif key in ("allOf", "anyOf", "oneOf"):
            out[key] = openapi_to_jsonschema(value, strict)
        elif key.startswith("x-kubernetes-") or key in ("nullable", "description", "example"):
            continue
        else:
            out[key] = copy.deepcopy(value)
    if node.get("x-kubernetes-int-or-string"):
        out.pop("type", None)
        out["anyOf"] = out.get("anyOf") or [{"type": "integer"}, {"type": "string"}]
    if node.get("nullable") and "type" in out:
        out["type"] = [out["type"], "null"]
    preserve = node.get("x-kubernetes-preserve-unknown-fields") is True
    if strict and "properties" in node and "additionalProperties" not in node and not preserve:
        out["additionalProperties"] = False
    return out


def load_crds(directory):
    """{(group, kind): {version: validator}} from every CRD file in directory."""
    crds = {}
    try:
        names = sorted(os.listdir(directory))
    except OSError as e:
        die(f"cannot read the CRD directory {directory}: {e.strerror}")
    for name in names:
        if not name.endswith((".yaml", ".yml")):
            continue
        path = os.path.join(directory, name)
        with open(path) as f:
            for doc in yaml.safe_load_all(f):
                if not doc or doc.get("kind") != "CustomResourceDefinition":
                    continue
                spec = doc["spec"]
                versions = crds.setdefault((spec["group"], spec["names"]["kind"]), {})
                for v in spec["versions"]:
                    if not v.get("served", True):
                        continue
                    schema = openapi_to_jsonschema(v["schema"]["openAPIV3Schema"])
                    jsonschema.Draft202012Validator.check_schema(schema)
                    versions[v["name"]] = jsonschema.Draft202012Validator(schema)
    return crds


def json_path(path):
    return ".".join(str(p) for p in path) or "(top level)"


# --- checks ------------------------------------------------------------------

def check_schema(docs, crds, versions, report):
    for file, doc in docs:
        if (group_of(doc["apiVersion"]), doc["kind"]) in crds:
            continue
        for version in versions:
            try:
                kv.validate(doc, version, strict=True)
            except kv.ValidationError as e:
                report("schema", file, doc, f"Kubernetes {e.version}: "
                       f"{json_path(e.path)}: {e.message}")
            except kv.SchemaNotFoundError:
                report("schema", file, doc, f"Kubernetes {version} has no {doc['apiVersion']} "
                       f"{doc['kind']} and no CRD for it is vendored")
            except kv.VersionNotSupportedError:
                die(f"kubernetes-validate bundles no schemas for "
                    f"Kubernetes {version} (newest: {kv.latest_version()})")
            except Exception as e:  # a schema the package cannot resolve
                report("schema", file, doc, f"Kubernetes {version}: cannot validate: {e}")


def check_crd(docs, crds, report):
    for file, doc in docs:
        key = (group_of(doc["apiVersion"]), doc["kind"])
        if key not in crds:
            continue
        validator = crds[key].get(version_of(doc["apiVersion"]))
        if validator is None:
            report("crd", file, doc, f"the vendored {doc['kind']} CRD serves "
                   f"{', '.join(sorted(crds[key]))}, not {version_of(doc['apiVersion'])}")
            continue
        for err in sorted(validator.iter_errors(doc), key=lambda e: list(map(str, e.path))):
            report("crd", file, doc, f"{json_path(err.absolute_path)}: {err.message}")
        name = m(doc.get("metadata")).get("name")
        if not isinstance(name, str) or len(name) > 253 or not DNS_SUBDOMAIN.match(name):
            report("crd", file, doc, f"metadata.name {name!r} is not a DNS-1123 subdomain "
                   "(lower-case letters, digits, '-' and '.')")


def scaled_objects(docs):
    for file, doc in docs:
        if doc["kind"] == "ScaledObject" and group_of(doc["apiVersion"]) == "keda.sh":
            yield file, doc, m(doc.get("spec"))


def int_or(value, default):
    return value if isinstance(value, int) and not isinstance(value, bool) else default


def check_replicas(docs, report):
    workloads = {(d["kind"], m(d.get("metadata")).get("name")) for _, d in docs}
    for file, doc, spec in scaled_objects(docs):
        lo = int_or(spec.get("minReplicaCount"), KEDA_DEFAULT_MIN)
        hi = int_or(spec.get("maxReplicaCount"), KEDA_DEFAULT_MAX)
        if lo > hi:
            report("replicas", file, doc,
                   f"minReplicaCount {lo} is above maxReplicaCount {hi}")
        idle = int_or(spec.get("idleReplicaCount"), None)
        if idle is not None and idle >= lo:
            report("replicas", file, doc,
                   f"idleReplicaCount {idle} must be below minReplicaCount {lo}")
        target = m(spec.get("scaleTargetRef"))
        kind, name = target.get("kind", "Deployment"), target.get("name")
        if (kind, name) not in workloads:
            report("replicas", file, doc,
                   f"scaleTargetRef {kind}/{name} is not in the rendered output")


def check_partitions(docs, report):
    topics = {}
    for file, doc in docs:
        if doc["kind"] == "KafkaTopic" and group_of(doc["apiVersion"]) == "kafka.strimzi.io":
            spec = m(doc.get("spec"))
            topics[spec.get("topicName") or m(doc.get("metadata")).get("name")] = (doc, spec)
    for file, doc, spec in scaled_objects(docs):
        hi = int_or(spec.get("maxReplicaCount"), KEDA_DEFAULT_MAX)
        for i, trigger in enumerate(seq(spec.get("triggers"))):
            if m(trigger).get("type") not in KAFKA_TRIGGERS:
                continue
            names = [t.strip() for t in str(m(trigger.get("metadata")).get("topic") or "")
                     .split(",") if t.strip()]
            if not names:
                report("partitions", file, doc, f"triggers.{i} (kafka) names no topic, so "
                       "maxReplicaCount cannot be checked against its partitions")
            for name in names:
                if name not in topics:
                    report("partitions", file, doc, f"triggers.{i} consumes topic {name!r}, "
                           "which no KafkaTopic in the output declares")
                    continue
                partitions = int_or(topics[name][1].get("partitions"), None)
                if partitions is None:
                    report("partitions", file, doc, f"KafkaTopic for {name!r} sets no "
                           "spec.partitions to check maxReplicaCount against")
                elif hi > partitions:
                    report("partitions", file, doc, f"maxReplicaCount {hi} is above the "
                           f"{partitions} partitions of topic {name!r}: the extra replicas "
                           "would sit idle")


def dig(doc, path):
    for key in path:
        if not isinstance(doc, dict):
            return None
        doc = doc.get(key)
    return doc


def check_containers(docs, report):
    for file, doc in docs:
        path = WORKLOADS.get(doc["kind"])
        pod = dig(doc, path) if path else None
        if not isinstance(pod, dict):
            continue
        pod_non_root = m(pod.get("securityContext")).get("runAsNonRoot")
        lists = [("containers", seq(pod.get("containers"))),
                 ("initContainers", seq(pod.get("initContainers")))]
        for field, containers in lists:
            for c in map(m, containers):
                where = f"{field}[{c.get('name', '?')}]"
                missing = []
                if field == "containers":
                    missing += [p for p in ("livenessProbe", "readinessProbe") if not c.get(p)]
                res = m(c.get("resources"))
                req, lim = m(res.get("requests")), m(res.get("limits"))
                missing += [f"resources.requests.{r}" for r in ("cpu", "memory") if r not in req]
                missing += ["resources.limits.memory"] if "memory" not in lim else []
                sc = m(c.get("securityContext"))
                non_root = sc.get("runAsNonRoot", pod_non_root)
                if non_root is not True:
                    missing.append("runAsNonRoot: true (container or pod securityContext)")
                if sc.get("readOnlyRootFilesystem") is not True:
                    missing.append("securityContext.readOnlyRootFilesystem: true")
                if sc.get("allowPrivilegeEscalation") is not False:
                    missing.append("securityContext.allowPrivilegeEscalation: false")
                for what in missing:
                    report("containers", file, doc, f"{where} lacks {what}")


# --- main --------------------------------------------------------------------

def read_docs(files):
    docs = []
    for file in files:
        try:
            text = sys.stdin.read() if file == "-" else open(file).read()
            loaded = [d for d in yaml.safe_load_all(text) if d is not None]
        except OSError as e:
            die(f"cannot read {file}: {e.strerror}")
        except yaml.YAMLError as e:
            die(f"{file} is not valid YAML: {e}")
        for i, d in enumerate(loaded):
            if not isinstance(d, dict) or not isinstance(d.get("apiVersion"), str) \
                    or not isinstance(d.get("kind"), str):
                die(f"{file}: document {i + 1} is not a Kubernetes "
                                 "resource (no apiVersion and kind)")
            docs.append((file, d))
    return docs


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--crds", default=DEFAULT_CRDS, help="directory of vendored CRD files")
    ap.add_argument("--k8s-version", action="append", dest="versions",
                    help="Kubernetes version for the schema check; 'latest' is the newest "
                         "kubernetes-validate bundles (default: 1.32 and latest)")
    ap.add_argument("--check", action="append", choices=CHECKS, dest="checks")
    ap.add_argument("files", nargs="+")
    args = ap.parse_args()
    versions = [kv.latest_version() if v == "latest" else v
                for v in (args.versions or ["1.32", "latest"])]
    checks = args.checks or list(CHECKS)
    docs = read_docs(args.files)
    crds = load_crds(args.crds)
    errors = []

    def report(check, file, doc, what):
        errors.append(f"{check}: {file}: {ident(doc)}: {what}")

    if "schema" in checks:
        check_schema(docs, crds, versions, report)
    if "crd" in checks:
        check_crd(docs, crds, report)
    if "replicas" in checks:
        check_replicas(docs, report)
    if "partitions" in checks:
        check_partitions(docs, report)
    if "containers" in checks:
        check_containers(docs, report)
    for e in errors:
        print(e)
    print(f"{len(docs)} resources, checks {', '.join(checks)} "
          f"(Kubernetes {', '.join(versions)}): {len(errors)} errors")
    return 1 if errors else 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except (SystemExit, KeyboardInterrupt):
        raise
    except Exception:  # a bug here, not a failed check: say so, exit 3
        import traceback
        traceback.print_exc()
        print("error: k8s_validate.py itself failed (a bug in the validator)", file=sys.stderr)
        sys.exit(3)
