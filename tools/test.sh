#!/usr/bin/env bash
# The test command: installs what is missing, checks the formatting, builds (warnings are
# errors) and runs every test:
#  1. unit, real-time safety and system tests (rtpnode + rtpsend + JACK dummy server + capture);
#  2. the same unit and system tests under ASan+UBSan, the threaded ones under TSan
#     (tools/sanitize.sh);
#  3. every fuzz target for FUZZ_SECONDS each (default 20) from seed corpora of real senders
#     (tools/fuzz.sh);
#  4. the arm64 cross build and its unit tests under qemu (tools/cross.sh), when the arm64
#     packages can be installed.
# `tools/test.sh --quick` runs stage 1 only (for a fast local check; CI runs all four).
set -euo pipefail
cd "$(dirname "$0")/.."
tools/setup.sh
# JACK2 keeps a registry of servers in /dev/shm (8 slots) and frees a crashed server's slot only
# when a server of the same name starts again: on a machine kept between runs, leftovers of
# killed test servers can fill it ("Too many servers already active"). With no jackd running,
# nothing in it is in use.
if ! pgrep -x jackd >/dev/null 2>&1; then rm -rf /dev/shm/jack-shm-registry /dev/shm/jack-[0-9]* /dev/shm/jack_* 2>/dev/null || true; fi
# Every C++ file follows the committed .clang-format (clang-format 14, Debian 12's).
if [ -d .git ]; then git ls-files '*.cpp' '*.hpp' | xargs clang-format --style=file --dry-run --Werror; fi
tools/build.sh -DRTPNODE_WERROR=ON
(cd build && ctest --output-on-failure -j 2 --timeout 300)
if [ "${1:-}" = "--quick" ]; then exit 0; fi
tools/sanitize.sh
tools/fuzz.sh "${FUZZ_SECONDS:-20}"
tools/cross.sh arm64 --if-installable
