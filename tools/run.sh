#!/usr/bin/env bash
# The main job: installs what is missing, builds, and plays a real recording streamed by rtpsend
# through rtpnode, showing rtpnode's live statistics, then stops cleanly.
# Without a sound card a JACK dummy server (real-time paced) stands in for one.
#   tools/run.sh [SECONDS]      (default 12)
set -euo pipefail
cd "$(dirname "$0")/.."
SECONDS_TO_PLAY="${1:-12}"
tools/setup.sh
tools/build.sh >/dev/null

RECORDING=/usr/share/asterisk/sounds/en_US_f_Allison/demo-congrats.wav
PORT=5004
NODE_ARGS=(--listen 127.0.0.1:$PORT --payload 96=opus/48000/2 --duration "$((SECONDS_TO_PLAY + 2))s"
           --stats-json build/demo-stats.json)
JACKD_PID=""
cleanup() {
  [ -n "$JACKD_PID" ] && kill "$JACKD_PID" 2>/dev/null && wait "$JACKD_PID" 2>/dev/null || true
}
trap cleanup EXIT

if [ -z "$(cat /proc/asound/cards 2>/dev/null | grep -v 'no soundcards')" ]; then
  echo "run: no sound card: starting a JACK dummy server (48 kHz, 256-frame periods)" >&2
  export JACK_NO_AUDIO_RESERVATION=1 JACK_NO_START_SERVER=1 JACK_DEFAULT_SERVER="rtpnode-demo-$$"
  RT=(--no-realtime)
  [ "$(id -u)" -eq 0 ] && RT=(-R -P 70)
  jackd -n "$JACK_DEFAULT_SERVER" "${RT[@]}" -d dummy -r 48000 -p 256 -C 2 -P 2 >build/demo-jackd.log 2>&1 &
  JACKD_PID=$!
  jack_wait -w -t 10 >/dev/null 2>&1
  NODE_ARGS+=(--host-api jack)
fi

build/node/rtpnode "${NODE_ARGS[@]}" &
NODE_PID=$!
sleep 1
build/tools/rtpsend "$RECORDING" --dest 127.0.0.1:$PORT --codec opus --pt 96 --channels 2 \
  --duration "${SECONDS_TO_PLAY}s" --sdp build/demo.sdp
wait "$NODE_PID"
echo "run: statistics in build/demo-stats.json" >&2
