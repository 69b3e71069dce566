#!/usr/bin/env bash
# Where a delivery's CPU goes: run a broker under `perf record -e cpu-clock -g`
# while coremq-bench drives the emq2015 shape at 15K connections, count the
# broker's context switches per second over 10 s of the publish phase, and
# sort every perf sample into a category by its stack (the first category,
# in the order below, one of its frames matches). Prints the bench summary,
# the context switches and the category table (also OUT/categories.md).
# BENCHMARKS.md's issue-12 profile and wake counts come from this script.
#
# usage: scripts/profile-emq2015.sh [--mosquitto] [--cores N] [--config FILE] [--out DIR]
# The broker is launched under perf (attaching with -p records nothing on
# these VMs) on loopback port ${PROFILE_PORT:-24883} and stopped by its PID.
set -euo pipefail
cd "$(dirname "$0")/.."
MOSQ="" CORES=2 CONFIG="" OUT="bench-results/profile-$(date +%Y%m%d-%H%M%S)"
while [ $# -gt 0 ]; do
  case "$1" in
    --mosquitto) MOSQ=1; shift;;
    --cores) CORES=$2; shift 2;;
    --config) CONFIG=$2; shift 2;;
    --out) OUT=$2; shift 2;;
    *) echo "unknown option $1" >&2; exit 2;;
  esac
done
command -v perf >/dev/null || { echo "perf is not installed" >&2; exit 2; }
mkdir -p "$OUT"
PORT=${PROFILE_PORT:-24883}
cargo build --release --workspace --bins >&2
if [ -n "$MOSQ" ]; then
  printf 'listener %s 127.0.0.1\nallow_anonymous true\nmax_connections -1\nset_tcp_nodelay true\n' "$PORT" > "$OUT/mosquitto.conf"
  BROKER=(/usr/sbin/mosquitto -c "$OUT/mosquitto.conf")
else
  BROKER=(target/release/coremq --listen "127.0.0.1:$PORT" --cores "$CORES")
  if [ -n "$CONFIG" ]; then BROKER+=(--config "$CONFIG"); fi
fi
(ulimit -n 20000; exec perf record -q -e cpu-clock -g -o "$OUT/perf.data" -- "${BROKER[@]}" >"$OUT/broker.log" 2>&1) &
PERF=$!
sleep 2
PID=$(pgrep -P "$PERF" | head -1)
switches() { cat /proc/"$PID"/task/*/status 2>/dev/null | awk '/_ctxt_switches/ {s += $2} END {print s + 0}'; }
timeout 200 target/release/coremq-bench scenario emq2015 -c 15000 --topics 3000 -r 4000 -q 1 -d 25 \
  --port "$PORT" --broker-pid "$PID" >"$OUT/bench.txt" 2>&1 &
BENCH=$!
for _ in $(seq 240); do grep -q "in=[1-9]" "$OUT/bench.txt" 2>/dev/null && break; sleep 0.5; done
a=$(switches); sleep 10; b=$(switches)
wait "$BENCH" || true
kill "$PID"; wait "$PERF" || true
tail -6 "$OUT/bench.txt"
echo "broker context switches: $(( (b - a) / 10 ))/s over 10 s of publishing"
perf script -i "$OUT/perf.data" -F ip,sym 2>/dev/null | python3 -c '
import re, sys
rules = [
 ("membarrier IPI (glommio, before each sleep)", r"membarrier"),
 ("cross-shard wake (eventfd write)", r"eventfd_write|eventfd_signal"),
 ("TCP send (incl. loopback delivery to the peer)", r"__sys_sendto|tcp_sendmsg|sock_sendmsg"),
 ("TCP receive", r"__sys_recvfrom|tcp_recvmsg"),
 ("accept / close / socket options", r"__sys_accept|do_accept|__x64_sys_close|__fput|tcp_close|setsockopt"),
 ("epoll (epoll_wait, its sleep included; epoll_ctl)", r"do_epoll_wait|ep_poll|epoll_ctl|ep_insert"),
 ("executor sleep and wake (io_uring wait, scheduler)", r"io_cqring_wait|__schedule|finish_task_switch"),
 ("io_uring submission and completion", r"io_uring_enter|io_submit_sqes|io_uring_submit|tctx_task_work|io_handle_tw"),
 ("timer interrupts, softirq outside a syscall", r"irq_exit|sysvec_|hrtimer_interrupt"),
 ("clock_gettime (vdso)", r"clock_gettime"),
 ("malloc/free/memcpy (libc)", r"^(malloc|free|cfree|realloc|_int_malloc|_int_free|__memmove|__memcpy|memcpy|memmove|__libc_malloc|__libc_free|__memset)"),
 ("glommio task queue and reactor (user space)", r"glommio::"),
 ("the broker own code", r"coremq::|mosquitto|^mux__|^loop__|^db__|^packet__|^handle__|^send__|^sub__|^net__|^context__"),
]
rules = [(n, re.compile(r)) for n, r in rules]
counts, total, stack = {}, 0, []
def flush():
    global total
    if not stack: return
    total += 1
    name = next((n for n, rx in rules if any(rx.search(f) for f in stack)), "other")
    counts[name] = counts.get(name, 0) + 1
for line in sys.stdin:
    parts = line.strip().split(None, 1)
    if not parts: flush(); stack.clear(); continue
    if len(parts) == 2: stack.append(re.sub(r"\+0x[0-9a-f]+$", "", parts[1]))
flush()
print("| category | share of broker CPU |\n|---|---|")
for n, c in sorted(counts.items(), key=lambda x: -x[1]):
    print(f"| {n} | {100 * c / max(total, 1):.1f} % |")
print(f"| (samples) | {total} |")
' | tee "$OUT/categories.md"
