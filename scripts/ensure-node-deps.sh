#!/usr/bin/env bash
# Installs the TypeScript compiler the HTTP client example's test compiles
# with (examples/http, exact versions from its package-lock.json) when it
# is missing, with Debian's nodejs and npm when npm is. Under CI=true a failure is fatal; otherwise that test skips.
set -uo pipefail
NAME=ensure-node-deps
. "$(dirname "$0")/lib.sh"
cd "$(dirname "$0")/../examples/http"

if [ -x node_modules/.bin/tsc ]; then
  exit 0
fi

if ! command -v npm >/dev/null; then
  apt_install nodejs npm ||
    fail "cannot install nodejs and npm"
fi
npm ci --no-audit --no-fund --loglevel=error >/dev/null || fail "npm ci failed in examples/http"
