#!/usr/bin/env bash
# Makes sure the nats-server binary the NATS tests start (each on a port
# and store of its own) is installed: installs Debian's nats-server package
# when it is missing. Under CI=true a failure is fatal; otherwise the tests
# that need it skip.
set -uo pipefail
NAME=ensure-nats
. "$(dirname "$0")/lib.sh"

if command -v nats-server >/dev/null || [ -x /usr/sbin/nats-server ]; then
  exit 0
fi

apt_install nats-server ||
  fail "cannot install nats-server"
command -v nats-server >/dev/null || [ -x /usr/sbin/nats-server ] || fail "nats-server is still missing"
