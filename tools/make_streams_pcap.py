#!/usr/bin/env python3
"""Writes a pcap of N concurrent RTP streams to one receiver (issue #18's scale benchmark input).

Every stream goes from SRC:(40000 + i) to DST:PORT (default 10.77.0.2 -> 10.77.0.1, the veth pair
tools/bench_scale.sh makes) with its own SSRC (0x5CA1E000 + i),
20 ms packets for the whole duration. Stream i starts i * 20 ms / N after the first, so the
receiver sees an even packet rate, as from N independent senders. Ethernet + IPv4 + UDP (UDP
checksum 0, which RFC 768 allows on IPv4), pcap with microsecond times, capture times from
--start. Deterministic: the same arguments write the same bytes.

  pcmu: payload type 0, 160 bytes of a 1 kHz tone per packet (G.711 mu-law, ITU-T G.711).
  opus: payload type 111, the packets of an Ogg Opus file (RFC 7845) made by ffmpeg/libopus
        (48 kHz stereo, 20 ms frames), looped if the stream is longer than the file.

Usage: make_streams_pcap.py OUT.pcap --streams N [--seconds 60] [--codec pcmu|opus]
                            [--port 5004] [--opus-file FILE.opus] [--start EPOCH_S]
                            [--src 10.77.0.2] [--dst 10.77.0.1] [--dst-mac 02:00:00:00:00:01]
"""
import argparse
import math
import socket
import os
import struct
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from make_calls_pcap import ulaw  # noqa: E402  (the same G.711 encoder as the calls benchmark)


def pcmu_payloads():
    """One 20 ms packet of a -6 dBFS 1 kHz tone: 1 kHz at 8 kHz repeats every 8 samples, so the
    same 160 bytes continue the tone in every packet."""
    tone = bytes(ulaw(int(16383 * math.sin(2 * math.pi * 1000 * n / 8000))) for n in range(160))
    return [tone]


def ogg_opus_packets(path):
    """The audio packets of an Ogg Opus file (RFC 7845: the first two packets are the OpusHead
    and OpusTags headers). Ogg framing per RFC 3533: a page is 'OggS', version, flags, granule,
    serial, sequence, CRC, segment count, the lacing values, then the segments; a packet is the
    run of segments up to one shorter than 255."""
    data = open(path, 'rb').read()
    packets, partial, pos = [], b'', 0
    while pos + 27 <= len(data):
        if data[pos:pos + 4] != b'OggS':
            sys.exit(f'make_streams_pcap: {path}: not an Ogg page at byte {pos}')
        count = data[pos + 26]
        lacing = data[pos + 27:pos + 27 + count]
        body = pos + 27 + count
        for length in lacing:
            partial += data[body:body + length]
            body += length
            if length < 255:
                packets.append(partial)
                partial = b''
        pos = body
    if len(packets) < 3 or not packets[0].startswith(b'OpusHead'):
        sys.exit(f'make_streams_pcap: {path}: not an Ogg Opus file')
    return packets[2:]


def ip_checksum(header):
    total = sum(struct.unpack('!10H', header))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument('out')
    ap.add_argument('--streams', type=int, required=True)
    ap.add_argument('--seconds', type=float, default=60.0)
    ap.add_argument('--codec', choices=['pcmu', 'opus'], default='pcmu')
    ap.add_argument('--port', type=int, default=5004)
    ap.add_argument('--opus-file')
    ap.add_argument('--start', type=float, default=1_700_000_000.0)
    ap.add_argument('--src', default='10.77.0.2')
    ap.add_argument('--dst', default='10.77.0.1')
    ap.add_argument('--dst-mac', default='02:00:00:00:00:01', help="the receiving interface's MAC")
    a = ap.parse_args()
    if not 1 <= a.streams <= 20000:
        sys.exit('make_streams_pcap: --streams must be 1..20000')
    if a.codec == 'opus':
        if not a.opus_file:
            sys.exit('make_streams_pcap: --codec opus needs --opus-file')
        payloads, pt, ticks = ogg_opus_packets(a.opus_file), 111, 960
    else:
        payloads, pt, ticks = pcmu_payloads(), 0, 160
    packets = int(round(a.seconds / 0.02))
    src_ip, dst_ip = socket.inet_aton(a.src), socket.inet_aton(a.dst)
    ether = bytes.fromhex(a.dst_mac.replace(':', '')) + bytes.fromhex('020000000002') + b'\x08\x00'
    ip_cache = {}

    def ip_header(total_len):
        if total_len not in ip_cache:
            h = struct.pack('!BBHHHBBH4s4s', 0x45, 0, total_len, 0, 0x4000, 64, 17, 0, src_ip, dst_ip)
            ip_cache[total_len] = h[:10] + struct.pack('!H', ip_checksum(h)) + h[12:]
        return ip_cache[total_len]

    start_us = int(round(a.start * 1e6))
    with open(a.out, 'wb') as f:
        f.write(struct.pack('<IHHiIII', 0xA1B2C3D4, 2, 4, 0, 0, 65535, 1))
        for k in range(packets):
            payload = payloads[k % len(payloads)]
            for i in range(a.streams):
                t_us = start_us + k * 20000 + i * 20000 // a.streams
                rtp = struct.pack('!BBHII', 0x80, pt | (0x80 if k == 0 else 0), (1000 + k) & 0xFFFF,
                                  (i * 7919 + k * ticks) & 0xFFFFFFFF, 0x5CA1E000 + i)
                udp_len = 8 + len(rtp) + len(payload)
                udp = struct.pack("!HHHH", 40000 + i, a.port, udp_len, 0)
                frame = ether + ip_header(20 + udp_len) + udp + rtp + payload
                f.write(struct.pack('<IIII', t_us // 1_000_000, t_us % 1_000_000, len(frame), len(frame)))
                f.write(frame)


if __name__ == '__main__':
    main()
