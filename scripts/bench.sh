#!/usr/bin/env bash
# Reruns every benchmark scenario against blindrelay and against the floor relay (same
# socketioxide, no checks, no state), on loopback, and prints their figures side by side.
# Results (one JSON line per scenario) go to target/bench/<server>.jsonl.
#
#   bash scripts/bench.sh            # every scenario
#   SCENARIO=pairs bash scripts/bench.sh
set -euo pipefail
cd "$(dirname "$0")/.."

scenario="${SCENARIO:-all}"
cargo build --release --locked --bin blindrelay
cargo build --release --locked --features bench --bin bench-floor --bin blindrelay-bench
mkdir -p target/bench
ulimit -n "$(ulimit -Hn)"

run_against() { # name port "bench flags" command...
  local name=$1 port=$2 flags=$3
  shift 3
  "$@" >"target/bench/$name.log" 2>&1 &
  local pid=$!
  for _ in $(seq 100); do
    (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && break
    sleep 0.05
  done
  echo "== $name (pid $pid)" >&2
  target/release/blindrelay-bench --url "http://127.0.0.1:$port" --scenario "$scenario" \
    --server-pid "$pid" $flags | tee "target/bench/$name.jsonl"
  kill -TERM "$pid"
  wait "$pid" || true
}

# Every client of the bench shares one address and sends as fast as it can: the abuse
# limits (SECURITY.md) would measure themselves, so they are off here.
run_against blindrelay 3301 "" env PORT=3301 HOST=127.0.0.1 RUST_LOG=warn \
  MAX_GROUP_MEMBERS=1000 SOCKET_EVENTS_PER_SEC=0 SOCKET_BYTES_PER_SEC=0 \
  IP_CONNECTS_PER_SEC=0 IP_RESERVES_PER_SEC=0 IP_JOIN_FAILURES_PER_MIN=0 \
  MAX_CONNECTIONS=0 MAX_CONNECTIONS_PER_IP=0 target/release/blindrelay
# The floor sends no acks.
run_against floor 3302 "--acks false" target/release/bench-floor 3302
