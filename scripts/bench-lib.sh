# Shared by scripts/bench-transports.sh and scripts/bench-logins.sh (sourced,
# not run): the release build, the output folder, and one broker started
# and stopped by its PID.

# Build the broker and the load tool (release); set COREMQ and BENCH.
bench_build() {
  export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-target}
  BENCH=$CARGO_TARGET_DIR/release/coremq-bench
  COREMQ=$CARGO_TARGET_DIR/release/coremq
  cargo build --release --workspace --bins >&2
}

# Create folder $1 and print its absolute path.
bench_out() {
  mkdir -p "$1"
  (cd "$1" && pwd)
}

# Start coremq with config $1, its log in $2, and wait (at most 10 s) for
# a log line containing $3 -- the last listener's start line, so that every
# listener is bound. Sets BROKER_PID.
broker_start() {
  RUST_LOG=info "$COREMQ" --config "$1" 2>"$2" &
  BROKER_PID=$!
  for _ in $(seq 100); do
    grep -q "$3" "$2" && return 0
    sleep 0.1
  done
  echo "  broker did not log '$3' within 10 s (see $2)" >&2
}

# Stop the broker broker_start started, by its PID, and wait for it.
broker_stop() {
  kill -TERM "$BROKER_PID" 2>/dev/null || true
  wait "$BROKER_PID" 2>/dev/null || true
}
