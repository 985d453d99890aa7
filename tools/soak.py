#!/usr/bin/env python3
"""Soak benchmark (issue #16): rtpnode for SECONDS of real time under loss, jitter, reordering,
duplication, SSRC churn and HTTP control traffic, on a private JACK dummy server.

Every 10 s it samples rtpnode's RSS (/proc/PID/status) and its /stats; at the end it prints the
RSS slope over the second half (least squares, kB per hour) beside the slope of the bytes in use
from malloc (memory_heap_bytes), the range of every source's
arrival-to-DAC delay against its target, the underrun/concealment totals and the counters'
largest values (none may wrap). A benchmark, not a test: it prints figures and exits 0 unless
rtpnode died. Usage: tools/soak.py [SECONDS=1800]   (build first: tools/build.sh)
"""
import json
import os
import random
import signal
import subprocess
import sys
import time
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# RTPNODE / RTPSEND: other binaries (e.g. copies, so that build/ can be rebuilt during a long run)
NODE = os.environ.get("RTPNODE", os.path.join(ROOT, "build/node/rtpnode"))
SEND = os.environ.get("RTPSEND", os.path.join(ROOT, "build/tools/rtpsend"))


def rss_kb(pid, field="VmRSS"):
    """A /proc/PID/status figure in kB: VmRSS (all resident pages), RssAnon (the process's own
    memory) or RssShmem (shared memory: with JACK, the server's segment, ~100 MB, locked)."""
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    return -1


def http(port, method, path):
    req = urllib.request.Request(f"http://127.0.0.1:{port}{path}", method=method)
    with urllib.request.urlopen(req, timeout=3) as r:
        return r.read()


def slope_per_hour(points):
    n = len(points)
    if n < 2:
        return 0.0
    mx = sum(t for t, _ in points) / n
    my = sum(v for _, v in points) / n
    sxx = sum((t - mx) ** 2 for t, _ in points)
    sxy = sum((t - mx) * (v - my) for t, v in points)
    return sxy / sxx * 3600 if sxx else 0.0


def main():
    seconds = float(sys.argv[1]) if len(sys.argv) > 1 else 1800
    name = f"rtpnode-soak-{os.getpid()}"
    env = dict(os.environ, JACK_DEFAULT_SERVER=name, JACK_NO_START_SERVER="1", JACK_NO_AUDIO_RESERVATION="1")
    rt = ["-R", "-P", "70"] if os.geteuid() == 0 else ["--no-realtime"]
    jackd = subprocess.Popen(["jackd", "-n", name, *rt, "-d", "dummy", "-r", "48000", "-p", "1024", "-C", "2", "-P", "2"],
                             env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    subprocess.run(["jack_wait", "-w", "-t", "10"], env=env, stdout=subprocess.DEVNULL, check=True)
    rtp_port, http_port = 40000 + os.getpid() % 5000 * 2, 50000 + os.getpid() % 5000
    node = subprocess.Popen([NODE, "--host-api", "jack", "--client-name", "soak", "--listen", f"127.0.0.1:{rtp_port}",
                             "--http", f"127.0.0.1:{http_port}", "--source-timeout", "2s", "--quiet"],
                            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    time.sleep(2)
    rng = random.Random(7)
    senders = []
    samples = []          # (t, rss_kb)
    heap = []             # (t, memory_heap_bytes / 1024): malloc in use, from /stats
    anon = []             # (t, RssAnon kB): the process's own resident memory
    shmem = []            # (t, RssShmem kB): JACK's shared segment, as far as it is touched
    delay_err = []        # arrival_to_dac - target, ms, per sampled source
    maxima = {}
    t0 = time.monotonic()
    next_sample = 0.0
    ssrc = 1000
    try:
        while time.monotonic() - t0 < seconds:
            now = time.monotonic() - t0
            senders = [p for p in senders if p.poll() is None]
            while len(senders) < 4:  # SSRC churn: short senders with faults, one after another
                ssrc += 1
                codec = rng.choice(["pcmu", "opus", "l16", "g722"])
                senders.append(subprocess.Popen(
                    [SEND, "--tone", str(rng.randint(200, 2000)), "--codec", codec, "--ssrc", str(ssrc),
                     "--duration", f"{rng.randint(5, 40)}s", "--seed", str(ssrc), "--loss", "2%", "--reorder", "1%",
                     "--duplicate", "1%", "--jitter", "uniform:0-15ms", "--rtcp-interval", "1s",
                     "--dest", f"127.0.0.1:{rtp_port}"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
            try:  # control traffic: gain and mute changes on a random port selector
                action = rng.choice(["gain?value=-6dB", "gain?value=0dB", "mute", "unmute"])
                http(http_port, "POST", f"/sources/port:{rtp_port}/{action}")
            except Exception:
                pass
            if now >= next_sample:
                next_sample += 10
                samples.append((now, rss_kb(node.pid)))
                anon.append((now, rss_kb(node.pid, "RssAnon")))
                shmem.append((now, rss_kb(node.pid, "RssShmem")))
                try:
                    st = json.loads(http(http_port, "GET", "/stats"))
                    if st["node"].get("memory_heap_bytes"):
                        heap.append((now, st["node"]["memory_heap_bytes"] / 1024))
                    for s in st["sources"]:
                        if s["state"] == "active" and s["packets_received"] > 200:
                            delay_err.append(s["arrival_to_dac_ms"] - s["target_delay_ms"])
                    for k, v in st["node"].items():
                        if isinstance(v, int):
                            maxima[k] = max(maxima.get(k, 0), v)
                except Exception as e:
                    print(f"soak: /stats failed at {now:.0f} s: {e}", file=sys.stderr)
            if node.poll() is not None:
                print(f"soak: rtpnode exited with {node.returncode} at {now:.0f} s", file=sys.stderr)
                return 1
            time.sleep(0.5)
    finally:
        for p in senders:
            p.kill()
        final = None
        try:
            final = json.loads(http(http_port, "GET", "/stats"))
        except Exception:
            pass
        node.send_signal(signal.SIGTERM)
        node.wait(10)
        jackd.terminate()
        jackd.wait(10)
    half = [p for p in samples if p[0] >= seconds / 2]
    print(f"soak: {seconds:.0f} s, {ssrc - 1000} senders (4 at a time, 5-40 s each, 2% loss, 1% reorder, 1% dup, 0-15 ms jitter)")
    print(f"soak: RSS {samples[0][1]} -> {samples[-1][1]} kB; slope over the second half {slope_per_hour(half):+.0f} kB/h")
    for name, series in (("RssAnon (own memory)", anon), ("RssShmem (JACK's segment)", shmem)):
        part = [p for p in series if p[0] >= seconds / 2]
        print(f"soak: {name} {series[0][1]} -> {series[-1][1]} kB; slope over the second half "
              f"{slope_per_hour(part):+.0f} kB/h")
    if heap:
        heap_half = [p for p in heap if p[0] >= seconds / 2]
        print(f"soak: malloc in use {heap[0][1]:.0f} -> {heap[-1][1]:.0f} kB; slope over the second half "
              f"{slope_per_hour(heap_half):+.0f} kB/h (RSS growing alone: fragmentation; both: a leak)")
    if delay_err:
        delay_err.sort()
        print(f"soak: arrival_to_dac - target (ms): p50 {delay_err[len(delay_err) // 2]:.1f}, "
              f"p99 {delay_err[int(len(delay_err) * 0.99)]:.1f}, max {delay_err[-1]:.1f} ({len(delay_err)} samples)")
    if final:
        n = final["node"]
        print(f"soak: node totals: datagrams {n['datagrams']}, xruns {n['xruns']}, mixer_refused {n['mixer_refused']}, "
              f"http_requests {n['http_requests']}, largest counter {max(maxima.values()) if maxima else 0}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
