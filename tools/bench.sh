#!/usr/bin/env bash
# Peer table (issue #18): CPU per second of audio and loop wake-ups of rtpnode against GStreamer
# receiving the same Opus 48 kHz stereo 20 ms streams from rtpsend, on a JACK dummy server
# (48 kHz, 256-frame periods), in one run. CPU is the receiver process's run time from
# /proc/PID/task/*/schedstat (ns) over the measured window, divided by its length; wake-ups are
# the context switches of rtpnode's loop thread (the main thread) per second. Wall-clock figures
# on a shared machine are noisy: compare rows of one run. Not a test.
# Usage: tools/bench.sh [SECONDS] [BUILD_DIR]      (default 20 s, build/)
#   RTPNODE=path/to/rtpnode tools/bench.sh  measures another rtpnode binary (before/after).
set -euo pipefail
cd "$(dirname "$0")/.."
secs="${1:-20}"
build="${2:-build}"
rtpnode="${RTPNODE:-$build/node/rtpnode}"
rtpsend="$build/tools/rtpsend"
export JACK_NO_AUDIO_RESERVATION=1 JACK_NO_START_SERVER=1 JACK_DEFAULT_SERVER="bench-$$"
jackd -n "$JACK_DEFAULT_SERVER" --no-realtime -d dummy -r 48000 -p 256 -C 2 -P 2 >/dev/null 2>&1 &
jack=$!
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  sleep 0.5
  kill "$jack" 2>/dev/null || true
}
trap cleanup EXIT
jack_wait -w -t 10 >/dev/null 2>&1
port=$((30000 + $$ % 20000 * 2))

run_ns() {  # PID -> total run time of its threads, ns
  cat /proc/"$1"/task/*/schedstat 2>/dev/null | awk '{s += $1} END {printf "%.0f", s}'
}
switches() { awk '/ctxt_switches/ {s += $2} END {print s}' "/proc/$1/task/$1/status"; }

# measure NAME PID STREAMS: prints one row; waits 4 s to settle, then `secs`.
measure() {
  local name=$1 pid=$2 streams=$3
  sleep 4
  local c0 s0 c1 s1
  c0=$(run_ns "$pid"); s0=$(switches "$pid")
  sleep "$secs"
  c1=$(run_ns "$pid"); s1=$(switches "$pid")
  awk -v n="$name" -v c=$((c1 - c0)) -v s=$((s1 - s0)) -v t="$secs" -v k="$streams" 'BEGIN {
    a = k > 0 ? c / 1e6 / t / k : c / 1e6 / t
    w = n ~ /^rtpnode/ ? sprintf("%.1f", s / t) : "-"
    printf "%-58s %7d %9.1f %12.2f %16s\n", n, k, c / 1e6 / t, a, w }'
}


printf '%-58s %7s %9s %12s %16s\n' receiver streams "CPU ms/s" "ms/s/stream" "loop wakes/s"
# rtpnode idle
"$rtpnode" --host-api jack --listen "127.0.0.1:$port" --payload 96=opus/48000/2 --quiet >/dev/null 2>&1 &
node=$!; pids+=($node)
measure "rtpnode idle" "$node" 0
# rtpnode, one stream and 16 (one rtpsend process per stream count; sender not measured)
for n in 1 16; do
  for ((i = 0; i < n; ++i)); do
    "$rtpsend" --tone "$((440 + 40 * i))" --codec opus --channels 2 --pt 96 \
      --dest "127.0.0.1:$port" --duration "$((secs + 8))s" --no-bye --ssrc $((1000 + i)) \
      >/dev/null 2>&1 &
    pids+=($!)
  done
  measure "rtpnode --payload 96=opus/48000/2" "$node" "$n"
  sleep 6
done
kill "$node" 2>/dev/null || true
sleep 1
# GStreamer, the two settings of the issue: a 20 ms jitter buffer with the default sink, and its
# most aggressive (5 ms, sink buffer 10.7 ms).
caps="application/x-rtp,media=audio,clock-rate=48000,encoding-name=OPUS,payload=96"
for setting in "latency=20|" "latency=5|buffer-time=10667 latency-time=5333"; do
  jb=${setting%%|*}; sink=${setting#*|}
  gst-launch-1.0 -q udpsrc port="$port" caps="$caps" ! rtpjitterbuffer $jb ! rtpopusdepay ! \
    opusdec ! audioconvert ! audioresample ! jackaudiosink connect=none $sink >/dev/null 2>&1 &
  gst=$!; pids+=($gst)
  "$rtpsend" --tone 440 --codec opus --channels 2 --pt 96 --dest "127.0.0.1:$port" \
    --duration "$((secs + 8))s" --no-bye >/dev/null 2>&1 &
  pids+=($!)
  measure "GStreamer rtpjitterbuffer $jb${sink:+ sink $sink}" "$gst" 1
  kill "$gst" 2>/dev/null || true
  sleep 5
done
