#!/usr/bin/env bash
# Multi-room sync benchmark (issue #19): runs the system test
# MultiRoom.NodesOnDifferentPathsPlayEachInstantAtTheSameFrame RUNS times (four rtpnodes with
# --sync absolute on one JACK dummy server, each fed the same live feed by its own rtpsend
# over its own path: 1 ms; 20-40 ms; 80 ms with 2 % loss, started 20 s late; and a node whose
# wall clock is 5 ms ahead) and prints, per room, the distribution over all runs of where its
# impulses land against room 1's (frames at 48 kHz; room 4's goal is -240), and room 1's DAC
# instant against capture + 200 ms.
# Usage: tools/bench_multiroom.sh [RUNS] [BUILD_DIR]   (default 5 runs, build/; 35 s per run)
set -euo pipefail
cd "$(dirname "$0")/.."
runs="${1:-5}"
build="${2:-build}"
log="$(mktemp)"
"$build/tests/system_tests" --gtest_filter='MultiRoom.NodesOnDifferentPathsPlayEachInstantAtTheSameFrame' \
  --gtest_repeat="$runs" 2>&1 | tee "$log" | grep -E 'vs room1|DAC -|FAILED|OK \]' || true
python3 - "$log" <<'PY'
import re, statistics, sys
rooms, dac = {}, []
for line in open(sys.argv[1]):
    m = re.match(r'(room\d) vs room1: p50 ([-+\d.]+) frames, min ([-+\d.]+), max ([-+\d.]+)', line)
    if m:
        rooms.setdefault(m[1], []).append(tuple(float(x) for x in m.group(2, 3, 4)))
    m = re.match(r'room1: DAC - \(capture \+ 200 ms\): p50 ([-+\d.]+) ms, ([-+\d.]+)\.\.([-+\d.]+)', line)
    if m:
        dac.append(tuple(float(x) for x in m.group(1, 2, 3)))
print(f"{'room':6s} {'runs':>4s} {'p50 of p50':>10s} {'worst min':>10s} {'worst max':>10s}")
for room, v in sorted(rooms.items()):
    print(f"{room:6s} {len(v):4d} {statistics.median(x[0] for x in v):10.2f} "
          f"{min(x[1] for x in v):10.2f} {max(x[2] for x in v):10.2f}")
if dac:
    print(f"room1 DAC - (T + 200 ms): p50 of p50 {statistics.median(x[0] for x in dac):+.3f} ms, "
          f"range {min(x[1] for x in dac):+.3f}..{max(x[2] for x in dac):+.3f} ms")
PY
rm -f "$log"
