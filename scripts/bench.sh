#!/usr/bin/env bash
# Reruns every benchmark: each scenario against one blindrelay node (in memory), against
# the floor relay (same socketioxide, no checks, no state), against the Node.js peer
# (bench/node-peer: socket.io 4 with the original server's room semantics), and against
# two blindrelay nodes sharing rooms through a private redis-server, and two blindrelay
# nodes on a private three-primary Redis Cluster; then the criterion micro-benchmarks.
# All on loopback. Results (one JSON line per scenario) go to target/bench/<server>.jsonl:
# blindrelay.jsonl, floor.jsonl, node.jsonl, redis-2node.jsonl, cluster-2node.jsonl; a
# side-by-side summary of this run to stderr and target/bench/summary.txt.
#
#   bash scripts/bench.sh                      # everything: per server, every scenario but
#                                              # idle (pairs at saturation, 2,000 and
#                                              # 1,000 msg/s), then idle on a fresh process
#                                              # (IDLE_CONNECTIONS=10000 held IDLE_HOLD=60 s;
#                                              # not for the Redis pairs)
#   SCENARIO=pairs bash scripts/bench.sh       # one scenario (pairs, fanout, idle, churn,
#                                              # groupfill), on every server
#   SERVERS="memory node" bash scripts/bench.sh    # a subset of: memory floor node redis
#                                                  # cluster
#   MICRO=0 bash scripts/bench.sh              # without the criterion run
#   BENCH_FLAGS="--connections 10000" SCENARIO=idle bash scripts/bench.sh
set -euo pipefail
cd "$(dirname "$0")/.."

scenario="${SCENARIO:-all}"
# Extra generator flags for every server (e.g. BENCH_FLAGS="--connections 10000").
extra="${BENCH_FLAGS:-}"
# A failed scenario (exit 1 from the generator) does not stop the other servers.
status=0
servers="${SERVERS:-memory floor node redis cluster}"
micro="${MICRO:-1}"
export CARGO_BUILD_JOBS="${CARGO_BUILD_JOBS:-1}"

if [[ " $servers " == *" redis "* || " $servers " == *" cluster "* ]] &&
  ! { command -v redis-server && command -v redis-cli; } >/dev/null 2>&1; then
  echo "installing redis-server (the Redis passes start their own, never a system one)" >&2
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
  free_ports 1
}

free_ports() { # n: n distinct free loopback ports, one a line (all held until all are found)
  python3 -c '
import socket, sys
held = []
for _ in range(int(sys.argv[1])):
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    held.append(s)
print("\n".join(str(s.getsockname()[1]) for s in held))' "$1"
}

wait_listening() { # port [pid]: until it accepts (5 s at most; gives up early if pid exits)
  for _ in $(seq 100); do
    (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0
    if [ -n "${2:-}" ] && ! kill -0 "$2" 2>/dev/null; then
      echo "process $2 exited before listening on port $1" >&2
      return 1
    fi
    sleep 0.05
  done
  echo "nothing listens on port $1" >&2
  return 1
}

# PIDs this script started, stopped on exit whatever happens; the temporary directories
# of the Redis passes, removed then too.
started=()
tmpdirs=()
cleanup() {
  for pid in "${started[@]}"; do
    kill -TERM "$pid" 2>/dev/null || true
  done
  for pid in "${started[@]}"; do
    wait "$pid" 2>/dev/null || true
  done
  started=()
  if ((${#tmpdirs[@]})); then rm -rf "${tmpdirs[@]}"; fi
  tmpdirs=()
}
trap cleanup EXIT
trap 'exit 130' INT # so that the EXIT trap runs on Ctrl-C and kill too
trap 'exit 143' TERM

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

# Two blindrelay nodes on a Redis. Clients alternate between the nodes so that the
# members of a room sit on different nodes; CPU and RSS are summed over the nodes, and
# Redis's own CPU (summed over its processes) is reported beside them. Joins take longer
# here (each one runs a Lua script and every broadcast crosses Redis): fanout 500's 500
# concurrent joins need more than the default 5 s ack timeout.
run_node_pair() { # tag redis-url redis-pid...: results in target/bench/<tag>-2node.jsonl
  local tag=$1 url=$2
  shift 2
  local name="$tag-2node" prefix="bench$$:" ports=() pids=() urls=() logs=() i
  : >"target/bench/$name.jsonl"
  ports=($(free_ports 2))
  for i in 0 1; do
    logs+=("target/bench/$tag-node-$([ "$i" = 0 ] && echo a || echo b).log")
    env PORT="${ports[$i]}" HOST=127.0.0.1 RUST_LOG=warn MAX_GROUP_MEMBERS=1000 "${limits_off[@]}" \
      REDIS_URL="$url" REDIS_PREFIX="$prefix" STORE_DIGEST_KEY="bench-digest-key-$prefix-0123456789abcdef" \
      target/release/blindrelay >"${logs[$i]}" 2>&1 &
    pids+=("$!")
    started+=("$!")
    urls+=("http://127.0.0.1:${ports[$i]}")
  done
  for i in 0 1; do
    if ! wait_listening "${ports[$i]}" "${pids[$i]}"; then
      pair_failed "$name" "blindrelay node ${pids[$i]} did not start on $url (see ${logs[$i]})" "${logs[$i]}"
      stop "${pids[@]}"
      return 0
    fi
  done
  echo "== $name (nodes ${pids[*]}, redis-server $* on $url)" >&2
  # With `all`, no idle: a fresh pair (and Redis) for it is not worth the minutes here.
  local skip=""
  [ "$scenario" = all ] && skip="--skip idle"
  target/release/blindrelay-bench --url "$(IFS=,; echo "${urls[*]}")" --scenario "$scenario" $skip \
    --server-pid "$(IFS=,; echo "${pids[*]}")" --redis-pid "$(IFS=,; echo "$*")" --ack-timeout 30 \
    $extra | tee -a "target/bench/$name.jsonl" || status=1
  for i in 0 1; do
    kill -0 "${pids[$i]}" 2>/dev/null ||
      pair_failed "$name" "blindrelay node ${pids[$i]} exited during the run (see ${logs[$i]})" "${logs[$i]}"
  done
  stop "${pids[@]}"
}

pair_failed() { # name why [log]: says so (with the log's tail), records it, run goes on
  local name=$1 why=$2 log=${3:-}
  status=1
  echo "== $name: FAILED: $why" >&2
  if [ -n "$log" ] && [ -s "$log" ]; then
    tail -n 5 "$log" | sed 's/^/    | /' >&2
  fi
  # A not-ok line per scenario that did not run, so the summary shows FAILED in its rows.
  python3 -c '
import json, sys
which, why = sys.argv[1], sys.argv[2]
runs = {"all": ["pairs", "fanout50", "fanout500", "churn", "groupfill"], "fanout": ["fanout50"]}
for s in runs.get(which, [which]):
    j = {"scenario": s, "error": why, "ok": False}
    if s.startswith("fanout"):
        j.update(scenario="fanout", members=int(s[6:]))
    print(json.dumps(j))' "$scenario" "$why" >>"target/bench/$name.jsonl"
}

start_redis() { # dir port [redis-server flags...]: sets redis_pid; none persisted
  local dir=$1 port=$2
  shift 2
  redis-server --port "$port" --bind 127.0.0.1 --dir "$dir" --save '' --appendonly no \
    --daemonize no --logfile "$dir/redis.log" "$@" &
  redis_pid=$!
  started+=("$redis_pid")
}

wait_redis() { # port pid: until it answers PING (5 s at most)
  for _ in $(seq 100); do
    [ "$(redis-cli -p "$1" ping 2>/dev/null)" = PONG ] && return 0
    kill -0 "$2" 2>/dev/null || break
    sleep 0.05
  done
  return 1
}

# Two blindrelay nodes on one private redis-server (no persistence, its own temporary
# directory, a free loopback port).
run_redis_pair() {
  local dir redis_port redis_pid
  dir=$(mktemp -d)
  tmpdirs+=("$dir")
  redis_port=$(free_port)
  start_redis "$dir" "$redis_port"
  if wait_redis "$redis_port" "$redis_pid"; then
    run_node_pair redis "redis://127.0.0.1:$redis_port" "$redis_pid"
  else
    : >target/bench/redis-2node.jsonl
    pair_failed redis-2node "redis-server $redis_pid did not answer on port $redis_port" "$dir/redis.log"
  fi
  stop "$redis_pid"
  rm -rf "$dir"
}

# Two blindrelay nodes on a private Redis Cluster of three primaries and no replicas (each
# its own temporary directory, free loopback port and free cluster-bus port; no
# persistence), created with `redis-cli --cluster create`. REDIS_URL names the first
# primary: the nodes find the others themselves. Redis CPU and RSS are summed over the
# three primaries (and given per process in the JSON). Needs Redis 7 (--cluster-port: the
# default bus port, port + 10000, is past 65535 for most free ports).
run_cluster_pair() {
  local name=cluster-2node dirs=() ports=() rpids=() seeds=() free i dir ok=1
  free=($(free_ports 6)) # 3 client ports, then 3 bus ports
  : >"target/bench/$name.jsonl"
  for i in 0 1 2; do
    dir=$(mktemp -d)
    dirs+=("$dir")
    tmpdirs+=("$dir")
    ports+=("${free[$i]}")
    start_redis "$dir" "${free[$i]}" --cluster-enabled yes --cluster-config-file nodes.conf \
      --cluster-port "${free[$((i + 3))]}"
    rpids+=("$redis_pid")
    seeds+=("127.0.0.1:${free[$i]}")
  done
  for i in 0 1 2; do
    if ! wait_redis "${ports[$i]}" "${rpids[$i]}"; then
      pair_failed "$name" "redis-server ${rpids[$i]} did not answer on port ${ports[$i]}" "${dirs[$i]}/redis.log"
      ok=0
      break
    fi
  done
  if ((ok)) && ! redis-cli --cluster create "${seeds[@]}" --cluster-replicas 0 --cluster-yes \
    >"target/bench/$name-create.log" 2>&1; then
    pair_failed "$name" "redis-cli --cluster create ${seeds[*]} failed" "target/bench/$name-create.log"
    ok=0
  fi
  if ((ok)); then # every primary must see every slot served (gossip takes a moment)
    local pending=("${ports[@]}") left
    for _ in $(seq 200); do
      left=()
      for i in "${pending[@]}"; do
        redis-cli -p "$i" cluster info 2>/dev/null | grep -q '^cluster_state:ok' || left+=("$i")
      done
      pending=("${left[@]}")
      ((${#pending[@]})) || break
      sleep 0.1
    done
    if ((${#pending[@]})); then
      pair_failed "$name" "no cluster_state:ok after 20 s on port(s) ${pending[*]}" "${dirs[0]}/redis.log"
      ok=0
    fi
  fi
  if ((ok)); then
    echo "== Redis Cluster up: primaries ${seeds[*]} (pids ${rpids[*]})" >&2
    run_node_pair cluster "redis://${seeds[0]}" "${rpids[@]}"
  fi
  stop "${rpids[@]}"
  rm -rf "${dirs[@]}"
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
    cluster) run_cluster_pair ;;
    *) echo "unknown server $server (memory, floor, node, redis, cluster)" >&2; exit 2 ;;
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
    cluster) summary+=("cluster-2node=target/bench/cluster-2node.jsonl") ;;
  esac
done
python3 bench/summary.py "${summary[@]}" 2>&1 | tee target/bench/summary.txt >&2 || status=1

if [ "$micro" = 1 ]; then
  echo "== criterion micro-benchmarks (benches/hot.rs)" >&2
  cargo bench --locked --bench hot 2>&1 | tee target/bench/criterion.txt || status=1
fi
exit "$status"
