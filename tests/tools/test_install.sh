#!/usr/bin/env bash
# Installation and packaging (issue #15), on the build directory given: `cmake --install` puts
# the binaries, the systemd unit (naming the installed binary), the sysusers file, the example
# config and the man pages in place; the unit passes `systemd-analyze verify` (its man page
# found); the example config is a valid --config; CPack's .deb holds the same files, its unit
# starts /usr/bin/rtpnode, and it runs a postinst.
set -euo pipefail
build="$(cd "$1" && pwd)"
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
files=(bin/rtpnode bin/rtpsend lib/systemd/system/rtpnode.service lib/sysusers.d/rtpnode.conf
       share/doc/rtpnode/rtpnode.toml share/man/man1/rtpnode.1 share/man/man1/rtpsend.1)
cmake --install "$build" --prefix "$tmp/inst/usr" > "$tmp/install.log"
for f in "${files[@]}"; do
  [ -f "$tmp/inst/usr/$f" ] || { echo "cmake --install: missing $f"; exit 1; }
done
grep -qx "ExecStart=$tmp/inst/usr/bin/rtpnode --config /etc/rtpnode/rtpnode.toml --quiet --rt-priority 70" \
  "$tmp/inst/usr/lib/systemd/system/rtpnode.service" || { echo "unit: wrong ExecStart"; exit 1; }
MANPATH="$tmp/inst/usr/share/man" systemd-analyze verify "$tmp/inst/usr/lib/systemd/system/rtpnode.service"
"$tmp/inst/usr/bin/rtpnode" --config "$tmp/inst/usr/share/doc/rtpnode/rtpnode.toml" --print-config \
  > "$tmp/effective.toml"
grep -q '^listen = \["0.0.0.0:5004"\]$' "$tmp/effective.toml" || { echo "example config"; exit 1; }
(cd "$build" && cpack -B "$tmp/pkg" > "$tmp/cpack.log") || { cat "$tmp/cpack.log"; exit 1; }
deb="$(ls "$tmp"/pkg/*.deb)"
dpkg-deb -c "$deb" | awk '{print $6}' > "$tmp/contents"
for f in "${files[@]}"; do
  grep -qx "./usr/$f" "$tmp/contents" || { echo "deb: missing /usr/$f"; exit 1; }
done
dpkg-deb --fsys-tarfile "$deb" | tar -xO ./usr/lib/systemd/system/rtpnode.service |
  grep -qx 'ExecStart=/usr/bin/rtpnode --config /etc/rtpnode/rtpnode.toml --quiet --rt-priority 70' ||
  { echo "deb unit: wrong ExecStart"; exit 1; }
dpkg-deb -e "$deb" "$tmp/control"
[ -x "$tmp/control/postinst" ] || { echo "deb: no postinst"; exit 1; }
echo "ok: $(basename "$deb"), $(wc -l < "$tmp/contents") entries"
