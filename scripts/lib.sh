# Helpers of the ensure-*.sh scripts, sourced after NAME is set to the
# script's name.

# fail reports a failure: fatal under CI=true; otherwise the script ends
# and the tests that need what it ensures skip.
fail() {
  echo "$NAME: $*" >&2
  if [ "${CI:-}" = "true" ]; then exit 1; fi
  exit 0
}

# as_root runs a command as root: directly, or through sudo without a
# password.
as_root() {
  if [ "$(id -u)" = 0 ]; then "$@"; elif command -v sudo >/dev/null; then sudo -n "$@"; else return 1; fi
}

# apt_install installs Debian packages.
apt_install() {
  echo "$NAME: installing Debian's $* package(s)" >&2
  as_root apt-get update -qq >/dev/null &&
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null
}
