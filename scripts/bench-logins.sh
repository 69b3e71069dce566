#!/usr/bin/env bash
# Logins per second through a password file, by hash and with the login
# cache on and off, in alternation: a fresh release broker (2 shards, one
# listener refusing anonymous clients) per run, then `coremq-bench conn`
# with the same user name and password in every CONNECT, twice against the
# same broker: the first pass verifies every login (they arrive together,
# before any is cached), the second reconnects them (cache hits when the
# cache is on). Prints one line per run: hash, cache, logins/s of each pass.
#
# usage: scripts/bench-logins.sh [--rounds N] [--clients N] [--out DIR]
# Hashes: argon2id (made by `coremq passwd`) and $7$ PBKDF2-SHA512 (made by
# Debian's mosquitto_passwd, installed if missing). Port from
# BENCH_PORT_BASE (default 25883). Every run is bounded by timeout.
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=scripts/bench-lib.sh
. scripts/bench-lib.sh
ROUNDS=2 CLIENTS=400 OUT="bench-results/logins-$(date +%Y%m%d-%H%M%S)"
while [ $# -gt 0 ]; do
  case "$1" in
    --rounds) ROUNDS=$2; shift 2;;
    --clients) CLIENTS=$2; shift 2;;
    --out) OUT=$2; shift 2;;
    *) echo "unknown option $1" >&2; exit 2;;
  esac
done
bench_build
command -v mosquitto_passwd >/dev/null || apt-get install -y mosquitto >&2
OUT=$(bench_out "$OUT")
PORT=${BENCH_PORT_BASE:-25883}
rm -f "$OUT/passwd"
"$COREMQ" passwd -b -c "$OUT/passwd" argon secret 2>/dev/null
mosquitto_passwd -b "$OUT/passwd" pbkdf2 secret
for cache in 10000 0; do
  cat > "$OUT/cache-$cache.toml" <<TOML
[runtime]
cores = 2
[listener]
bind = "127.0.0.1:$PORT"
allow_anonymous = false
[auth]
password_file = "$OUT/passwd"
cache_size = $cache
TOML
done

run_one() { # user cache round
  local log="$OUT/$1-cache$2-$3"
  broker_start "$OUT/cache-$2.toml" "$log.broker.log" "listener 0:"
  for pass in first again; do
    timeout 300 "$BENCH" conn -c "$CLIENTS" -R 100000 -d 0.5 --drain 0 --connect-timeout 240 \
      --port "$PORT" --username "$1" --password secret --json --quiet \
      >"$log-$pass.json" 2>"$log-$pass.err" || echo "  $1 cache $2 round $3: tool failed" >&2
  done
  broker_stop
  python3 -c '
import json, sys
def rate(f):
    j = json.loads(open(f).read().strip().splitlines()[-1])
    r, ok, bad = j["connects_per_s"] or 0, j["connected"], j["connect_failed"]
    return "%9.0f/s (%d ok, %d failed)" % (r, ok, bad)
log, user, cache = sys.argv[1:4]
print("%-8s cache %5s: first %s, again %s"
      % (user, cache, rate(log + "-first.json"), rate(log + "-again.json")))
' "$log" "$1" "$2"
}

for r in $(seq "$ROUNDS"); do
  for user in pbkdf2 argon; do
    for cache in 10000 0; do
      run_one "$user" "$cache" "$r"
    done
  done
done
