#!/usr/bin/env python3
"""Seed corpora for the fuzz targets, from real senders on loopback (issue #16).

Runs rtpsend, ffmpeg and GStreamer senders one after another against two local UDP sockets
(RTP port P, RTCP port P+1), keeps every datagram, and writes them in each target's input form:
  rtp_header/  one RTP datagram per file          rtcp/  one RTCP compound per file
  decoders/    [format byte] then [len][op=decode][payload] records, one stream per file
  node/        [kind][dt_ms][len][bytes] records: a stream's RTP and RTCP in arrival order
  http/        requests as scrapers and the control endpoint's users send them
  control/     [method byte]PATH?QUERY control requests (0 GET, 1 POST)
  sap/         [len][SAP datagram] records: PipeWire's and an AES67 device's announcements (one
               zlib-compressed, RFC 2974's C bit),
               a change, a deletion (RFC 2974)
Usage: fuzz_seeds.py OUTDIR RTPSEND_BIN
"""
import os
import select
import shutil
import socket
import subprocess
import sys
import time
import zlib

# Format bytes of fuzz_decoders.cpp's kFormats for the codecs the senders use.
DECODER_FORMAT = {"pcmu": 0, "pcma": 1, "g722": 3, "l16": 4, "opus": 7, "g729": 15, "amr": 16,
                  "red-pcmu": 18}


def capture(cmd, port, seconds):
    """Runs `cmd`, returns [(t, is_rtcp, bytes)] received on port / port+1 until it ends."""
    socks = []
    for p in (port, port + 1):
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        s.bind(("127.0.0.1", p))
        socks.append(s)
    got = []
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    end = time.monotonic() + seconds
    t0 = time.monotonic()
    while time.monotonic() < end:
        r, _, _ = select.select(socks, [], [], 0.2)
        for s in r:
            data = s.recv(65536)
            got.append((time.monotonic() - t0, s is socks[1], data))
        if proc.poll() is not None and not r:
            break
    if proc.poll() is None:
        proc.kill()
    proc.wait()
    for s in socks:
        s.close()
    return got


def senders(rtpsend, port):
    dest = f"127.0.0.1:{port}"
    for codec in ("pcmu", "pcma", "g722", "g729", "amr", "l16", "opus"):
        yield f"rtpsend-{codec}", codec, [rtpsend, "--tone", "440", "--codec", codec, "--duration", "1s",
                                           "--rtcp-interval", "200ms", "--dest", dest]
    yield "rtpsend-g729-dtx", "g729", [rtpsend, "--silence", "--codec", "g729", "--dtx", "--ptime", "10ms",
                                       "--duration", "1s", "--rtcp-interval", "200ms", "--dest", dest]
    yield "rtpsend-opus-fec", "opus", [rtpsend, "--tone", "300", "--codec", "opus", "--expected-loss", "10%",
                                       "--duration", "1s", "--rtcp-interval", "200ms", "--dest", dest]
    if shutil.which("ffmpeg"):
        for codec, enc, pt in (("pcmu", "pcm_mulaw", 0), ("opus", "libopus", 96), ("g722", "g722", 9)):
            yield f"ffmpeg-{codec}", codec, ["ffmpeg", "-loglevel", "quiet", "-re", "-f", "lavfi", "-i",
                                             "sine=frequency=500:duration=1", "-ac", "1", "-c:a", enc,
                                             "-payload_type", str(pt), "-f", "rtp", f"rtp://{dest}"]
    if shutil.which("gst-launch-1.0"):
        yield "gst-opus", "opus", ["gst-launch-1.0", "-q", "audiotestsrc", "num-buffers=50", "!", "audioconvert", "!",
                                   "opusenc", "!", "rtpopuspay", "pt=96", "!", "udpsink", "host=127.0.0.1",
                                   f"port={port}"]
        # RFC 2198 redundant PCMU (distance 1), as GStreamer's rtpredenc sends it.
        yield "gst-red-pcmu", "red-pcmu", ["gst-launch-1.0", "-q", "audiotestsrc", "num-buffers=50", "!",
                                           "audioconvert", "!", "audioresample", "!",
                                           "audio/x-raw,rate=8000,channels=1", "!", "mulawenc", "!",
                                           "rtppcmupay", "min-ptime=20000000", "max-ptime=20000000", "!",
                                           "rtpredenc", "pt=98", "distance=1", "!",
                                           "udpsink", "host=127.0.0.1", f"port={port}"]


def main():
    out, rtpsend = sys.argv[1], sys.argv[2]
    for d in ("rtp_header", "rtcp", "decoders", "node", "http", "sap", "control"):
        os.makedirs(os.path.join(out, d), exist_ok=True)
    http = {
        "metrics": b"GET /metrics HTTP/1.1\r\nHost: 127.0.0.1:8080\r\nUser-Agent: Prometheus/2.42\r\nAccept: text/plain\r\n\r\n",
        "stats": b"GET /stats HTTP/1.0\r\n\r\n",
        "gain": b"POST /sources/port:5004/gain?value=-6dB HTTP/1.1\r\nHost: 127.0.0.1:8080\r\n"
                b"Authorization: Bearer token\r\nContent-Length: 0\r\n\r\n",
        "cross-origin": b"POST /sources/ssrc:0x1a2b3c4d/mute HTTP/1.1\r\nHost: localhost:8080\r\nOrigin: http://evil.example\r\n"
                        b"Content-Type: application/x-www-form-urlencoded\r\nContent-Length: 5\r\n\r\na=b&c",
        "keepalive": b"GET /sources HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\nGET /stats HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n",
    }
    for name, data in http.items():
        open(os.path.join(out, "http", name), "wb").write(data)
    def sap(deletion, msg_id, sdp, mime=True, compressed=False):
        head = bytes([0x20 | (0x04 if deletion else 0) | (0x01 if compressed else 0), 0, msg_id >> 8,
                      msg_id & 0xff, 127, 0, 0, 1])
        body = (b"application/sdp\0" if mime else b"") + sdp
        return head + (zlib.compress(body) if compressed else body)
    pipewire = (b"v=0\no=- 1832020296 0 IN IP4 127.0.0.1\ns=PipeWire RTP Stream\nc=IN IP4 224.0.0.56/16\n"
                b"t=0 0\nm=audio 46000 RTP/AVP 127\na=rtpmap:127 L16/48000/2\na=ptime:1\n")
    aes67 = (b"v=0\r\no=- 7 8 IN IP4 192.168.1.20\r\ns=Stage box\r\nc=IN IP4 239.69.1.1/32\r\nt=0 0\r\n"
             b"m=audio 5004 RTP/AVP 98\r\na=rtpmap:98 L24/48000/8\r\na=ptime:1\r\n"
             b"a=ts-refclk:ptp=IEEE1588-2008:00-1D-C1-FF-FE-12-34-56:0\r\na=mediaclk:direct=0\r\n")
    def records(*datagrams):
        return b"".join(len(d).to_bytes(2, "big") + d for d in datagrams)
    saps = {
        "pipewire": records(sap(False, 1, pipewire), sap(False, 1, pipewire), sap(True, 1, pipewire)),
        "aes67": records(sap(False, 9, aes67, mime=False), sap(False, 9, aes67.replace(b"5004", b"5006"))),
        "compressed": records(sap(False, 3, aes67, compressed=True), sap(True, 3, aes67, compressed=True)),
    }
    for name, data in saps.items():
        open(os.path.join(out, "sap", name), "wb").write(data)
    control = {
        "stats": b"\x00/stats", "metrics": b"\x00/metrics", "sources": b"\x00/sources",
        "gain": b"\x01/sources/port:0/gain?value=-6dB", "mute": b"\x01/sources/ssrc:0xa0/mute",
        "unmute": b"\x01/sources/ssrc:0xa0/unmute", "flush": b"\x01/sources/ssrc:0xa1/flush",
        "offset": b"\x01/sources/ssrc:0xa1/offset?value=+12.5ms",
        "route": b"\x01/sources/ssrc:0xa0/route?value=R", "route2": b"\x01/sources/all/route?value=1,2",
    }
    for name, data in control.items():
        open(os.path.join(out, "control", name), "wb").write(data)
    port = 30000 + os.getpid() % 10000 * 2
    total = 0
    for name, codec, cmd in senders(rtpsend, port):
        try:
            got = capture(cmd, port, 5.0)
        except OSError:
            continue
        rtp = [d for _, is_rtcp, d in got if not is_rtcp and len(d) >= 12 and not 192 <= d[1] <= 223]
        rtcp = [d for _, is_rtcp, d in got if is_rtcp or (len(d) >= 2 and 192 <= d[1] <= 223)]
        for i, d in enumerate(rtp[:20]):
            open(os.path.join(out, "rtp_header", f"{name}-{i}"), "wb").write(d)
        for i, d in enumerate(rtcp[:10]):
            open(os.path.join(out, "rtcp", f"{name}-{i}"), "wb").write(d)
        # Decoder input: the payloads (12-byte header, no CSRC/extension from these senders).
        dec = bytearray([DECODER_FORMAT[codec]])
        for d in rtp[:30]:
            p = d[12:][:255]
            dec += bytes([len(p), 0]) + p
        open(os.path.join(out, "decoders", name), "wb").write(bytes(dec))
        # Node input: PCMU streams feed source A (kind 0), the others source B (kind 1).
        node = bytearray()
        last = 0.0
        for t, is_rtcp, d in got[:120]:
            if len(d) > 255:
                continue
            dt = min(255, int((t - last) * 1000))
            last = t
            kind = 2 if is_rtcp else (0 if codec == "pcmu" else 1)
            node += bytes([kind, dt, len(d)]) + d
        open(os.path.join(out, "node", name), "wb").write(bytes(node))
        total += len(got)
        print(f"fuzz seeds: {name}: {len(rtp)} RTP, {len(rtcp)} RTCP", file=sys.stderr)
    if total == 0:
        sys.exit("fuzz seeds: no sender produced a datagram")


if __name__ == "__main__":
    main()
