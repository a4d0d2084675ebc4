#!/usr/bin/env bash
# Makes sure the pgbouncer binary is installed for the tests that run the
# conformance suite through it (each starts one of its own, in transaction
# pooling mode, on a free port): installs Debian's pgbouncer package when it
# is missing, and leaves the package's own service stopped. Under CI=true a
# failure is fatal; otherwise those tests skip.
set -uo pipefail
NAME=ensure-pgbouncer
. "$(dirname "$0")/lib.sh"

if command -v pgbouncer >/dev/null || [ -x /usr/sbin/pgbouncer ]; then
  exit 0
fi

apt_install pgbouncer ||
  fail "cannot install pgbouncer"
command -v pgbouncer >/dev/null || [ -x /usr/sbin/pgbouncer ] || fail "pgbouncer is still missing"
