#!/usr/bin/env bash
# Runs the whole coremq test suite: unit tests, integration tests over real
# sockets, and the interoperability tests with third-party clients
# (mosquitto_pub/mosquitto_sub from Debian's mosquitto-clients, paho-mqtt from
# PyPI). Installs those clients first if they are missing, so it works on a
# fresh Debian/Ubuntu machine with a Rust toolchain.
set -euo pipefail
cd "$(dirname "$0")/.."

need_apt=()
command -v mosquitto_sub >/dev/null 2>&1 || need_apt+=(mosquitto-clients)
command -v mosquitto >/dev/null 2>&1 || [ -x /usr/sbin/mosquitto ] || need_apt+=(mosquitto)
if [ ${#need_apt[@]} -gt 0 ]; then
  echo "== installing ${need_apt[*]} (apt)"
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${need_apt[@]}" >/dev/null
fi
if ! python3 -c "import paho.mqtt" >/dev/null 2>&1; then
  echo "== installing paho-mqtt (pip)"
  python3 -m pip install -q paho-mqtt
fi

echo "== cargo test"
cargo test --all-targets "$@"
