#!/usr/bin/env bash
# Cross-builds rtpnode for arm64 (a Raspberry Pi with a 64-bit OS) on a Debian 12 amd64 machine
# and runs the unit tests under qemu's user-mode emulator:
#   tools/cross.sh arm64 [--no-install] [--build-only] [--if-installable]
# --if-installable: when the arm64 packages cannot be installed (no arm64 index on the mirror),
# say so and exit 0 (tools/test.sh, as CI runs it); a build or test failure still fails.
# Installs crossbuild-essential-arm64, qemu-user-static and the :arm64 -dev packages (multiarch;
# apt may upgrade some amd64 libraries to keep versions equal). Build tree: build-arm64/.
# The system tests (JACK server, capture) are not run: jackd2:arm64 cannot be installed next to
# the amd64 JACK tools. On the Pi itself, build natively as the README says.
set -euo pipefail
cd "$(dirname "$0")/.."

arch=${1:-}
if [ "$arch" != arm64 ]; then
  echo "usage: tools/cross.sh arm64 [--no-install] [--build-only] [--if-installable]" >&2
  exit 2
fi
shift
install=1 run_tests=1 optional=0
for a in "$@"; do
  case "$a" in
    --no-install) install=0 ;;
    --build-only) run_tests=0 ;;
    --if-installable) optional=1 ;;
    *) echo "cross.sh: unknown option $a" >&2; exit 2 ;;
  esac
done

PACKAGES=(crossbuild-essential-arm64 qemu-user-static)
for p in portaudio19-dev libuv1-dev libopus-dev libortp-dev libspeexdsp-dev libspandsp-dev \
         libsndfile1-dev libmicrohttpd-dev libgtest-dev libgmock-dev libbenchmark-dev \
         libasound2-dev libjack-jackd2-dev libtomlplusplus-dev libsystemd-dev libpcap-dev zlib1g-dev libavahi-client-dev libbcg729-dev libopencore-amrnb-dev; do
  PACKAGES+=("$p:arm64")
done

install_packages() {
  local as_root=()
  if [ "$(id -u)" -ne 0 ]; then as_root=(sudo -E); fi
  export DEBIAN_FRONTEND=noninteractive
  if ! dpkg --print-foreign-architectures | grep -qx arm64; then
    "${as_root[@]}" dpkg --add-architecture arm64 || return 1
  fi
  local missing=() p
  for p in "${PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || missing+=("$p")
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  echo "cross: installing ${missing[*]}" >&2
  "${as_root[@]}" apt-get update -qq || return 1
  "${as_root[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}
if [ "$install" = 1 ] && ! install_packages; then
  if [ "$optional" = 1 ]; then
    echo "cross: the arm64 packages are not installable here; arm64 build skipped" >&2
    exit 0
  fi
  echo "cross: installing the arm64 packages failed" >&2
  exit 1
fi

build=build-arm64
mkdir -p "$build"
cmake -S . -B "$build" -DCMAKE_TOOLCHAIN_FILE=tools/cmake/aarch64-linux-gnu.cmake \
  -DCMAKE_BUILD_TYPE=RelWithDebInfo -DRTPNODE_WERROR=ON >"$build/configure.log" 2>&1 ||
  { cat "$build/configure.log"; exit 1; }
cmake --build "$build" -j"$(nproc)" --target rtpnode rtpsend rtp_tests jitter_tests node_tests \
  tools_tests realtime_safety_test
machine=$(readelf -h "$build/node/rtpnode" | sed -n 's/^ *Machine: *//p')
[ "$machine" = AArch64 ] || { echo "cross: rtpnode is built for '$machine', not AArch64" >&2; exit 1; }
# The binary runs: qemu executes it (no binfmt registration needed).
/usr/bin/qemu-aarch64-static "$build/node/rtpnode" --help >"$build/rtpnode-help.txt"
head -1 "$build/rtpnode-help.txt"
[ "$run_tests" = 1 ] || exit 0
# The unit tests only: system tests need a JACK server, Setup/Install run host tools, and the
# JACK case of the real-time safety test would have an arm64 libjack talk to the host's amd64
# jackd. The two 24-hour drift simulations (175 s of the 190 under qemu) run in the plain
# stage: arithmetic the shorter drift tests run here too. The memory benchmark (Memory.*) runs in
# the plain stage; by hand under qemu it gives the arm64 figures.
cd "$build"
ctest -j"$(nproc)" --output-on-failure -LE system \
  -E '^(Setup|Install|Memory)\.|_NOT_BUILT|JackProcessCallback|DriftSim\.TwentyFourHours' --timeout 600
