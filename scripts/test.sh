#!/usr/bin/env bash
# Runs the whole coremq test suite: unit tests, integration tests over real
# sockets, and the interoperability tests with third-party clients
# (mosquitto_pub/mosquitto_sub from Debian's mosquitto-clients, paho-mqtt from
# PyPI, MQTT.js from npm in Debian's headless Chromium), the load tool against
# Debian's mosquitto broker, and password files made by its mosquitto_passwd
# (same package), e2fsprogs for the full-disk test, and Python's
# prometheus-client (its parser reads /metrics). Installs those
# first if they are missing, so it works on a fresh Debian/Ubuntu machine with
# a Rust toolchain. Extra arguments go to `cargo test` (a --release among
# them also to the build of the load tool).
set -euo pipefail
cd "$(dirname "$0")/.."

apt_install() {
  echo "== installing $* (apt)"
  local sudo=""; [ "$(id -u)" -eq 0 ] || sudo="sudo"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "$@" >/dev/null
}

need=()
command -v mosquitto_sub >/dev/null 2>&1 || need+=(mosquitto-clients)
if ! { command -v mosquitto >/dev/null 2>&1 || [ -x /usr/sbin/mosquitto ]; } \
  || ! command -v mosquitto_passwd >/dev/null 2>&1; then need+=(mosquitto); fi
command -v python3 >/dev/null 2>&1 || need+=(python3 python3-pip)
# tests/interop_browser.rs: headless Chromium running MQTT.js from npm.
[ -x /usr/bin/chromium ] || need+=(chromium)
command -v npm >/dev/null 2>&1 || need+=(nodejs npm)
# tests/storage_full.rs: a small ext4 filesystem, loop-mounted, filled up.
command -v mkfs.ext4 >/dev/null 2>&1 || [ -x /sbin/mkfs.ext4 ] || need+=(e2fsprogs)
if [ ${#need[@]} -gt 0 ]; then apt_install "${need[@]}"; fi

if ! python3 -c "import paho.mqtt.client as m; assert hasattr(m, 'CallbackAPIVersion')" >/dev/null 2>&1; then
  echo "== installing paho-mqtt 2.x (pip)"
  # A distribution Python may refuse a plain pip install (PEP 668): fall back.
  python3 -m pip install -q 'paho-mqtt>=2' \
    || python3 -m pip install -q --break-system-packages 'paho-mqtt>=2'
fi

# tests/http_metrics.rs parses /metrics with the Prometheus project's own parser.
if ! python3 -c "import prometheus_client.openmetrics.parser" >/dev/null 2>&1; then
  echo "== installing prometheus-client (pip)"
  python3 -m pip install -q prometheus-client \
    || python3 -m pip install -q --break-system-packages prometheus-client
fi

# MQTT.js for the browser test, at the version package-lock.json pins.
lock=tests/browser/package-lock.json
stamp=tests/browser/node_modules/.package-lock.json
if [ ! -f tests/browser/node_modules/mqtt/dist/mqtt.min.js ] || [ "$lock" -nt "$stamp" ]; then
  echo "== npm ci (tests/browser)"
  (cd tests/browser && npm ci --no-audit --no-fund --loglevel=error)
fi

# tests/bench_tool.rs runs the load tool's binary, which belongs to another
# workspace member: cargo builds it for no test of this package, so build it
# here, for the profile the tests use.
profile=""
for a in "$@"; do case "$a" in --release) profile=--release;; esac; done
echo "== cargo build -p coremq-bench $profile"
# shellcheck disable=SC2086 # empty or one word
cargo build -p coremq-bench $profile

echo "== cargo test"
# --workspace: the broker's tests and the load tool's unit tests.
cargo test --workspace --lib --bins --tests --examples "$@"
