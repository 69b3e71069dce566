#!/usr/bin/env bash
# Measure coremq over each transport -- plain TCP, TLS, WebSocket, WebSocket
# over TLS -- with the bundled load tool, in alternation (tcp tls ws wss tcp
# ...), and print a table of medians: connects per second (full handshakes:
# the tool turns TLS session resumption off), broker memory per idle
# connection, and fan-out throughput with the broker's CPU per million
# deliveries at QoS 0 and 1.
#
# usage: scripts/bench-transports.sh [--rounds N] [--cores N] [--out DIR]
#                                   [--scenarios "connect idle fanout-q0 fanout-q1"]
# A fresh release broker per measurement, on 127.0.0.1 ports from
# BENCH_PORT_BASE (default 24883), stopped by its PID afterwards. The test
# certificate (ECDSA P-256 for localhost and 127.0.0.1) is made with openssl
# in OUT. Every run is bounded (--duration and timeout).
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=scripts/bench-lib.sh
. scripts/bench-lib.sh
ROUNDS=2 CORES=2 OUT="bench-results/transports-$(date +%Y%m%d-%H%M%S)" PICK=""
while [ $# -gt 0 ]; do
  case "$1" in
    --rounds) ROUNDS=$2; shift 2;;
    --cores) CORES=$2; shift 2;;
    --out) OUT=$2; shift 2;;
    --scenarios) PICK=$2; shift 2;;
    *) echo "unknown option $1" >&2; exit 2;;
  esac
done
bench_build
OUT=$(bench_out "$OUT")
BASE=${BENCH_PORT_BASE:-24883}

# A CA and a server certificate signed by it.
(
  cd "$OUT"
  openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 30 \
    -subj /CN=bench-ca -keyout ca.key -out ca.pem 2>/dev/null
  openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj /CN=localhost \
    -keyout server.key -out server.csr 2>/dev/null
  printf 'subjectAltName=DNS:localhost,IP:127.0.0.1\n' > san.ext
  openssl x509 -req -in server.csr -CA ca.pem -CAkey ca.key -CAcreateserial -days 30 \
    -extfile san.ext -out server.pem 2>/dev/null
)
tls="[listener.tls]
cert_file = \"$OUT/server.pem\"
key_file = \"$OUT/server.key\""
cat > "$OUT/coremq.toml" <<TOML
[runtime]
cores = $CORES
[[listener]]
bind = "127.0.0.1:$BASE"
[[listener]]
kind = "tls"
bind = "127.0.0.1:$((BASE + 1))"
$tls
[[listener]]
kind = "ws"
bind = "127.0.0.1:$((BASE + 2))"
[[listener]]
kind = "wss"
bind = "127.0.0.1:$((BASE + 3))"
$tls
TOML

declare -A PORT=([tcp]=$BASE [tls]=$((BASE + 1)) [ws]=$((BASE + 2)) [wss]=$((BASE + 3)))
declare -A FLAGS=([tcp]="" [tls]="--tls --cafile $OUT/ca.pem" [ws]="--ws"
                  [wss]="--tls --cafile $OUT/ca.pem --ws")
# name | coremq-bench arguments
SCENARIOS=(
  "connect|conn -c 2000 -R 4000 -d 1 --drain 0"
  "idle|sub -c 5000 -t bench/%i -d 5 --drain 0"
  "fanout-q0|scenario fanout -c 100 -q 0 -d 10"
  "fanout-q1|scenario fanout -c 100 -q 1 -d 10"
)

if [ -n "$PICK" ]; then
  kept=()
  for s in "${SCENARIOS[@]}"; do
    case " $PICK " in *" ${s%%|*} "*) kept+=("$s");; esac
  done
  SCENARIOS=("${kept[@]}")
fi

run_one() { # scenario-name args transport round
  local name=$1 args=$2 t=$3 r=$4 log="$OUT/$1-$3-$4"
  broker_start "$OUT/coremq.toml" "$log.broker.log" "listener 3:"
  # shellcheck disable=SC2086 # words
  timeout 120 "$BENCH" $args --port "${PORT[$t]}" ${FLAGS[$t]} --broker-pid "$BROKER_PID" \
    --json --quiet >"$log.json" 2>"$log.err" || echo "  $name $t round $r: tool failed" >&2
  broker_stop
}

for r in $(seq "$ROUNDS"); do
  for s in "${SCENARIOS[@]}"; do
    for t in tcp tls ws wss; do
      echo "round $r: ${s%%|*} over $t" >&2
      run_one "${s%%|*}" "${s#*|}" "$t" "$r"
    done
  done
done

python3 - "$OUT" <<'PY'
import json, statistics, sys, glob, os
out = sys.argv[1]
def values(name, t, key):
    vals = []
    for f in sorted(glob.glob(f"{out}/{name}-{t}-*.json")):
        line = open(f).read().strip().splitlines()
        if not line:
            continue
        j = json.loads(line[-1])
        v = j.get("broker", {}).get(key) if key in ("bytes_per_conn", "cpu_s_per_million_deliveries") else j.get(key)
        if key in ("lost", "duplicates"):
            v = j.get(key) or 0
        if v is not None:
            vals.append(v)
    return vals
def med(vals, fmt):
    return fmt.format(statistics.median(vals)) + f" ({len(vals)})" if vals else "-"
print("| transport | connects/s | broker B per idle conn | fan-out q0 delivered/s | q0 CPU-s/M | fan-out q1 delivered/s | q1 CPU-s/M | q0 lost | q1 dropped by queue policy | duplicates |")
print("|---|---|---|---|---|---|---|---|---|---|")
for t in ["tcp", "tls", "ws", "wss"]:
    lost = sum(values("fanout-q0", t, "lost"))
    dropped = sum(values("fanout-q1", t, "lost"))
    dups = sum(values("fanout-q0", t, "duplicates") + values("fanout-q1", t, "duplicates"))
    print(f"| {t} | {med(values('connect', t, 'connects_per_s'), '{:,.0f}')} "
          f"| {med(values('idle', t, 'bytes_per_conn'), '{:,.0f}')} "
          f"| {med(values('fanout-q0', t, 'delivered_per_s'), '{:,.0f}')} "
          f"| {med(values('fanout-q0', t, 'cpu_s_per_million_deliveries'), '{:.2f}')} "
          f"| {med(values('fanout-q1', t, 'delivered_per_s'), '{:,.0f}')} "
          f"| {med(values('fanout-q1', t, 'cpu_s_per_million_deliveries'), '{:.2f}')} "
          f"| {lost} | {dropped:,} | {dups} |")
print(f"\n(median of the rounds; the count of runs in brackets; raw JSON in {out})")
PY
