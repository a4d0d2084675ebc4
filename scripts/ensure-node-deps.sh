#!/usr/bin/env bash
# Installs the TypeScript compiler the HTTP client example's test compiles
# with (examples/http, exact versions from its package-lock.json) when it
# is missing, with Debian's nodejs and npm when npm is. Under CI=true a failure is fatal; otherwise that test skips.
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

as_root() {
  if [ "$(id -u)" = 0 ]; then "$@"; elif command -v sudo >/dev/null; then sudo -n "$@"; else return 1; fi
}

if ! command -v npm >/dev/null; then
  echo "ensure-node-deps: installing Debian's nodejs and npm packages" >&2
  as_root apt-get update -qq >/dev/null && as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nodejs npm >/dev/null ||
    fail "cannot install nodejs and npm"
fi
npm ci --no-audit --no-fund --loglevel=error >/dev/null || fail "npm ci failed in examples/http"
