#!/usr/bin/env bash
# Issue #18's scale benchmark: how many streams rtpnode plays at once on this machine. N RTP
# streams (tools/make_streams_pcap.py: 20 ms packets, one SSRC and source port each, evenly
# interleaved) are replayed from a pcap by tcpreplay at their packet rate into one end of a veth
# pair (packets injected on `lo` never reach its IP stack here), so no sender process competes
# per stream; rtpnode (--listen on the other end, JACK dummy at 48 kHz and
# 256-frame periods, a fixed 60 ms playout delay: what is measured is capacity, not how the
# adaptive target follows tcpreplay's own timing jitter) plays them all. One row per (codec, N): sources seen, packets received and
# lost, packets late at the playout delay, underruns, JACK xruns, rtpnode's CPU (one core = 100 %,
# over its whole run) and peak RSS, how long tcpreplay took to send the pcap (its pacing: should
# equal SECONDS), and whether the run was clean (every source, 0 late, 0 underruns). The last line
# per codec names the largest clean N. Targets (issue #18): >= 256 Opus 48 kHz stereo streams,
# >= 1000 PCMU streams, 60 s each, on 2 cores. Not a test: figures for the notes.
#
# Usage: tools/bench_scale.sh [SECONDS] [BUILD_DIR] [OPUS_COUNTS] [PCMU_COUNTS]
#   defaults: 60 build "64 128 256 384" "250 500 1000"
#   RTPNODE_ARGS="--rt-priority 60" tools/bench_scale.sh ...  adds flags to every rtpnode run.
# Needs root (the veth pair; tcpreplay, installed with apt-get when missing), ffmpeg, GNU time.
# Pacing: tcpreplay sends at a fixed packet rate (--pps = 50 x N; the pcap's packets are evenly
# spaced, so that is their capture timing) with --timer=gtod (a busy wait: it spins one of the 2
# cores). Not at the capture times: tcpreplay 4.4's timestamp mode sleeps each packet's delta
# from the previous one, so its oversleeps add up (appneta/tcpreplay#724, fixed in 4.5.3 by
# PR #1004; Debian 12 has 4.4.3): 20 s took 20.3-22.5 s here, every stream then looked 1.5-12 %
# slow, and the late packets and underruns were the replayer's. Its --pps mode measures against
# the start of the replay and catches up.
set -euo pipefail
cd "$(dirname "$0")/.."
secs="${1:-60}"
build="${2:-build}"
opus_counts="${3:-64 128 256 384}"
pcmu_counts="${4:-250 500 1000}"
rtpnode="${RTPNODE:-$build/node/rtpnode}"
[ -x "$rtpnode" ] || { echo "bench_scale: no $rtpnode (build first)" >&2; exit 2; }
[ "$(id -u)" = 0 ] || { echo "bench_scale: needs root (a veth pair, tcpreplay)" >&2; exit 2; }
command -v tcpreplay >/dev/null ||
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q tcpreplay >/dev/null
command -v /usr/bin/time >/dev/null || { echo "bench_scale: needs GNU time" >&2; exit 2; }
dir=$(mktemp -d /tmp/rtpnode-scale.XXXXXX)
export JACK_NO_AUDIO_RESERVATION=1 JACK_NO_START_SERVER=1 JACK_DEFAULT_SERVER="scale-$$"
jackd -n "$JACK_DEFAULT_SERVER" -R -P 70 -d dummy -r 48000 -p 256 -C 2 -P 2 >/dev/null 2>&1 &
jack=$!
veth=rsc$$
cleanup() {
  kill "$jack" 2>/dev/null || true
  ip link del "${veth}a" 2>/dev/null || true
  rm -rf "$dir"
}
trap cleanup EXIT
jack_wait -w -t 10 >/dev/null 2>&1
# ${veth}a: where tcpreplay injects; ${veth}b: 10.77.0.1, where rtpnode listens.
ip link add "${veth}a" type veth peer name "${veth}b"
ip addr add 10.77.0.1/24 dev "${veth}b"
ip link set "${veth}a" up
ip link set "${veth}b" up
mac=$(cat "/sys/class/net/${veth}b/address")
port=$((20000 + $$ % 10000 * 2))  # 20000..39998; the streams come from 40000 + i

ffmpeg -loglevel error -f lavfi -i "sine=frequency=440:duration=$((secs + 2))" -ac 2 -ar 48000 \
  -c:a libopus -b:a 64k -frame_duration 20 "$dir/tone.opus"

printf '%-5s %6s %8s %10s %8s %6s %9s %6s %7s %8s %7s %s\n' codec N sources received lost late \
  underruns xruns "CPU %" "RSS MB" "sent s" clean
for codec in opus pcmu; do
  counts=$([ "$codec" = opus ] && echo "$opus_counts" || echo "$pcmu_counts")
  payload=$([ "$codec" = opus ] && echo "111=opus/48000/2" || echo "0=pcmu/8000/1")
  best=0
  for n in $counts; do
    python3 tools/make_streams_pcap.py "$dir/s.pcap" --streams "$n" --seconds "$secs" \
      --codec "$codec" --port "$port" --opus-file "$dir/tone.opus" --dst-mac "$mac"
    stats="$dir/stats-$codec-$n.json"
    /usr/bin/time -f "%U %S %e %M" -o "$dir/time" "$rtpnode" --host-api jack ${RTPNODE_ARGS:-} \
      --listen "10.77.0.1:$port" --payload "$payload" --max-sources 1024 \
      --max-sources-per-host 1024 --latency 60ms --stats-json "$stats" --stats-interval 1s \
      --duration "$((secs + 6))s" --quiet >"$dir/node.log" 2>&1 &
    node=$!
    sleep 2
    tcpreplay --timer=gtod --pps="$((50 * n))" -i "${veth}a" "$dir/s.pcap" >"$dir/tcpreplay.log" 2>&1 || {
      echo "bench_scale: tcpreplay failed:" >&2; tail -3 "$dir/tcpreplay.log" >&2; exit 1; }
    wait "$node" || { echo "bench_scale: rtpnode failed:" >&2; tail -5 "$dir/node.log" >&2; exit 1; }
    read -r user sys wall rss <"$dir/time"
    # tcpreplay's own figure: how long it took to send what lasts $secs s (pacing fidelity).
    sent_s=$(grep -o 'sent in [0-9.]* seconds' "$dir/tcpreplay.log" | awk '{print $3}' | head -1)
    row=$(python3 - "$stats" "$n" "$user" "$sys" "$wall" "$rss" <<'EOF'
import json, sys
s = json.load(open(sys.argv[1]))
n, user, sys_, wall, rss = int(sys.argv[2]), *map(float, sys.argv[3:6]), int(sys.argv[6])
node = s['node']
seen = node.get('sources_total', 0)
late, under = node.get('packets_late', 0), node.get('underruns', 0)
clean = seen >= n and late == 0 and under == 0
print(f"{seen} {node.get('packets_received', 0)} {node.get('packets_lost', 0)} {late} {under} "
      f"{node.get('xruns', 0)} {100 * (user + sys_) / wall:.1f} {rss / 1024:.0f} "
      f"{'yes' if clean else 'no'}")
EOF
)
    read -r seen received lost late under xruns cpu rssmb clean <<<"$row"
    printf '%-5s %6d %8d %10d %8d %6d %9d %6d %7s %8s %7s %s\n' "$codec" "$n" "$seen" "$received" \
      "$lost" "$late" "$under" "$xruns" "$cpu" "$rssmb" "${sent_s:-?}" "$clean"
    [ "$clean" = yes ] && best=$n
    rm -f "$dir/s.pcap"
  done
  echo "$codec: largest clean N $best"
done
