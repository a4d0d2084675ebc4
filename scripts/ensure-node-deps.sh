#!/usr/bin/env bash
# Installs the TypeScript compiler the HTTP client example's test compiles
# with (examples/http, exact versions from its package-lock.json) when it
# is missing. Under CI=true a failure is fatal; otherwise that test skips.
set -uo pipefail
cd "$(dirname "$0")/../examples/http"

if [ -x node_modules/.bin/tsc ]; then
  exit 0
fi

fail() {
  echo "ensure-node-deps: $*" >&2
  if [ "${CI:-}" = "true" ]; then exit 1; fi
  exit 0
}

command -v npm >/dev/null || fail "npm is missing: the TypeScript example's test needs Node.js 18 or later"
npm ci --no-audit --no-fund --loglevel=error >/dev/null || fail "npm ci failed in examples/http"
