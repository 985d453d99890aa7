#!/usr/bin/env python3
"""Writes a pcap of N concurrent SIP calls with G.711 RTP both ways (issue #14's benchmark input).

Each call: INVITE with an SDP offer (PCMU, PCMA, telephone-event), 180, 200 OK with the answer,
ACK, then 20 ms RTP packets from caller to callee and back for the whole duration, then BYE and
200 OK. Calls start staggered over the first second; every call has its own addresses and ports
and its own tone (so a recording can be checked against its call). Ethernet + IPv4 + UDP, pcap
with microsecond times. Deterministic: the same arguments write the same bytes.

Usage: make_calls_pcap.py OUT.pcap [--calls 100] [--seconds 60] [--codec pcmu|pcma] [--start EPOCH_S]
"""
import argparse
import heapq
import math
import struct


def ulaw(sample):
    """ITU-T G.711 mu-law of a 16-bit sample (the standard segment encoding)."""
    bias, clip = 0x84, 32635
    sign = 0x80 if sample < 0 else 0
    mag = min(abs(sample), clip) + bias
    exponent = 7
    mask = 0x4000
    while exponent > 0 and not mag & mask:
        exponent -= 1
        mask >>= 1
    mantissa = (mag >> (exponent + 3)) & 0x0F
    return ~(sign | (exponent << 4) | mantissa) & 0xFF


def alaw(sample):
    """ITU-T G.711 A-law of a 16-bit sample."""
    sign = 0x80 if sample >= 0 else 0
    mag = min(abs(sample) >> 3, 0xFFF) if sample >= 0 else min((-sample - 1) >> 3, 0xFFF)
    if mag < 32:
        code = mag >> 1
    else:
        exponent = mag.bit_length() - 5
        code = (exponent << 4) | ((mag >> exponent) & 0x0F)
    return (sign | code) ^ 0x55


def ip_checksum(header):
    total = sum(struct.unpack("!10H", header))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF


class Writer:
    def __init__(self, path, t0):
        self.t0 = t0
        self.f = open(path, "wb")
        self.f.write(struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 1))
        self.ident = 0

    def udp(self, t, src, sport, dst, dport, payload):
        self.ident = (self.ident + 1) & 0xFFFF
        udp = struct.pack("!HHHH", sport, dport, 8 + len(payload), 0) + payload
        ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(udp), self.ident, 0, 64, 17, 0,
                         bytes(src), bytes(dst))
        ip = ip[:10] + struct.pack("!H", ip_checksum(ip)) + ip[12:]
        frame = b"\x02\x00\x00\x00\x00\x02" + b"\x02\x00\x00\x00\x00\x01" + b"\x08\x00" + ip + udp
        sec, usec = divmod(int(round((self.t0 + t) * 1e6)), 1000000)
        self.f.write(struct.pack("<IIII", sec, usec, len(frame), len(frame)) + frame)

    def close(self):
        self.f.close()


def sdp(ip, port, session):
    a = ".".join(map(str, ip))
    return (f"v=0\r\no=- {session} 1 IN IP4 {a}\r\ns=-\r\nc=IN IP4 {a}\r\nt=0 0\r\n"
            f"m=audio {port} RTP/AVP 0 8 101\r\na=rtpmap:0 PCMU/8000\r\na=rtpmap:8 PCMA/8000\r\n"
            f"a=rtpmap:101 telephone-event/8000\r\na=fmtp:101 0-15\r\na=ptime:20\r\n"
            f"a=sendrecv\r\n")


def sip(first_line, call_id, cseq, frm, to, via, body=""):
    head = (f"{first_line}\r\nVia: SIP/2.0/UDP {via};branch=z9hG4bK{call_id[:8]}{cseq}\r\n"
            f"From: <sip:{frm}>;tag=a{call_id[:6]}\r\nTo: <sip:{to}>\r\nCall-ID: {call_id}\r\n"
            f"CSeq: {cseq}\r\nMax-Forwards: 70\r\n")
    if body:
        head += "Content-Type: application/sdp\r\n"
    return (head + f"Content-Length: {len(body)}\r\n\r\n" + body).encode()


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("out")
    ap.add_argument("--calls", type=int, default=100)
    ap.add_argument("--seconds", type=float, default=60.0)
    ap.add_argument("--codec", choices=["pcmu", "pcma"], default="pcmu")
    ap.add_argument("--start", type=float, default=1767225600.0,
                    help="capture time of the first packet, s since the epoch (2026-01-01)")
    a = ap.parse_args()
    pt = 0 if a.codec == "pcmu" else 8
    enc = ulaw if a.codec == "pcmu" else alaw
    w = Writer(a.out, a.start)
    calls = []
    for i in range(a.calls):
        caller = [10, 1, i // 250, 1 + i % 250]
        callee = [10, 2, i // 250, 1 + i % 250]
        start = i * (1.0 / max(1, a.calls))
        # Two tones per call, distinct per call and side: 300..2900 Hz.
        tones = (300 + (i * 26) % 2600, 350 + (i * 37) % 2550)
        frames = []
        for side in range(2):
            f = tones[side]
            # 160 samples at 8 kHz repeat exactly when f is a multiple of 50 Hz; rounding to it
            # keeps one precomputed period of frames.
            f = 50 * round(f / 50)
            pkt = bytes(enc(int(8000 * math.sin(2 * math.pi * f * n / 8000))) for n in range(160))
            frames.append(pkt)
        calls.append((caller, callee, start, frames, f"bench-{i:04d}@rtpnode.test"))
    events = []
    for i, (caller, callee, start, frames, cid) in enumerate(calls):
        cr, ce = f"caller{i}@10.1.0.1", f"callee{i}@10.2.0.1"
        cport, eport = 20000 + 2 * i, 30000 + 2 * i
        via_r, via_e = ".".join(map(str, caller)) + ":5060", ".".join(map(str, callee)) + ":5060"
        events.append((start, 0, caller, 5060, callee, 5060,
                       sip(f"INVITE sip:{ce} SIP/2.0", cid, "1 INVITE", cr, ce, via_r,
                           sdp(caller, cport, 1000 + i))))
        events.append((start + 0.010, 1, callee, 5060, caller, 5060,
                       sip("SIP/2.0 180 Ringing", cid, "1 INVITE", cr, ce, via_r)))
        events.append((start + 0.020, 2, callee, 5060, caller, 5060,
                       sip("SIP/2.0 200 OK", cid, "1 INVITE", cr, ce, via_r,
                           sdp(callee, eport, 2000 + i))))
        events.append((start + 0.030, 3, caller, 5060, callee, 5060,
                       sip(f"ACK sip:{ce} SIP/2.0", cid, "1 ACK", cr, ce, via_r)))
        end = start + 0.040 + a.seconds
        events.append((end + 0.010, 4, caller, 5060, callee, 5060,
                       sip(f"BYE sip:{ce} SIP/2.0", cid, "2 BYE", cr, ce, via_r)))
        events.append((end + 0.020, 5, callee, 5060, caller, 5060,
                       sip("SIP/2.0 200 OK", cid, "2 BYE", cr, ce, via_e)))
    # SIP first, then the media generated in time order packet by packet (streamed, not held).
    events.sort(key=lambda e: e[0])
    packets = int(a.seconds / 0.020)
    media = []  # heap of (next time, call, side, sequence number)
    for i, (caller, callee, start, frames, cid) in enumerate(calls):
        media.append((start + 0.040, i, 0, 0))
        media.append((start + 0.041, i, 1, 0))
    heapq.heapify(media)
    ei = 0
    ssrc_base = 0x5EED0000
    while media or ei < len(events):
        if ei < len(events) and (not media or events[ei][0] <= media[0][0]):
            t, _, src, sp, dst, dp, payload = events[ei]
            w.udp(t, src, sp, dst, dp, payload)
            ei += 1
            continue
        t, i, side, seq = heapq.heappop(media)
        caller, callee, start, frames, cid = calls[i]
        src, dst = (caller, callee) if side == 0 else (callee, caller)
        sport, dport = ((20000 + 2 * i, 30000 + 2 * i) if side == 0 else
                        (30000 + 2 * i, 20000 + 2 * i))
        header = struct.pack("!BBHII", 0x80, (0x80 if seq == 0 else 0) | pt, seq & 0xFFFF,
                             (seq * 160) & 0xFFFFFFFF, ssrc_base + 2 * i + side)
        w.udp(t, src, sport, dst, dport, header + frames[side])
        if seq + 1 < packets:
            # Times from the sequence number, not accumulated: no rounding drift.
            heapq.heappush(media, (start + 0.040 + side * 0.001 + (seq + 1) * 0.020, i, side,
                                   seq + 1))
    w.close()


if __name__ == "__main__":
    main()
