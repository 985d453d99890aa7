// A scripted RTP sender for sync tests: 20 ms packets of silence with an impulse at every capture
// instant that is a multiple of 100 ms, and where such impulses are in a mixed output.
#pragma once

#include <cmath>
#include <cstdint>
#include <memory>
#include <vector>

#include "rtp/codec.hpp"
#include "rtp/payload_format.hpp"
#include "support/packet_builder.hpp"

namespace rtpnode::test {

inline constexpr mono_ns_t kMs = 1'000'000;

/// One scripted sender: 20 ms packets of silence with an impulse (0.5 full scale) at every
/// capture instant that is a multiple of 100 ms, RTCP SRs every second.
struct ImpulseSender {
  PayloadFormat format;
  mono_ns_t start;  ///< capture instant of its first frame
  rtp_ts_t ts0;
  test::PacketBuilder builder;
  std::unique_ptr<Encoder> encoder;
  int next = 0;  ///< next packet index
  ImpulseSender(PayloadFormat f, mono_ns_t s, rtp_ts_t ts, std::uint32_t ssrc, std::uint8_t pt)
      : format(f), start(s), ts0(ts), encoder(make_encoder(f)) {
    builder.ssrc = ssrc;
    builder.pt = pt;
  }
  [[nodiscard]] int frames() const { return static_cast<int>(format.audio_rate / 50); }
  [[nodiscard]] mono_ns_t capture(int packet) const { return start + packet * 20 * kMs; }
  /// RTP timestamp of packet `packet`: 20 ms of the format's RTP clock each.
  [[nodiscard]] rtp_ts_t ts(int packet) const {
    return ts0 + static_cast<rtp_ts_t>(packet * static_cast<int>(format.clock_rate / 50));
  }
  std::vector<std::uint8_t> payload(int packet) {
    std::vector<std::int16_t> pcm(static_cast<std::size_t>(frames()), 0);
    const mono_ns_t from = capture(packet), to = capture(packet + 1);
    for (mono_ns_t t = (from + 100 * kMs - 1) / (100 * kMs) * (100 * kMs); t < to; t += 100 * kMs)
      pcm[static_cast<std::size_t>((t - from) * format.audio_rate / 1'000'000'000)] = 16384;
    std::vector<std::uint8_t> out(4096);
    out.resize(static_cast<std::size_t>(encoder->encode(pcm, frames(), out)));
    return out;
  }
};

/// Positions (frames, parabolic interpolation) of the impulses in channel `c` of interleaved
/// stereo `out`.
inline std::vector<double> impulses(const std::vector<float>& out, int c) {
  std::vector<double> at;
  const std::size_t n = out.size() / 2;
  auto v = [&](std::size_t i) {
    return static_cast<double>(out[i * 2 + static_cast<std::size_t>(c)]);
  };
  for (std::size_t i = 1; i + 1 < n; ++i)
    if (v(i) > 0.2 && v(i) >= v(i - 1) && v(i) > v(i + 1)) {
      const double d = v(i - 1) - 2 * v(i) + v(i + 1);
      at.push_back(static_cast<double>(i) + (d != 0 ? 0.5 * (v(i - 1) - v(i + 1)) / d : 0.0));
    }
  return at;
}

}  // namespace rtpnode::test
