#!/usr/bin/env bash
# Makes sure the headless Chromium the web console's browser tests drive is
# installed: installs Debian's chromium package when it is missing. Under
# CI=true a failure is fatal; otherwise the browser tests skip.
set -uo pipefail

if command -v chromium >/dev/null; then
  exit 0
fi

fail() {
  echo "ensure-chromium: $*" >&2
  if [ "${CI:-}" = "true" ]; then exit 1; fi
  exit 0
}

as_root() {
  if [ "$(id -u)" = 0 ]; then "$@"; elif command -v sudo >/dev/null; then sudo -n "$@"; else return 1; fi
}

echo "ensure-chromium: installing Debian's chromium package" >&2
as_root apt-get update -qq >/dev/null && as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null ||
  fail "cannot install chromium"
command -v chromium >/dev/null || fail "chromium is still missing"
