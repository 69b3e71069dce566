#!/usr/bin/env bash
# Run the same coremq-bench scenarios against coremq and Mosquitto, in
# alternation (A B A B ...), on loopback, and write a results table.
#
# usage: scripts/bench-compare.sh [--rounds N] [--only mosquitto|coremq] [--cores "1 2"]
#                                [--scenarios "idle-15k emq2015-15k ..."] [--baseline BIN] [--out DIR]
# Scenario names are those of SCENARIOS below (idle-15k, conn-15k: idle
# connections with and without a subscription; emq2015-15k; fanout20k-q0/q1:
# 1,000 subscribers at 20K deliveries/s; fanout-q0/q1: saturated; ...).
# OUT/table.md has every run; OUT/ratios.md the median of each figure per
# scenario and broker over the rounds (delivered/s among them) and its ratio
# to Mosquitto's median (and rumqttd's, with --rumqttd).
#                                [--coremq-config FILE [--alongside CMD]]
# Brokers in each round: coremq with each --cores value (and, with --baseline,
# another coremq binary -- an older build -- at each --cores value right after
# it), then Mosquitto, so a scenario is measured on all of them back to back
# (A B C A B C ...). --scenarios keeps only the named scenarios. Each
# broker is started fresh for each scenario on its own loopback port and
# stopped by its PID afterwards (and waited for); its log is kept as
# OUT/SCENARIO-BROKER-ROUND.log, next to the tool's .out and .err. Every run
# is bounded (--duration, timeout). BENCH_PORT_BASE moves the ports (default 21883)
# when another run on the host uses them.
# --coremq-config FILE adds one more broker at each --cores value, right after
# the current coremq (and before --baseline's): the current coremq started with
# `--config FILE` (its --listen and --cores still come from here), named
# coremq-N-LABEL in the table, LABEL being FILE's name without .toml (ops.toml:
# coremq-2-ops). --alongside CMD runs CMD (bash -c, bounded by timeout 310)
# in the background during each run of that broker only, from the broker's
# start to the tool's end, then stops it by its PID; its output is kept as
# OUT/SCENARIO-BROKER-ROUND.alongside (e.g. a scraper of the broker's HTTP
# listener, whose address is the one FILE sets).
# --rumqttd BIN adds rumqttd (BIN: its binary, e.g. from `cargo install rumqttd
# --version 0.20.0 --root DIR`) after Mosquitto in each round, on a v4
# (MQTT 3.1.1) listener with a 20,000-connection limit and no accept delay;
# OUT/ratios.md then gives each figure's ratio to rumqttd's median too.
set -euo pipefail
cd "$(dirname "$0")/.."
ROUNDS=1 ONLY="" CORES="1 2" OUT="bench-results/$(date +%Y%m%d-%H%M%S)" PICK="" BASELINE="" CONFIG="" ALONGSIDE="" RUMQTTD=""
while [ $# -gt 0 ]; do
  case "$1" in
    --rounds) ROUNDS=$2; shift 2;;
    --only) ONLY=$2; shift 2;;
    --cores) CORES=$2; shift 2;;
    --scenarios) PICK=$2; shift 2;;
    --baseline) BASELINE=$2; shift 2;;
    --coremq-config) CONFIG=$2; shift 2;;
    --alongside) ALONGSIDE=$2; shift 2;;
    --rumqttd) RUMQTTD=$2; shift 2;;
    --out) OUT=$2; shift 2;;
    *) echo "unknown option $1" >&2; exit 2;;
  esac
done
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-target}
mkdir -p "$OUT"
BENCH=$CARGO_TARGET_DIR/release/coremq-bench
COREMQ=$CARGO_TARGET_DIR/release/coremq
cargo build --release --workspace --bins >&2
if [ "$ONLY" != mosquitto ] && ! "$COREMQ" --help >/dev/null 2>&1; then
  echo "coremq does not run here: measuring Mosquitto only" >&2; ONLY=mosquitto
fi
MOSQ=/usr/sbin/mosquitto
if [ "$ONLY" != coremq ] && [ ! -x $MOSQ ]; then
  echo "installing Debian's mosquitto" >&2
  apt-get install -y mosquitto >&2
fi

# name | coremq-bench arguments
SCENARIOS=(
  "idle-5k|sub -c 5000 -t bench/%i -d 5 --drain 0"
  "idle-15k|sub -c 15000 -t bench/%i -d 5 --drain 0"
  "emq2015-15k|scenario emq2015 -c 15000 --topics 3000 -r 4000 -q 1 -d 30"
  "fanout-q0|scenario fanout -c 100 -q 0 -d 10"
  "fanout-q1|scenario fanout -c 100 -q 1 -d 10"
  "fanout20k-q0|scenario fanout -c 1000 -r 20 -q 0 -d 20"
  "fanout20k-q1|scenario fanout -c 1000 -r 20 -q 1 -d 20"
  "conn-15k|conn -c 15000 -d 5"
  "fanin-q0|scenario fanin -c 100 -q 0 -d 10"
  "fanin-q1|scenario fanin -c 100 -q 1 -d 10"
  "p2p-q1|scenario p2p -c 1000 -r 10000 -q 1 -d 10"
)

if [ -n "$PICK" ]; then
  kept=()
  for s in "${SCENARIOS[@]}"; do
    case " $PICK " in *" ${s%%|*} "*) kept+=("$s");; esac
  done
  SCENARIOS=("${kept[@]}")
fi
if [ -n "$BASELINE" ] && [ ! -x "$BASELINE" ]; then echo "--baseline $BASELINE is not an executable" >&2; exit 2; fi
if [ -n "$CONFIG" ] && [ ! -r "$CONFIG" ]; then echo "--coremq-config $CONFIG is not readable" >&2; exit 2; fi
if [ -n "$ALONGSIDE" ] && [ -z "$CONFIG" ]; then echo "--alongside needs --coremq-config" >&2; exit 2; fi
if [ -n "$RUMQTTD" ] && [ ! -x "$RUMQTTD" ]; then echo "--rumqttd $RUMQTTD is not an executable" >&2; exit 2; fi
LABEL=$(basename "${CONFIG%.toml}")

# $1 = mosquitto|coremq-N|coremq-N-LABEL|baseline-N (N shards), $2 = port, $3 = log file.
# Sets BROKER_PID (started from this shell, so that `wait` can reap it).
start_broker() {
  case "$1" in
    mosquitto)
      printf 'listener %s 127.0.0.1\nallow_anonymous true\nmax_connections -1\nset_tcp_nodelay true\n' "$2" > "$OUT/mosquitto.conf"
      (ulimit -n 20000; exec $MOSQ -c "$OUT/mosquitto.conf" >"$3" 2>&1) &;;
    rumqttd)
      printf 'id = 0\n[router]\nid = 0\nmax_connections = 20000\nmax_outgoing_packet_count = 200\nmax_segment_size = 104857600\nmax_segment_count = 10\n[v4.1]\nname = "v4-1"\nlisten = "127.0.0.1:%s"\nnext_connection_delay_ms = 0\n[v4.1.connections]\nconnection_timeout_ms = 60000\nmax_payload_size = 20480\nmax_inflight_count = 100\ndynamic_filters = true\n' "$2" > "$OUT/rumqttd.toml"
      (ulimit -n 20000; exec "$RUMQTTD" --config "$OUT/rumqttd.toml" >"$3" 2>&1) &;;
    baseline-*)
      (ulimit -n 20000; exec "$BASELINE" --listen "127.0.0.1:$2" --cores "${1#baseline-}" >"$3" 2>&1) &;;
    coremq-*-"$LABEL")
      n=${1#coremq-}; n=${n%-"$LABEL"}
      (ulimit -n 20000; exec "$COREMQ" --config "$CONFIG" --listen "127.0.0.1:$2" --cores "$n" >"$3" 2>&1) &;;
    *)
      (ulimit -n 20000; exec "$COREMQ" --listen "127.0.0.1:$2" --cores "${1#coremq-}" >"$3" 2>&1) &;;
  esac
  BROKER_PID=$!
}

wait_port() { for _ in $(seq 100); do (exec 3<>/dev/tcp/127.0.0.1/"$1") 2>/dev/null && return 0; sleep 0.1; done; return 1; }

BROKERS=()
if [ "$ONLY" != mosquitto ]; then
  for c in $CORES; do
    BROKERS+=("coremq-$c")
    if [ -n "$CONFIG" ]; then BROKERS+=("coremq-$c-$LABEL"); fi
    if [ -n "$BASELINE" ]; then BROKERS+=("baseline-$c"); fi
  done
fi
if [ "$ONLY" != coremq ]; then BROKERS+=(mosquitto); fi
if [ -n "$RUMQTTD" ]; then BROKERS+=(rumqttd); fi
printf '| round | scenario | broker | connected | delivered/s | lost | dup | p50 ms | p99 ms | broker B/conn | broker CPU-us/conn | broker CPU-s/M |\n|---|---|---|---|---|---|---|---|---|---|---|---|\n' > "$OUT/table.md"
: > "$OUT/runs.jsonl"
PORT=${BENCH_PORT_BASE:-21883}  # each broker takes the next port
for r in $(seq "$ROUNDS"); do
  for s in "${SCENARIOS[@]}"; do
    name=${s%%|*}; args=${s#*|}
    for b in "${BROKERS[@]}"; do
      PORT=$((PORT + 1))
      start_broker "$b" $PORT "$OUT/$name-$b-$r.log"
      pid=$BROKER_PID
      wait_port $PORT || { echo "$b did not start" >&2; kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; continue; }
      side=""
      if [ -n "$ALONGSIDE" ] && [ "$b" != "${b%-"$LABEL"}" ]; then
        timeout 310 bash -c "$ALONGSIDE" >"$OUT/$name-$b-$r.alongside" 2>&1 &
        side=$!
      fi
      # shellcheck disable=SC2086
      timeout 300 "$BENCH" $args --port $PORT --broker-pid "$pid" --json --quiet \
        >"$OUT/$name-$b-$r.out" 2>"$OUT/$name-$b-$r.err" || true
      if [ -n "$side" ]; then kill "$side" 2>/dev/null || true; wait "$side" 2>/dev/null || true; fi
      kill "$pid"; wait "$pid" 2>/dev/null || true
      j=$(tail -1 "$OUT/$name-$b-$r.out")
      python3 - "$r" "$name" "$b" "$j" "$OUT/runs.jsonl" >> "$OUT/table.md" <<'PY'
import json, sys
r, n, b, line, runs = sys.argv[1:6]
try:
    j = json.loads(line)
except Exception:
    print(f"| {r} | {n} | {b} | run failed | | | | | | | | |"); sys.exit()
with open(runs, "a") as out:
    out.write(json.dumps({"round": r, "scenario": n, "broker": b, "result": j}) + "\n")
l, br = j["latency_ms"], j.get("broker") or {}
f = lambda v, d=0: "-" if v is None else f"{v:.{d}f}"
j["lost"] = "-" if j["lost"] is None else j["lost"]
print(f"| {r} | {n} | {b} | {j['connected']} | {f(j['delivered_per_s'])} | {j['lost']} | {j['duplicates']} "
      f"| {f(l['p50'],2) if l['count'] else '-'} | {f(l['p99'],2) if l['count'] else '-'} "
      f"| {f(br.get('bytes_per_conn'))} | {f(br.get('cpu_us_per_conn'))} | {f(br.get('cpu_s_per_million_deliveries'),2)} |")
PY
    done
  done
done
cat "$OUT/table.md"
# Medians over the rounds, and each broker's ratio to Mosquitto's median.
python3 - "$OUT/runs.jsonl" > "$OUT/ratios.md" <<'PY'
import json, statistics, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
figs = [("B/conn", lambda j: (j.get("broker") or {}).get("bytes_per_conn")),
        ("CPU-us/conn", lambda j: (j.get("broker") or {}).get("cpu_us_per_conn")),
        ("CPU-s/M", lambda j: (j.get("broker") or {}).get("cpu_s_per_million_deliveries")),
        ("p99 ms", lambda j: j["latency_ms"]["p99"] if j["latency_ms"]["count"] else None),
        ("delivered/s", lambda j: j.get("delivered_per_s") or None)]
med = {}
for row in rows:
    for name, get in figs:
        v = get(row["result"])
        if v is not None:
            med.setdefault((row["scenario"], row["broker"], name), []).append(v)
def ratio(m, s, other, name):
    base = med.get((s, other, name))
    return f"{m / statistics.median(base):.2f}" if base and statistics.median(base) else "-"
print("| scenario | broker | figure | runs | median | × Mosquitto | × rumqttd |\n|---|---|---|---|---|---|---|")
for (s, b, name), vs in sorted(med.items()):
    m = statistics.median(vs)
    print(f"| {s} | {b} | {name} | {len(vs)} | {m:.2f} | {ratio(m, s, 'mosquitto', name)} | {ratio(m, s, 'rumqttd', name)} |")
PY
cat "$OUT/ratios.md"
