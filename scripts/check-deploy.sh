#!/usr/bin/env bash
# Checks the deployment files where Docker cannot run (docs/deployment.md, "What was exercised"):
# docker-compose.yml's wiring (and nginx -t on the configuration it mounts), then the
# Dockerfile (lint when hadolint is at hand, its build steps and runtime, rebuilt for real:
# minutes). scripts/test.sh runs the same checks (the compose one in tests/js/nginx.test.mjs).
set -euo pipefail
cd "$(dirname "$0")/.."

python3 tests/deploy/check_compose.py
hadolint=target/tools/hadolint/bin/hadolint
if [ -x "$hadolint" ]; then
  "$hadolint" Dockerfile
elif command -v hadolint >/dev/null 2>&1; then
  hadolint Dockerfile
else
  echo "check-deploy: hadolint not installed (scripts/test.sh installs it), lint skipped"
fi
python3 tests/deploy/check_dockerfile.py
