#!/usr/bin/env bash
# Makes sure the nats-server binary the NATS tests start (each on a port
# and store of its own) is installed: installs Debian's nats-server package
# when it is missing. Under CI=true a failure is fatal; otherwise the tests
# that need it skip.
set -uo pipefail

if command -v nats-server >/dev/null || [ -x /usr/sbin/nats-server ]; then
  exit 0
fi

fail() {
  echo "ensure-nats: $*" >&2
  if [ "${CI:-}" = "true" ]; then exit 1; fi
  exit 0
}

as_root() {
  if [ "$(id -u)" = 0 ]; then "$@"; elif command -v sudo >/dev/null; then sudo -n "$@"; else return 1; fi
}

echo "ensure-nats: installing Debian's nats-server package" >&2
as_root apt-get update -qq >/dev/null && as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nats-server >/dev/null ||
  fail "cannot install nats-server"
command -v nats-server >/dev/null || [ -x /usr/sbin/nats-server ] || fail "nats-server is still missing"
