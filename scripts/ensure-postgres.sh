#!/usr/bin/env bash
# Makes sure the local PostgreSQL the tests use is running: installs Debian's
# postgresql package when its binaries are missing, starts the cluster when
# it is down, and creates the "test" database with trust authentication on
# 127.0.0.1 for a fresh install. Does nothing when MEOWMX_TEST_DATABASE_URL
# points elsewhere. Under CI=true every failure is fatal; otherwise the tests
# skip what needs PostgreSQL.
set -uo pipefail
NAME=ensure-postgres
. "$(dirname "$0")/lib.sh"

if [ -n "${MEOWMX_TEST_DATABASE_URL:-}" ]; then
  exit 0
fi

pg_bin() {
  ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1
}

if [ -z "$(pg_bin)" ] || ! command -v pg_isready >/dev/null; then
  apt_install postgresql ||
    fail "could not install postgresql"
  fresh=1
fi

if ! pg_isready -q -h 127.0.0.1 -p 5432; then
  version=$(ls /etc/postgresql 2>/dev/null | sort -V | tail -n 1)
  [ -n "$version" ] || fail "no cluster under /etc/postgresql"
  if [ "${fresh:-0}" = 1 ]; then
    hba=/etc/postgresql/$version/main/pg_hba.conf
    as_root sed -i -E 's/^(local|host)(\s+all\s+all\s+.*)\s(peer|scram-sha-256|md5)$/\1\2 trust/' "$hba"
    as_root sed -i -E 's/^(local\s+all\s+postgres\s+)peer$/\1trust/' "$hba"
  fi
  echo "ensure-postgres: starting PostgreSQL $version" >&2
  as_root pg_ctlcluster --skip-systemctl-redirect "$version" main start || fail "could not start PostgreSQL $version"
  for _ in $(seq 1 60); do
    pg_isready -q -h 127.0.0.1 -p 5432 && break
    sleep 0.5
  done
  pg_isready -q -h 127.0.0.1 -p 5432 || fail "PostgreSQL did not become ready"
fi

if ! psql -h 127.0.0.1 -U postgres -d test -Atqc 'SELECT 1' >/dev/null 2>&1; then
  psql -h 127.0.0.1 -U postgres -d postgres -qc 'CREATE DATABASE test' >/dev/null 2>&1 ||
    fail "cannot connect as postgres to 127.0.0.1:5432/test (trust authentication expected)"
fi
exit 0
