// Packets for the source benchmarks (bench_source_memory, bench_source_cpu): 20 ms payloads of a
// 440 Hz tone encoded as a sender would, and the RTP packets that carry them.
#pragma once

#include <opus/opus.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <vector>

#include "rtp/payload_format.hpp"

namespace rtpnode::bench {

inline constexpr int kPacketMs = 20;

/// One 20 ms payload of a 440 Hz tone in `f`, encoded as the sender would.
inline std::vector<std::uint8_t> payload_for(const PayloadFormat& f, int index) {
  const int frames = static_cast<int>(f.audio_rate) * kPacketMs / 1000;
  std::vector<std::int16_t> pcm(static_cast<std::size_t>(frames) * f.channels);
  for (int i = 0; i < frames; ++i)
    for (int c = 0; c < f.channels; ++c)
      pcm[static_cast<std::size_t>(i) * f.channels + c] = static_cast<std::int16_t>(
          8000 * std::sin(2 * M_PI * 440 * (index * frames + i) / f.audio_rate));
  std::vector<std::uint8_t> out;
  switch (f.codec) {
    case Codec::opus: {
      static OpusEncoder* enc = [] {
        int err = 0;
        OpusEncoder* e = opus_encoder_create(48000, 2, OPUS_APPLICATION_AUDIO, &err);
        opus_encoder_ctl(e, OPUS_SET_BITRATE(128000));
        return e;
      }();
      out.resize(1500);
      const int n = opus_encode(enc, pcm.data(), frames, out.data(), 1500);
      out.resize(static_cast<std::size_t>(std::max(n, 0)));
      break;
    }
    case Codec::pcmu:
      for (std::int16_t s : pcm) out.push_back(static_cast<std::uint8_t>(0xff ^ (s >> 8)));
      break;
    case Codec::l16:
      for (std::int16_t s : pcm) {
        out.push_back(static_cast<std::uint8_t>(s >> 8));
        out.push_back(static_cast<std::uint8_t>(s));
      }
      break;
    case Codec::l24:
      for (std::int16_t s : pcm) {
        out.push_back(static_cast<std::uint8_t>(s >> 8));
        out.push_back(static_cast<std::uint8_t>(s));
        out.push_back(0);
      }
      break;
    default:
      break;
  }
  return out;
}

inline std::vector<std::uint8_t> rtp_packet(std::uint32_t ssrc, std::uint16_t seq, std::uint32_t ts,
                                            std::uint8_t pt,
                                            const std::vector<std::uint8_t>& payload) {
  std::vector<std::uint8_t> p(12 + payload.size());
  p[0] = 0x80;
  p[1] = pt;
  p[2] = static_cast<std::uint8_t>(seq >> 8);
  p[3] = static_cast<std::uint8_t>(seq);
  for (int i = 0; i < 4; ++i) {
    p[4 + i] = static_cast<std::uint8_t>(ts >> (24 - 8 * i));
    p[8 + i] = static_cast<std::uint8_t>(ssrc >> (24 - 8 * i));
  }
  std::memcpy(p.data() + 12, payload.data(), payload.size());
  return p;
}

}  // namespace rtpnode::bench
