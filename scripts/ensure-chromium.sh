#!/usr/bin/env bash
# Makes sure the headless Chromium the web console's browser tests drive is
# installed: installs Debian's chromium package when it is missing. Under
# CI=true a failure is fatal; otherwise the browser tests skip.
set -uo pipefail
NAME=ensure-chromium
. "$(dirname "$0")/lib.sh"

if command -v chromium >/dev/null; then
  exit 0
fi

apt_install chromium ||
  fail "cannot install chromium"
command -v chromium >/dev/null || fail "chromium is still missing"
