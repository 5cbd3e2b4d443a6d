#!/usr/bin/env bash
# Reruns every benchmark: each scenario against one blindrelay node (in memory), against
# the floor relay (same socketioxide, no checks, no state), against the Node.js peer
# (bench/node-peer: socket.io 4 with the original server's room semantics), and against
# two blindrelay nodes sharing rooms through a private redis-server; then the criterion
# micro-benchmarks. All on loopback. Results (one JSON line per scenario) go to
# target/bench/<server>.jsonl: blindrelay.jsonl, floor.jsonl, node.jsonl,
# redis-2node.jsonl; a side-by-side summary of this run to stderr and
# target/bench/summary.txt.
#
#   bash scripts/bench.sh                      # everything: per server, every scenario but
#                                              # idle (pairs at saturation, 2,000 and
#                                              # 1,000 msg/s), then idle on a fresh process
#                                              # (IDLE_CONNECTIONS=10000 held IDLE_HOLD=60 s;
#                                              # not for the Redis pair)
#   SCENARIO=pairs bash scripts/bench.sh       # one scenario (pairs, fanout, idle, churn,
#                                              # groupfill), on every server
#   SERVERS="memory node" bash scripts/bench.sh    # a subset of: memory floor node redis
#   MICRO=0 bash scripts/bench.sh              # without the criterion run
#   BENCH_FLAGS="--connections 10000" SCENARIO=idle bash scripts/bench.sh
set -euo pipefail
cd "$(dirname "$0")/.."

scenario="${SCENARIO:-all}"
# Extra generator flags for every server (e.g. BENCH_FLAGS="--connections 10000").
extra="${BENCH_FLAGS:-}"
# A failed scenario (exit 1 from the generator) does not stop the other servers.
status=0
servers="${SERVERS:-memory floor node redis}"
micro="${MICRO:-1}"
export CARGO_BUILD_JOBS="${CARGO_BUILD_JOBS:-1}"

if [[ " $servers " == *" redis "* ]] && ! command -v redis-server >/dev/null 2>&1; then
  echo "installing redis-server (the Redis pass starts its own, never a system one)" >&2
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq redis-server
fi

if [[ " $servers " == *" node "* ]]; then
  missing=()
  command -v node >/dev/null 2>&1 || missing+=(nodejs)
  command -v npm >/dev/null 2>&1 || missing+=(npm)
  if ((${#missing[@]})); then
    echo "installing ${missing[*]} (for the Node.js peer, bench/node-peer)" >&2
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}"
  fi
  # socket.io at the version pinned in bench/node-peer/package-lock.json.
  (cd bench/node-peer && npm ci --no-audit --no-fund --loglevel=error)
fi

cargo build --release --locked --bin blindrelay
cargo build --release --locked -p blindrelay-load --bin bench-floor --bin blindrelay-bench
mkdir -p target/bench
ulimit -n "$(ulimit -Hn)"

free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

wait_listening() { # port: until it accepts (5 s at most)
  for _ in $(seq 100); do
    (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0
    sleep 0.05
  done
  echo "nothing listens on port $1" >&2
  return 1
}

# PIDs this script started, stopped on exit whatever happens.
started=()
cleanup() {
  for pid in "${started[@]}"; do
    kill -TERM "$pid" 2>/dev/null || true
  done
  for pid in "${started[@]}"; do
    wait "$pid" 2>/dev/null || true
  done
  started=()
}
trap cleanup EXIT

stop() { # pid...: stops them and forgets them (a reaped PID may be reused)
  local pid keep=() s
  for pid in "$@"; do
    kill -TERM "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
  done
  for s in "${started[@]}"; do
    [[ " $* " == *" $s "* ]] || keep+=("$s")
  done
  started=("${keep[@]}")
}

# Every client of the bench shares one address and sends as fast as it can: the abuse
# limits (SECURITY.md) would measure themselves, so they are off on every node.
limits_off=(SOCKET_EVENTS_PER_SEC=0 SOCKET_BYTES_PER_SEC=0 CONN_READ_BYTES_PER_SEC=0 READ_BYTES_PER_SEC=0 REPLAY_BYTES_PER_IP=0 IP_CONNECTS_PER_SEC=0
  IP_RESERVES_PER_SEC=0 IP_JOIN_FAILURES_PER_MIN=0 MAX_CONNECTIONS=0 MAX_CONNECTIONS_PER_IP=0)

# idle runs apart on a fresh server process: after the other scenarios it would measure
# the memory they left behind, not what a connection holds.
idle_flags="--connections ${IDLE_CONNECTIONS:-10000} --hold ${IDLE_HOLD:-60}"

load_fresh() { # name port "generator flags" command...: one server process, one load
  local name=$1 port=$2 flags=$3
  shift 3
  "$@" >>"target/bench/$name.log" 2>&1 &
  local pid=$!
  started+=("$pid")
  wait_listening "$port"
  echo "== $name (pid $pid)" >&2
  target/release/blindrelay-bench --url "http://127.0.0.1:$port" --server-pid "$pid" \
    $flags $extra | tee -a "target/bench/$name.jsonl" || status=1
  stop "$pid"
}

run_against() { # name port "bench flags" command...
  local name=$1 port=$2 flags=$3
  shift 3
  : >"target/bench/$name.jsonl"
  : >"target/bench/$name.log"
  if [ "$scenario" = all ]; then
    load_fresh "$name" "$port" "--scenario all --skip idle $flags" "$@"
    load_fresh "$name" "$port" "--scenario idle $idle_flags $flags" "$@"
  else
    load_fresh "$name" "$port" "--scenario $scenario $flags" "$@"
  fi
}

# Two blindrelay nodes on one private redis-server (no persistence, its own temporary
# directory, a free loopback port). Clients alternate between the nodes so that the
# members of a room sit on different nodes; CPU and RSS are summed over the nodes, and
# Redis's own CPU is reported beside them. Joins take longer here (each one runs a Lua
# script and every broadcast crosses Redis): fanout 500's 500 concurrent joins need more
# than the default 5 s ack timeout.
run_redis_pair() {
  local dir redis_port redis_pid prefix ports=() pids=() urls=() i
  dir=$(mktemp -d)
  redis_port=$(free_port)
  redis-server --port "$redis_port" --bind 127.0.0.1 --dir "$dir" --save '' --appendonly no \
    --daemonize no --logfile "$dir/redis.log" &
  redis_pid=$!
  started+=("$redis_pid")
  for _ in $(seq 100); do
    [ "$(redis-cli -p "$redis_port" ping 2>/dev/null)" = PONG ] && break
    sleep 0.05
  done
  prefix="bench$$:"
  for i in a b; do
    local port
    port=$(free_port)
    env PORT="$port" HOST=127.0.0.1 RUST_LOG=warn MAX_GROUP_MEMBERS=1000 "${limits_off[@]}" \
      REDIS_URL="redis://127.0.0.1:$redis_port" REDIS_PREFIX="$prefix" STORE_DIGEST_KEY="bench-digest-key-$prefix-0123456789abcdef" \
      target/release/blindrelay >"target/bench/redis-node-$i.log" 2>&1 &
    pids+=("$!")
    started+=("$!")
    ports+=("$port")
    urls+=("http://127.0.0.1:$port")
  done
  for i in "${ports[@]}"; do wait_listening "$i"; done
  echo "== redis-2node (nodes ${pids[*]}, redis-server $redis_pid on port $redis_port)" >&2
  # With `all`, no idle: a fresh pair (and Redis) for it is not worth the minutes here.
  local skip=""
  [ "$scenario" = all ] && skip="--skip idle"
  target/release/blindrelay-bench --url "$(IFS=,; echo "${urls[*]}")" --scenario "$scenario" $skip \
    --server-pid "$(IFS=,; echo "${pids[*]}")" --redis-pid "$redis_pid" --ack-timeout 30 \
    $extra | tee target/bench/redis-2node.jsonl || status=1
  stop "${pids[@]}"
  stop "$redis_pid"
  rm -rf "$dir"
}

for server in $servers; do
  case $server in
    memory)
      run_against blindrelay 3301 "" env PORT=3301 HOST=127.0.0.1 RUST_LOG=warn \
        MAX_GROUP_MEMBERS=1000 "${limits_off[@]}" target/release/blindrelay ;;
    floor) # Acks joins and leaves, sends no key lists: its groupfill is join + ack only.
      run_against floor 3302 "" target/release/bench-floor 3302 ;;
    node) # socket.io 4 on Node.js; acks when asked, like blindrelay (bench/node-peer/server.js).
      run_against node 3303 "" env PORT=3303 HOST=127.0.0.1 node bench/node-peer/server.js ;;
    redis) run_redis_pair ;;
    *) echo "unknown server $server (memory, floor, node, redis)" >&2; exit 2 ;;
  esac
done

# This run's figures side by side (only the servers and scenarios it ran).
summary=()
for server in $servers; do
  case $server in
    memory) summary+=("blindrelay=target/bench/blindrelay.jsonl") ;;
    floor) summary+=("floor=target/bench/floor.jsonl") ;;
    node) summary+=("node=target/bench/node.jsonl") ;;
    redis) summary+=("redis-2node=target/bench/redis-2node.jsonl") ;;
  esac
done
python3 bench/summary.py "${summary[@]}" 2>&1 | tee target/bench/summary.txt >&2 || status=1

if [ "$micro" = 1 ]; then
  echo "== criterion micro-benchmarks (benches/hot.rs)" >&2
  cargo bench --locked --bench hot 2>&1 | tee target/bench/criterion.txt || status=1
fi
exit "$status"
