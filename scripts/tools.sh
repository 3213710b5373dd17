# Sourced by scripts/test and scripts/bench: installs, when missing, what the
# tests and benchmarks use. Debian packages: chromium and chromium-driver (the
# browser test), wrk (the HTTP benchmark). The tansu broker (real-broker tests
# and benchmarks; each starts its own on a free loopback port), built once and
# kept in $cache. Exports SMSFLOW_TANSU.

as_root() {
  if [ "$(id -u)" = 0 ]; then "$@"; elif command -v sudo >/dev/null; then sudo "$@"; else
    echo "error: need root (or sudo) to run: $*" >&2; exit 1; fi
}

need_apt=()
[ -x /usr/bin/chromium ] || need_apt+=(chromium)
[ -x /usr/bin/chromedriver ] || need_apt+=(chromium-driver)
command -v wrk >/dev/null || need_apt+=(wrk)
if [ ${#need_apt[@]} -gt 0 ]; then
  echo "==> installing ${need_apt[*]} (Debian packages)"
  as_root apt-get update -qq
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need_apt[@]}" >/dev/null
fi

tansu_version=0.6.0
export SMSFLOW_TANSU="${SMSFLOW_TANSU:-$cache/tansu-$tansu_version/bin/tansu}"
if [ ! -x "$SMSFLOW_TANSU" ]; then
  echo "==> installing tansu $tansu_version into $cache (once; about 15-30 minutes on 2 cores)"
  env -u CARGO_TARGET_DIR cargo install tansu --version "$tansu_version" --locked \
      --features dynostore --root "$cache/tansu-$tansu_version" --quiet
fi
