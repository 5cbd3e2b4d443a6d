#!/usr/bin/env bash
# Runs every cargo-fuzz target of fuzz/ for a bounded time each and prints what it did.
#
#   bash scripts/fuzz.sh          # 60 s per target
#   bash scripts/fuzz.sh 300      # 300 s per target
#   TARGETS="ids payloads" bash scripts/fuzz.sh 30
#
# Needs the nightly toolchain and cargo-fuzz (`cargo install cargo-fuzz --locked`).
# Inputs found to add coverage go to fuzz/corpus/<target>/ (git ignores them; the
# committed seeds are seed-*); a crash leaves its input in fuzz/artifacts/<target>/ and
# fails the run. Logs: fuzz/target/logs/<target>.log. Exit status 1 if a target crashed.
set -euo pipefail
cd "$(dirname "$0")/.."

secs="${1:-60}"
read -r -a targets <<<"${TARGETS:-payloads ids reserve_body store_model}"

command -v cargo-fuzz >/dev/null 2>&1 || {
  echo "cargo-fuzz is missing: cargo install cargo-fuzz --locked" >&2
  exit 2
}
cargo +nightly fuzz build
mkdir -p fuzz/target/logs

failed=0
results=()
for t in "${targets[@]}"; do
  log="fuzz/target/logs/$t.log"
  mkdir -p "fuzz/corpus/$t" "fuzz/artifacts/$t"
  before=$(find "fuzz/artifacts/$t" -type f | wc -l)
  echo "== $t: ${secs} s" >&2
  rc=0
  cargo +nightly fuzz run "$t" "fuzz/corpus/$t" -- \
    -max_total_time="$secs" -timeout=10 -print_final_stats=1 >"$log" 2>&1 || rc=$?
  stat() { grep -m1 "^stat::$1:" "$log" | awk '{print $2}'; }
  execs=$(stat number_of_executed_units)
  per_sec=$(stat average_exec_per_sec)
  rss=$(stat peak_rss_mb)
  corpus=$(find "fuzz/corpus/$t" -type f | wc -l)
  crashes=$(($(find "fuzz/artifacts/$t" -type f | wc -l) - before))
  status=ok
  if [ "$rc" -ne 0 ]; then
    status="FAILED (exit $rc)"
    failed=1
    grep -m3 -E "panicked at|ERROR: libFuzzer|Test unit written" "$log" >&2 || true
  fi
  results+=("$(printf '%-14s %6s %12s %10s %8s %8s %8s  %s' "$t" "$secs" "${execs:--}" "${per_sec:--}" "${rss:--}" "$corpus" "$crashes" "$status")")
  printf '{"target":"%s","seconds":%s,"executions":%s,"execs_per_sec":%s,"peak_rss_mb":%s,"corpus":%s,"crashes":%s,"ok":%s}\n' \
    "$t" "$secs" "${execs:-null}" "${per_sec:-null}" "${rss:-null}" "$corpus" "$crashes" \
    "$([ "$rc" -eq 0 ] && echo true || echo false)"
done

printf '\n%-14s %6s %12s %10s %8s %8s %8s  %s\n' target secs executions exec/s rss_mb corpus crashes status >&2
for r in "${results[@]}"; do echo "$r" >&2; done
exit "$failed"
