// CPU of one source's decode -> jitter buffer -> resampler -> ring path (issue #18), for
// callgrind, and the drift loop's quality in the same run. One stream of 20 ms packets whose
// sender clock runs `--skew-ppm` fast against the device, arriving with 0..2 ms of jitter on a
// fake clock; the loop renders every 5 ms as rtpnode does; the device consumes the ring.
//
// Run: build/tests/bench_source_cpu [--codec opus|l16|pcmu] [--bypass on|off] [--seconds N]
//                                   [--skew-ppm P]
// Instruction counts per second of audio: run it under callgrind for two durations and divide
// the difference (the set-up, payload encoding included, cancels):
//   valgrind --tool=callgrind --callgrind-out-file=/dev/null build/tests/bench_source_cpu ...
// tools/bench_cpu.sh does exactly that. Printed: how much audio went through the resampler's
// filter, slips, and the playout delay's distance from its target over the last half.
#include <opus/opus.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "node/device_clock.hpp"
#include "node/source.hpp"
#include "bench_packets.hpp"
#include "rtp/rtp_header.hpp"

using namespace rtpnode;
using bench::kPacketMs;
using bench::payload_for;

namespace {}  // namespace

int main(int argc, char** argv) {
  std::string codec = "opus";
  bool bypass = true;
  int seconds = 20;
  double skew_ppm = 20;
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string k = argv[i], v = argv[i + 1];
    if (k == "--codec")
      codec = v;
    else if (k == "--bypass")
      bypass = v == "on";
    else if (k == "--seconds")
      seconds = std::atoi(v.c_str());
    else if (k == "--skew-ppm")
      skew_ppm = std::atof(v.c_str());
    else {
      std::fprintf(stderr, "unknown flag %s\n", k.c_str());
      return 2;
    }
  }
  PayloadFormat f{Codec::opus, 48000, 48000, 2};
  std::uint8_t pt = 111;
  if (codec == "l16") {
    f = {Codec::l16, 48000, 48000, 2};
    pt = 97;
  } else if (codec == "pcmu") {
    f = {Codec::pcmu, 8000, 8000, 1};
    pt = 0;
  } else if (codec != "opus") {
    std::fprintf(stderr, "--codec opus|l16|pcmu\n");
    return 2;
  }
  const int packets = seconds * 1000 / kPacketMs;
  // Payloads first (a cycle of 5 s: encoding is not what is measured).
  std::vector<std::vector<std::uint8_t>> payloads;
  for (int i = 0; i < std::min(packets, 250); ++i) payloads.push_back(payload_for(f, i));

  constexpr mono_ns_t kT0 = 1'000'000'000'000;
  constexpr mono_ns_t kTick = 5'000'000;
  DeviceClock clock{48000};
  clock.update(DevicePosition{0, 256, 0.0, 0.0107, 1}, 0.0, kT0);
  Source::Params p;
  p.id = 1;
  p.ssrc = 0x5eed;
  p.payload_type = pt;
  p.format = f;
  p.device_rate = 48000;
  p.lead_frames = 720;  // one 256-frame period + 10 ms, as rtpnode renders
  p.resampler_bypass = bypass;
  std::unique_ptr<Source> src;
  std::vector<float> sink(48000 * 2);
  std::mt19937 rng(11);
  std::uniform_int_distribution<mono_ns_t> jitter(0, 2'000'000);
  const double packet_ns = kPacketMs * 1e6 / (1.0 + skew_ppm * 1e-6);
  const std::uint32_t ticks = f.clock_rate * kPacketMs / 1000;
  int next = 0;
  mono_ns_t next_arrival = kT0;
  double err_sum = 0, err_max = 0;
  int err_n = 0;
  std::uint64_t consumed = 0;  // device frames played
  const mono_ns_t end = kT0 + mono_ns_t{seconds} * 1'000'000'000;
  for (mono_ns_t now = kT0; now < end; now += kTick) {
    const frames_t device = static_cast<frames_t>((now - kT0) / 1'000'000 * 48);
    clock.update(DevicePosition{device, 256, 0.0, 0.0107, 2}, 0.0, now);
    while (next < packets && next_arrival <= now) {
      const auto pkt = bench::rtp_packet(
          0x5eed, static_cast<std::uint16_t>(next), static_cast<std::uint32_t>(next) * ticks, pt,
          payloads[static_cast<std::size_t>(next) % payloads.size()]);
      RtpHeaderView h;
      if (rtp_parse(pkt, h) != RtpParseStatus::ok) std::abort();
      if (!src) src = std::make_unique<Source>(p, next_arrival, clock);
      src->on_rtp(h, next_arrival, clock);
      ++next;
      next_arrival = kT0 + static_cast<mono_ns_t>(next * packet_ns) + jitter(rng);
    }
    if (!src) continue;
    src->render(clock, now);
    auto* st = src->stream();
    const auto read = static_cast<frames_t>(st->ring.read_count()) / f.channels;
    const frames_t due = std::min<frames_t>(device - st->start_frame - read,
                                            static_cast<frames_t>(sink.size()) / f.channels);
    if (due > 0) {
      st->ring.pop(sink.data(), static_cast<std::size_t>(due) * f.channels);
      consumed += static_cast<std::uint64_t>(due);
    }
    if (now - kT0 > (end - kT0) / 2 && (now - kT0) % 100'000'000 == 0) {
      const SourceStats s = src->stats();
      const double e = std::abs(s.playout_delay_ms - s.target_delay_ms);
      err_sum += e;
      err_max = std::max(err_max, e);
      ++err_n;
    }
  }
  const SourceStats s = src->stats();
  std::printf(
      "%s bypass %s, %d s, sender %+.0f ppm: resampled %.1f %% of %llu frames, %llu slips, "
      "drift %.1f ppm, |playout delay - target| mean %.4f ms max %.4f ms, underruns %llu\n",
      codec.c_str(), bypass ? "on" : "off", seconds, skew_ppm,
      100.0 * static_cast<double>(s.frames_resampled) /
          static_cast<double>(std::max<std::uint64_t>(1, consumed)),
      static_cast<unsigned long long>(consumed), static_cast<unsigned long long>(s.resampler_slips),
      s.drift_ppm, err_n ? err_sum / err_n : 0.0, err_max,
      static_cast<unsigned long long>(s.underruns));
  return 0;
}
