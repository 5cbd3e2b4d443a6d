#!/usr/bin/env bash
# Soak test (not part of scripts/test.sh): the release server on 127.0.0.1 (a free port)
# under thousands of sessions joining, chatting, leaving and reconnecting for a bounded
# time, while a share of clients sends garbage, malformed and oversized payloads. Then
# every session must be reaped, no honest message lost or duplicated, no panic logged.
#
#   bash scripts/soak.sh            # 10 minutes, 2000 sessions (4000 connections)
#   bash scripts/soak.sh 2          # 2 minutes
#   SESSIONS=500 ABUSERS=50 bash scripts/soak.sh 2
#
# Output: the generator's table (stderr) and JSON summary line (stdout, also in
# target/soak/summary.json); the server's log in target/soak/server.log.
# Exit status 0 when the generator passed, the server stayed up, exited cleanly on
# SIGTERM and logged no panic.
set -euo pipefail
cd "$(dirname "$0")/.."

minutes="${1:-10}"
sessions="${SESSIONS:-2000}"
abusers="${ABUSERS:-$((sessions / 20))}"
max_payload=$((1024 * 1024))
history_max=$((256 * 1024))

cargo build --release --locked --bin blindrelay
cargo build --release --locked -p blindrelay-load --bin blindrelay-soak

# Each side holds two fds per session, one per abuser, and some to spare.
need=$((sessions * 2 + abusers + 512))
hard=$(ulimit -Hn)
if [ "$hard" = unlimited ] || [ "$hard" -ge 65536 ]; then ulimit -n 65536; else ulimit -n "$hard"; fi
if [ "$(ulimit -n)" -lt "$need" ]; then
  echo "soak: $sessions sessions need $need file descriptors, the limit is $(ulimit -n); lower SESSIONS" >&2
  exit 2
fi

out=target/soak
mkdir -p "$out"
log="$out/server.log"
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
# Every client shares 127.0.0.1 and the honest ones send flat out: the per-socket and
# per-address limits (tested on their own in tests/js/abuse.test.mjs) are off, so that
# what the soak counts is the server's own behaviour under malformed traffic.
env PORT="$port" HOST=127.0.0.1 RUST_LOG=warn SESSION_TTL_SECS=5 REAPER_INTERVAL_SECS=1 \
  MAX_PAYLOAD_BYTES=$max_payload HISTORY_MAX_BYTES=$history_max \
  SOCKET_EVENTS_PER_SEC=0 SOCKET_BYTES_PER_SEC=0 CONN_READ_BYTES_PER_SEC=0 READ_BYTES_PER_SEC=0 REPLAY_BYTES_PER_IP=0 IP_CONNECTS_PER_SEC=0 IP_RESERVES_PER_SEC=0 \
  IP_JOIN_FAILURES_PER_MIN=0 MAX_CONNECTIONS=0 MAX_CONNECTIONS_PER_IP=0 \
  target/release/blindrelay >"$log" 2>&1 &
pid=$!
trap 'kill -TERM $pid 2>/dev/null || true' EXIT
for _ in $(seq 200); do # until it listens (10 s at most)
  (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && break
  sleep 0.05
done
echo "soak: server pid $pid on 127.0.0.1:$port, $minutes min, $sessions sessions, $abusers abusers, fd limit $(ulimit -n)" >&2

rc=0
target/release/blindrelay-soak --url "http://127.0.0.1:$port" --duration $((minutes * 60)) \
  --sessions "$sessions" --abusers "$abusers" --server-pid "$pid" \
  --max-payload-bytes $max_payload --history-max-bytes $history_max | tee "$out/summary.json" || rc=$?

if ! kill -0 "$pid" 2>/dev/null; then
  echo "soak: FAIL: the server is not running any more" >&2
  rc=1
fi
kill -TERM "$pid" 2>/dev/null || true
server_rc=0
wait "$pid" || server_rc=$?
trap - EXIT
panics=$(grep -c -E "panicked|RUST_BACKTRACE" "$log" || true)
echo "soak: server exit status $server_rc, $(wc -l <"$log") log lines, $panics panic lines ($log)" >&2
if [ "$panics" -ne 0 ]; then
  grep -m5 -E "panicked" "$log" >&2 || true
  rc=1
fi
[ "$server_rc" -eq 0 ] || rc=1
echo "soak: $([ "$rc" -eq 0 ] && echo PASS || echo FAIL)" >&2
exit "$rc"
