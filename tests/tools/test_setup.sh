#!/usr/bin/env bash
# tools/setup.sh with stub apt-get, dpkg-query, sudo and id on PATH: one package reported
# missing; as root apt-get is called directly, as a user through `sudo -E`; nothing missing:
# nothing is called. (A fresh machine as root once failed at once: an empty $SUDO made bash
# run `-E apt-get`.)
set -euo pipefail
setup="$(cd "$(dirname "$0")/../.." && pwd)/tools/setup.sh"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
stubs="$work/bin"
mkdir -p "$stubs"
cat >"$stubs/dpkg-query" <<'STUB'
#!/bin/sh
# Every package is installed except the one named in $MISSING.
for last; do :; done
if [ "$last" = "$MISSING" ]; then exit 1; fi
printf 'install ok installed'
STUB
cat >"$stubs/apt-get" <<'STUB'
#!/bin/sh
echo "apt-get $* DEBIAN_FRONTEND=${DEBIAN_FRONTEND:-}" >>"$CALLS"
STUB
cat >"$stubs/sudo" <<'STUB'
#!/bin/sh
echo "sudo $*" >>"$CALLS"
[ "$1" = "-E" ] && shift
exec "$@"
STUB
cat >"$stubs/id" <<'STUB'
#!/bin/sh
echo "$FAKE_UID"
STUB
chmod +x "$stubs"/*
fail=0
check() {  # name, expected calls file content
  if [ "$(cat "$CALLS")" != "$2" ]; then
    echo "FAIL $1: got"; cat "$CALLS"; echo "expected"; echo "$2"; fail=1
  else
    echo "ok $1"
  fi
}
export CALLS="$work/calls" MISSING=libuv1-dev

: >"$CALLS"; FAKE_UID=0 PATH="$stubs:$PATH" bash "$setup" 2>/dev/null
check "root" "apt-get update -qq DEBIAN_FRONTEND=noninteractive
apt-get install -y -qq --no-install-recommends libuv1-dev DEBIAN_FRONTEND=noninteractive"

: >"$CALLS"; FAKE_UID=1000 PATH="$stubs:$PATH" bash "$setup" 2>/dev/null
check "user via sudo" "sudo -E apt-get update -qq
apt-get update -qq DEBIAN_FRONTEND=noninteractive
sudo -E apt-get install -y -qq --no-install-recommends libuv1-dev
apt-get install -y -qq --no-install-recommends libuv1-dev DEBIAN_FRONTEND=noninteractive"

: >"$CALLS"; MISSING=none FAKE_UID=0 PATH="$stubs:$PATH" bash "$setup" 2>/dev/null
check "nothing missing" ""
exit "$fail"
