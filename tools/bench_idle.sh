#!/usr/bin/env bash
# Idle cost benchmark (issue #15): rtpnode with no source on a JACK dummy server (1024-frame
# periods, 48 kHz) for SECONDS; prints the loop thread's wake-ups per second (its voluntary +
# involuntary context switches, /proc/PID/task/PID/status) and the whole process's CPU time per
# second (utime + stime, /proc/PID/stat).
# Usage: tools/bench_idle.sh [SECONDS] [BUILD_DIR] [RTPNODE_FLAGS...]   (default 10 s, build/)
#   e.g. tools/bench_idle.sh 30 build --idle-suspend 1s
set -euo pipefail
cd "$(dirname "$0")/.."
secs="${1:-10}"
build="${2:-build}"
shift $(( $# < 2 ? $# : 2 ))
export JACK_NO_AUDIO_RESERVATION=1 JACK_NO_START_SERVER=1 JACK_DEFAULT_SERVER="bench-idle-$$"
rt=(--no-realtime); [ "$(id -u)" = 0 ] && rt=(-R -P 70)
jackd -n "$JACK_DEFAULT_SERVER" "${rt[@]}" -d dummy -r 48000 -p 1024 -C 2 -P 2 >/dev/null 2>&1 &
jack=$!
trap 'kill $node 2>/dev/null || true; sleep 0.5; kill $jack 2>/dev/null || true' EXIT
jack_wait -w -t 10 >/dev/null 2>&1
"$build/node/rtpnode" --host-api jack --listen "127.0.0.1:$((40000 + $$ % 20000))" --quiet "$@" >/dev/null 2>&1 &
node=$!
sleep 3  # started, idle (and suspended, with --idle-suspend 1s)
switches() { awk '/ctxt_switches/ {s += $2} END {print s}' "/proc/$node/task/$node/status"; }
cpu_ticks() { awk '{print $14 + $15}' "/proc/$node/stat"; }
s0=$(switches); c0=$(cpu_ticks)
sleep "$secs"
s1=$(switches); c1=$(cpu_ticks)
hz=$(getconf CLK_TCK)
awk -v s="$((s1 - s0))" -v c="$((c1 - c0))" -v t="$secs" -v hz="$hz" 'BEGIN {
  printf "idle rtpnode: loop thread %.1f wake-ups/s, process CPU %.1f ms/s\n", s / t, c * 1000 / hz / t }'
