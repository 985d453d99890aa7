#!/usr/bin/env bash
# Sync precision benchmark (issue #20): runs the system test matrix Sync/SyncPrecision.* (two
# senders of one live feed on one NTP clock, the second 10 ms offset; 256/1024-frame periods,
# start staggers 0/0.137/2 s, PCMU+L16 and L16+L16, a 50 ms device freeze and a 150 ms loop
# stall) RUNS times and
# prints, per case, the distribution of the measured lag (goal 480 frames) and how many runs
# were within +-1 frame.
# Usage: tools/bench_sync.sh [RUNS] [BUILD_DIR]   (default 10 runs, build/; about 15 s per run
# and case: 10 runs take about 35 minutes)
set -euo pipefail
cd "$(dirname "$0")/.."
runs="${1:-10}"
build="${2:-build}"
log="$(mktemp)"
"$build/tests/system_tests" --gtest_filter='Sync/SyncPrecision.*' --gtest_repeat="$runs" \
  2>&1 | tee "$log" | grep -E '^sync:' || true
python3 - "$log" <<'PY'
import re, statistics, sys
cases = {}
for line in open(sys.argv[1]):
    m = re.match(r'sync: period (\d+), (\w+) started ([\d.]+) s later(, device frozen 50 ms|, loop stalled 150 ms)?: lag ([-\d.]+)', line)
    if m:
        extra = {None: '', ', device frozen 50 ms': ' xrun', ', loop stalled 150 ms': ' loop stall'}[m[4]]
        key = f"{m[2]:4s} period {int(m[1]):4d} stagger {float(m[3]):5.3f} s{extra}"
        cases.setdefault(key, []).append(float(m[5]))
print(f"{'case':40s} {'runs':>4s} {'min':>8s} {'median':>8s} {'max':>8s} {'|lag-480|<=1':>12s}")
for key, lags in sorted(cases.items()):
    ok = sum(abs(l - 480) <= 1 for l in lags)
    print(f"{key:40s} {len(lags):4d} {min(lags):8.2f} {statistics.median(lags):8.2f} {max(lags):8.2f} {ok:8d}/{len(lags)}")
PY
rm -f "$log"
