#!/usr/bin/env bash
# What the control plane costs on an idle node: 15,000 connected clients (one
# subscription each, nobody publishing) held 30 s; broker CPU over the hold
# (from /proc, by coremq-bench --broker-pid) and RSS per connection. Variants
# alternate in each round: `before` (an older coremq binary), `after` (this
# build, default configuration: alarms checked each second, $SYS every 10 s)
# and `after-ops` (this build with the HTTP listener on, $SYS every second and
# /metrics plus /api/v1/node fetched every second by curl).
#
# usage: scripts/bench-idle-ops.sh BEFORE_BIN [ROUNDS] [OUT]
# Every broker is stopped by its PID; every run is bounded (timeout).
set -euo pipefail
cd "$(dirname "$0")/.."
BEFORE=${1:?usage: scripts/bench-idle-ops.sh BEFORE_BIN [ROUNDS] [OUT]}
ROUNDS=${2:-2} OUT=${3:-bench-results/idle-ops-$(date +%Y%m%d-%H%M%S)}
cargo build --release --workspace --bins >&2
AFTER=target/release/coremq BENCH=target/release/coremq-bench
mkdir -p "$OUT"
HTTP_PORT=${HTTP_PORT:-18099}
printf '[http]\nenabled = true\nbind = "127.0.0.1:%s"\n[sys]\ninterval_s = 1\n' "$HTTP_PORT" >"$OUT/ops.toml"
SCRAPE='while :; do for u in metrics api/v1/node; do curl -s -o /dev/null -w "%{http_code} $u %{time_total}\n" "http://127.0.0.1:'"$HTTP_PORT"'/$u"; done; sleep 1; done'
PORT=${BENCH_PORT_BASE:-23883}
for r in $(seq "$ROUNDS"); do
  for v in before after after-ops; do
    PORT=$((PORT + 1))
    case $v in
      before) (ulimit -n 20000; exec "$BEFORE" --listen 127.0.0.1:$PORT --cores 2 >"$OUT/$v-$r.log" 2>&1) & ;;
      after) (ulimit -n 20000; exec "$AFTER" --listen 127.0.0.1:$PORT --cores 2 >"$OUT/$v-$r.log" 2>&1) & ;;
      after-ops) (ulimit -n 20000; exec "$AFTER" --config "$OUT/ops.toml" --listen 127.0.0.1:$PORT --cores 2 >"$OUT/$v-$r.log" 2>&1) & ;;
    esac
    pid=$!
    for _ in $(seq 100); do (exec 3<>/dev/tcp/127.0.0.1/$PORT) 2>/dev/null && break; sleep 0.1; done
    side=""
    if [ $v = after-ops ]; then timeout 120 bash -c "$SCRAPE" >"$OUT/$v-$r.scrape" 2>&1 & side=$!; fi
    timeout 200 "$BENCH" sub -c 15000 -t 'bench/%i' -d 30 --drain 0 --port $PORT --broker-pid $pid \
      --json --quiet >"$OUT/$v-$r.out" 2>"$OUT/$v-$r.err" || true
    if [ -n "$side" ]; then kill "$side" 2>/dev/null || true; wait "$side" 2>/dev/null || true; fi
    kill "$pid"; wait "$pid" 2>/dev/null || true
    echo "$r $v $(tail -1 "$OUT/$v-$r.out" | python3 -c 'import json,sys; j=json.load(sys.stdin); b=j["broker"]; print("cpu_s", b["cpu_s"], "hold_s", j.get("duration_s"), "B/conn", round(b["bytes_per_conn"]))')"
  done
done | tee "$OUT/summary.txt"
