#!/usr/bin/env bash
# Runs the broker (release build) on config/coremq.toml, passing extra flags through:
#   scripts/run.sh --listen 127.0.0.1:1883 --cores 2
set -euo pipefail
cd "$(dirname "$0")/.."
exec cargo run --release --bin coremq -- --config config/coremq.toml "$@"
