#!/usr/bin/env bash
# Measure what durability costs, with the bundled load tool and a fresh
# release broker (and a fresh storage directory) per run:
#
#  emq2015   the seeds' shape with persistent sessions at QoS 1 -- C clients,
#            C/5 topics, 4K msgs/s in, 20K/s out -- for storage off and
#            fsync = always | interval | never, in alternation, ROUNDS times:
#            delivered/s, latency p99, broker CPU-s per million deliveries,
#            fdatasyncs and log bytes written.
#  clean     the same shape with clean sessions, storage off against
#            fsync = always: what storage costs when nothing is durable.
#  start     start time with 100K retained messages and 100K offline
#            persistent sessions (made over real sockets in batches under
#            the fd limit), and the broker's RSS after the start.
#  bytes     disk bytes per stored message: 1,000 offline sessions with
#            10 QoS 1 messages (64 B payload) queued each, as the log holds
#            them after a restart (one snapshot segment per shard).
#  amplif    write amplification of online compaction: bytes the writer
#            wrote (events and snapshots) against the live state left.
#
# usage: scripts/bench-storage.sh [--rounds N] [--cores N] [--clients C]
#                                 [--parts "emq2015 clean start bytes amplif"] [--out DIR]
# Ports from BENCH_PORT_BASE (default 25883); brokers stopped by PID; every
# run bounded by its duration and `timeout`.
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=scripts/bench-lib.sh
. scripts/bench-lib.sh
ROUNDS=2 CORES=2 CLIENTS=5000 PARTS="emq2015 clean start bytes amplif"
OUT="bench-results/storage-$(date +%Y%m%d-%H%M%S)"
while [ $# -gt 0 ]; do
  case "$1" in
    --rounds) ROUNDS=$2; shift 2;;
    --cores) CORES=$2; shift 2;;
    --clients) CLIENTS=$2; shift 2;;
    --parts) PARTS=$2; shift 2;;
    --out) OUT=$2; shift 2;;
    *) echo "unknown option $1" >&2; exit 2;;
  esac
done
bench_build
OUT=$(bench_out "$OUT")
PORT=${BENCH_PORT_BASE:-25883}

# Config for policy $1 (off|always|interval|never) with data dir $2, extra TOML $3.
config() {
  local f="$OUT/$1.toml" enabled=true fsync=$1
  [ "$1" = off ] && { enabled=false; fsync=always; }
  cat >"$f" <<TOML
[runtime]
cores = $CORES
[listener]
bind = "127.0.0.1:$PORT"
[session]
max_mqueue_len = 100000
[storage]
enabled = $enabled
dir = "$2"
fsync = "$fsync"
${3:-}
TOML
  echo "$f"
}

has() { case " $PARTS " in *" $1 "*) return 0;; esac; return 1; }

# One emq2015 run: part name (emq2015|clean), policy, round, extra tool flags.
emq_run() {
  local part=$1 p=$2 r=$3 extra=$4
  local d="$OUT/data-$part-$p-$r" log="$OUT/$part-$p-$r" cfg
  rm -rf "$d"
  cfg=$(config "$p" "$d")
  echo "round $r: emq2015 $part QoS 1, storage $p" >&2
  broker_start "$cfg" "$log.broker.log" "listener 0:"
  # shellcheck disable=SC2086 # extra is words
  timeout 300 "$BENCH" scenario emq2015 -c "$CLIENTS" --topics $((CLIENTS / 5)) -r 4000 -q 1 \
    -d 20 $extra --port "$PORT" --broker-pid "$BROKER_PID" --json --quiet \
    >"$log.json" 2>"$log.err" || echo "  tool failed (see $log.err)" >&2
  broker_stop
  rm -rf "$d"
}

for r in $(seq "$ROUNDS"); do
  if has emq2015; then
    for p in off always interval never; do emq_run emq2015 "$p" "$r" --persistent; done
  fi
  if has clean; then
    for p in off always; do emq_run clean "$p" "$r" ""; done
  fi
done

# Persistent sessions (each subscribed to its own topic) and retained
# messages, 100K of each, in batches of 19,000 clients (the fd limit).
fill() { # data dir
  local n=0 b=0
  while [ $n -lt 100000 ]; do
    local c=$(( 100000 - n < 19000 ? 100000 - n : 19000 ))
    timeout 120 "$BENCH" sub -c "$c" -t "s/$b/%i" -q 1 --persistent --prefix "s$b" -R 5000 \
      -d 1 --drain 0 --workers 2 --port "$PORT" --quiet >/dev/null 2>&1 || true
    timeout 120 "$BENCH" pub -c "$c" -t "r/$b/%i" -q 1 --retain --prefix "r$b" -R 5000 \
      -r "$c" -d 1 --drain 0 --workers 2 --port "$PORT" --quiet >/dev/null 2>&1 || true
    n=$(( n + c )); b=$(( b + 1 ))
  done
}

if has start; then
  d="$OUT/data-start"; rm -rf "$d"
  cfg=$(config always "$d")
  echo "start: making 100K persistent sessions and 100K retained messages" >&2
  broker_start "$cfg" "$OUT/start-fill.log" "listener 0:"
  fill "$d"
  broker_stop
  for r in $(seq "$ROUNDS"); do
    log="$OUT/start-$r.log"
    t0=$(date +%s%N)
    broker_start "$cfg" "$log" "listener 0:"
    t1=$(date +%s%N)
    rss=$(awk '/VmRSS/ {print $2}' "/proc/$BROKER_PID/status")
    broker_stop
    echo "$(( (t1 - t0) / 1000000 )) $rss $(du -sb "$d" | cut -f1)" >"$OUT/start-$r.txt"
  done
  grep -h "replayed" "$OUT"/start-[0-9]*.log | sed 's/^.*storage:/storage:/' >"$OUT/start-replay.txt"
  rm -rf "$d"
fi

if has bytes; then
  d="$OUT/data-bytes"; rm -rf "$d"
  cfg=$(config always "$d")
  broker_start "$cfg" "$OUT/bytes-1.log" "listener 0:"
  timeout 120 "$BENCH" sub -c 1000 -t "q/%i" -q 1 --persistent --prefix q -d 1 --drain 0 \
    --port "$PORT" --quiet >/dev/null 2>&1 || true
  timeout 120 "$BENCH" pub -c 1000 -t "q/%i" -q 1 -s 64 -I 100 -d 1 --drain 0 --prefix p \
    --port "$PORT" --quiet >/dev/null 2>&1 || true
  broker_stop
  broker_start "$cfg" "$OUT/bytes-2.log" "listener 0:"
  broker_stop
  "$COREMQ" storage inspect "$d" --json >"$OUT/bytes-inspect.json"
  rm -rf "$d"
fi

if has amplif; then
  d="$OUT/data-amplif"; rm -rf "$d"
  cfg=$(config always "$d" "segment_bytes = 1048576
compact_min_bytes = 4194304")
  broker_start "$cfg" "$OUT/amplif.log" "listener 0:"
  timeout 300 "$BENCH" scenario emq2015 -c 2000 --topics 400 -r 4000 -q 1 -d 20 --persistent \
    --port "$PORT" --quiet >/dev/null 2>&1 || true
  broker_stop
  echo "$(du -sb "$d" | cut -f1)" >"$OUT/amplif.disk"
  rm -rf "$d"
fi

python3 - "$OUT" "$ROUNDS" <<'PY'
import glob, json, os, re, statistics, sys
out, rounds = sys.argv[1], int(sys.argv[2])
def last_json(f):
    try:
        lines = open(f).read().strip().splitlines()
        return json.loads(lines[-1]) if lines else None
    except (OSError, ValueError):
        return None
def counter(log, name):
    try:
        m = re.findall(name + r"=(\d+)", open(log).read())
        return int(m[-1]) if m else 0
    except OSError:
        return 0
def med(v, fmt):
    return (fmt.format(statistics.median(v)) + f" ({len(v)})") if v else "-"
for part, policies in [("emq2015", ["off", "always", "interval", "never"]), ("clean", ["off", "always"])]:
    if not glob.glob(f"{out}/{part}-*.json"):
        continue
    print(f"\n{part}: sessions {'persistent' if part == 'emq2015' else 'clean'}, QoS 1")
    print("| storage | delivered/s | p99 ms | broker CPU-s per M deliveries | fdatasyncs/s | log MB written | lost | duplicates |")
    print("|---|---|---|---|---|---|---|---|")
    for p in policies:
        rate, p99, cpu, syncs, mb, lost, dups = [], [], [], [], [], 0, 0
        for f in sorted(glob.glob(f"{out}/{part}-{p}-*.json")):
            j = last_json(f)
            if not j:
                continue
            rate.append(j.get("delivered_per_s") or 0)
            p99.append((j.get("latency_ms") or {}).get("p99") or 0)
            c = (j.get("broker") or {}).get("cpu_s_per_million_deliveries")
            if c is not None:
                cpu.append(c)
            lost += j.get("lost") or 0
            dups += j.get("duplicates") or 0
            log = f[:-5] + ".broker.log"
            dur = j.get("duration_s") or 20
            syncs.append(counter(log, "storage_syncs") / dur)
            mb.append(counter(log, "storage_bytes_written") / 1e6)
        print(f"| {p} | {med(rate, '{:,.0f}')} | {med(p99, '{:.1f}')} | {med(cpu, '{:.1f}')} "
              f"| {med(syncs, '{:,.0f}')} | {med(mb, '{:.1f}')} | {lost} | {dups} |")
starts = sorted(glob.glob(f"{out}/start-[0-9]*.txt"))
if starts:
    print("\n| start with 100K sessions + 100K retained | ms to listening | RSS MB after start | log MB on disk |")
    print("|---|---|---|---|")
    for f in starts:
        ms, rss, disk = open(f).read().split()
        print(f"| {os.path.basename(f)[:-4]} | {int(ms):,} | {int(rss)/1024:.0f} | {int(disk)/1e6:.1f} |")
    if os.path.exists(f"{out}/start-replay.txt"):
        print("\n" + open(f"{out}/start-replay.txt").read())
if os.path.exists(f"{out}/bytes-inspect.json"):
    j = json.load(open(f"{out}/bytes-inspect.json"))
    q = sum(s["queued"] + s["inflight"] for s in j["sessions"])
    b = sum(s["bytes"] for s in j["segments"])
    print(f"\nstored messages: {q:,} queued in {len(j['sessions']):,} sessions; log {b:,} bytes; "
          f"{b / max(q, 1):.0f} bytes per stored message (64 B payload, sessions and subscriptions included)")
if os.path.exists(f"{out}/amplif.log"):
    log = f"{out}/amplif.log"
    w = counter(log, "storage_bytes_written")
    snap = counter(log, "storage_compaction_bytes")
    n = counter(log, "storage_compactions")
    disk = int(open(f"{out}/amplif.disk").read().split()[0])
    print(f"\ncompaction: {n} online compactions; writer wrote {w/1e6:.1f} MB, of which snapshots "
          f"{snap/1e6:.1f} MB ({100*snap/max(w,1):.1f} %): write amplification {w/max(w-snap,1):.2f}x "
          f"over the events alone; {disk/1e6:.2f} MB left on disk after the stop")
print(f"\n(raw files in {out})")
PY
