#!/usr/bin/env bash
# Issue #14's memory bound for captures: `rtpnode --pcap` streams a capture, so its memory
# follows what plays at once (calls, TCP connections under reassembly), not the file's size.
#
# Writes two captures of the same shape -- one PCMU call's RTP (20 s, 20 ms packets) amid
# 1400-byte UDP datagrams to a port nobody plays and TCP segments of garbage over 1000
# connections (more than the 256 the SIP-over-TCP reassembly keeps) -- one of about 10 MB and
# one of about 1 GB (SIZE_MB), replays each to a WAV file and prints the peak RSS of each
# (GNU time's "Maximum resident set size") with the records and the wall time.
#
# Usage: tools/bench_capture_memory.sh [BUILD_DIR] [SIZE_MB]   (defaults: build 1024)
set -euo pipefail
BUILD=${1:-build}
SIZE_MB=${2:-1024}
RTPNODE="$BUILD/node/rtpnode"
[ -x "$RTPNODE" ] || { echo "bench_capture_memory: no $RTPNODE (build first)" >&2; exit 2; }
command -v /usr/bin/time >/dev/null || { echo "bench_capture_memory: needs GNU time (apt-get install time)" >&2; exit 2; }
DIR=$(mktemp -d /tmp/rtpnode-capmem.XXXXXX)
trap 'rm -rf "$DIR"' EXIT

write_capture() {  # FILE MEGABYTES
  python3 - "$1" "$2" <<'EOF'
import math, struct, sys
path, megabytes = sys.argv[1], int(sys.argv[2])
seconds = 20.0
def ipv4(proto, src, dst, body):
    hdr = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(body), 0, 0, 64, proto, 0,
                      bytes(src), bytes(dst))
    return hdr + body
def udp(sport, dport, payload):
    return struct.pack("!HHHH", sport, dport, 8 + len(payload), 0) + payload
def tcp(sport, dport, seq, payload):
    return struct.pack("!HHIIBBHHH", sport, dport, seq, 0, 0x50, 0x18, 65535, 0, 0) + payload
junk = bytes((i * 7) & 0xff for i in range(1400))
with open(path, "wb") as f:
    # pcap, nanosecond times, LINKTYPE_RAW (101)
    f.write(struct.pack("<IHHiIII", 0xa1b23c4d, 2, 4, 0, 0, 65535, 101))
    def record(t, frame):
        f.write(struct.pack("<IIII", int(t), int(round((t % 1) * 1e9)) % 1000000000,
                            len(frame), len(frame)))
        f.write(frame)
    packets = int(seconds / 0.02)
    junk_total = megabytes * 1024 * 1024 // 1450
    per_packet = max(0, junk_total // packets)
    seqs = {}
    t0, n = 1_700_000_000.0, 0
    for k in range(packets):
        t = t0 + k * 0.02
        # RTP: PCMU, a 1 kHz tone (mu-law of a sine, 160 samples)
        samples = bytes(0xff ^ (0x70 if (i // 4) % 2 else 0x00) for i in range(160))
        rtp = struct.pack("!BBHII", 0x80, 0, k & 0xffff, k * 160, 0x12345678) + samples
        record(t, ipv4(17, [10, 0, 0, 1], [10, 0, 0, 2], udp(40000, 5004, rtp)))
        for j in range(per_packet):
            tj = t + (j + 1) * 0.02 / (per_packet + 1)
            if j % 2:
                record(tj, ipv4(17, [10, 0, 0, 3], [10, 0, 0, 4], udp(50000, 9, junk)))
            else:
                port = 20000 + (n % 1000)
                seq = seqs.get(port, 1)
                seqs[port] = seq + len(junk)
                record(tj, ipv4(6, [10, 0, 0, 5], [10, 0, 0, 6], tcp(port, 5060, seq, junk)))
            n += 1
EOF
}

run() {  # CAPTURE -> "peak_kB seconds"
  /usr/bin/time -f "%M %e" -o "$DIR/time" "$RTPNODE" --pcap "$1" --listen 0.0.0.0:5004 \
    --output "$DIR/out.wav" --quiet 2> "$DIR/node.log" > /dev/null
  cat "$DIR/time"
}

printf '%-10s %12s %10s %14s %10s\n' capture "size (MB)" records "peak RSS (MB)" "wall (s)"
for mb in 10 "$SIZE_MB"; do
  write_capture "$DIR/c.pcap" "$mb"
  size=$(( $(stat -c %s "$DIR/c.pcap") / 1048576 ))
  read -r kb secs < <(run "$DIR/c.pcap")
  records=$(grep -o 'in [0-9]* records' "$DIR/node.log" | awk '{print $2}')
  printf '%-10s %12s %10s %14.1f %10s\n' "${mb} MB" "$size" "$records" "$(awk -v k="$kb" 'BEGIN { print k / 1024 }')" "$secs"
  rm -f "$DIR/c.pcap"
done
