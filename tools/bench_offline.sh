#!/usr/bin/env bash
# Issue #14's offline-render benchmark: a capture of 100 concurrent SIP/G.711 calls
# (tools/make_calls_pcap.py: 60 s of 20 ms PCMU both ways, 600 000 RTP packets, 138 MB) rendered by
# `rtpnode --pcap FILE --output mix.wav --record DIR --report FILE --max-sources 256` -- every call
# found by SIP/SDP,
# jitter-buffered, decoded, mixed and written as one stereo WAV per call -- as fast as the CPU
# allows. Prints, per setting, the wall time, the speed against real time (capture seconds / wall
# seconds) and the peak RSS (GNU time); then the same calls over 10 s and 120 s, whose peak RSS
# shows the memory follows the calls, not the capture's length. Target: >= 50x real time.
#
# Usage: tools/bench_offline.sh [BUILD_DIR] [CALLS]   (defaults: build 100)
set -euo pipefail
BUILD=${1:-build}
CALLS=${2:-100}
RTPNODE="$BUILD/node/rtpnode"
[ -x "$RTPNODE" ] || { echo "bench_offline: no $RTPNODE (build first)" >&2; exit 2; }
command -v /usr/bin/time >/dev/null || { echo "bench_offline: needs GNU time (apt-get install time)" >&2; exit 2; }
HERE=$(cd "$(dirname "$0")" && pwd)
DIR=$(mktemp -d /tmp/rtpnode-offline.XXXXXX)
trap 'rm -rf "$DIR"' EXIT

render() {  # LABEL PCAP CAPTURE_SECONDS ARGS...
  local label=$1 pcap=$2 seconds=$3
  shift 3
  rm -rf "$DIR/rec" && mkdir "$DIR/rec"
  /usr/bin/time -f "%e %M" -o "$DIR/time" "$RTPNODE" --pcap "$pcap" --output "$DIR/mix.wav" \
    --record "$DIR/rec" --report "$DIR/report.json" --max-sources 256 "$@" 2>"$DIR/log" || {
    echo "bench_offline: rtpnode failed ($label):" >&2; tail -5 "$DIR/log" >&2; exit 1; }
  read -r wall rss <"$DIR/time"
  local calls recordings
  calls=$(python3 -c 'import json,sys; print(len(json.load(open(sys.argv[1]))["calls"]))' "$DIR/report.json")
  recordings=$(ls "$DIR/rec" | wc -l)
  printf '%-44s %6s %8s %8.1fx %9s %6s %6s\n' "$label" "$seconds" "$wall" \
    "$(python3 -c "print($seconds / max($wall, 0.01))")" "$((rss / 1024)) MB" "$calls" "$recordings"
}

python3 "$HERE/make_calls_pcap.py" "$DIR/calls60.pcap" --calls "$CALLS" --seconds 60
python3 "$HERE/make_calls_pcap.py" "$DIR/calls10.pcap" --calls "$CALLS" --seconds 10
python3 "$HERE/make_calls_pcap.py" "$DIR/calls120.pcap" --calls "$CALLS" --seconds 120
# The captures hold 1 s of call set-up (staggered starts) beyond the media.
printf '%-44s %6s %8s %9s %9s %6s %6s\n' "setting ($CALLS calls)" "cap s" "wall s" "speed" "peak RSS" "calls" "WAVs"
render "8 kHz device, --latency 100ms" "$DIR/calls60.pcap" 61 --rate 8000 --latency 100ms
render "8 kHz device, --latency auto (trims run)" "$DIR/calls60.pcap" 61 --rate 8000
render "48 kHz device, --latency 100ms" "$DIR/calls60.pcap" 61 --latency 100ms
render "48 kHz device, --latency auto" "$DIR/calls60.pcap" 61
render "8 kHz, --latency 100ms, 10 s of calls" "$DIR/calls10.pcap" 11 --rate 8000 --latency 100ms
render "8 kHz, --latency 100ms, 120 s of calls" "$DIR/calls120.pcap" 121 --rate 8000 --latency 100ms
