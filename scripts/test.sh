#!/usr/bin/env bash
# Runs every test of blindrelay: the Rust unit and integration tests, then the
# compatibility suite with the official socket.io-client against the real binary.
# Installs what it needs on a fresh Debian machine (run as root there).
set -euo pipefail
cd "$(dirname "$0")/.."

missing=()
command -v node >/dev/null 2>&1 || missing+=(nodejs)
command -v npm >/dev/null 2>&1 || missing+=(npm)
if ((${#missing[@]})); then
  echo "installing ${missing[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}"
fi

echo "== cargo test"
cargo build --locked
cargo test --locked

echo "== socket.io-client compatibility suite"
(cd tests/js && npm ci --no-audit --no-fund --loglevel=error)
BLINDRELAY_BIN="$PWD/target/debug/blindrelay" npm --prefix tests/js test
