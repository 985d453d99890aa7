#!/usr/bin/env bash
# The test command: installs what is missing, builds (warnings are errors) and runs every test:
# unit, real-time safety, and system tests (rtpnode + rtpsend + JACK dummy server + capture).
set -euo pipefail
cd "$(dirname "$0")/.."
tools/setup.sh
tools/build.sh -DRTPNODE_WERROR=ON
cd build
ctest --output-on-failure -j 2 --timeout 300
