// Test helper: builds valid RTP packets with knobs (sequence, timestamp, marker, CSRCs,
// extension, padding), so tests can script loss, reordering, duplication and wrap-around.
#pragma once

#include <cstdint>
#include <vector>

#include "rtp/rtp_header.hpp"

namespace rtpnode::test {

struct PacketBuilder {
  std::uint8_t pt = 0;
  std::uint32_t ssrc = 0x11223344;
  bool marker = false;
  int csrcs = 0;
  int extension_words = -1;  ///< -1: no extension
  int padding = 0;           ///< bytes of padding (P bit) when > 0

  std::vector<std::uint8_t> build(seq_t seq, rtp_ts_t ts,
                                  const std::vector<std::uint8_t>& payload) const {
    std::vector<std::uint8_t> p(12);
    rtp_write_header(p, pt, marker, seq, ts, ssrc);
    p[0] = static_cast<std::uint8_t>(p[0] | csrcs);
    for (int i = 0; i < csrcs * 4; ++i) p.push_back(static_cast<std::uint8_t>(i));
    if (extension_words >= 0) {
      p[0] |= 0x10;
      p.insert(p.end(), {0xbe, 0xde, static_cast<std::uint8_t>(extension_words >> 8),
                         static_cast<std::uint8_t>(extension_words)});
      for (int i = 0; i < extension_words * 4; ++i) p.push_back(0);
    }
    p.insert(p.end(), payload.begin(), payload.end());
    if (padding > 0) {
      p[0] |= 0x20;
      for (int i = 0; i < padding - 1; ++i) p.push_back(0);
      p.push_back(static_cast<std::uint8_t>(padding));
    }
    return p;
  }
};

}  // namespace rtpnode::test
