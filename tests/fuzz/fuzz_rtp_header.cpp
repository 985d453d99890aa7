// libFuzzer target: RTP header validation (RFC 3550 §5.1, A.1 checks) on any datagram.
#include <cstddef>
#include <cstdint>

#include "rtp/rtp_header.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  rtpnode::RtpHeaderView h;
  if (rtpnode::rtp_parse({data, size}, h) == rtpnode::RtpParseStatus::ok) {
    // Every view the parser hands out must lie inside the datagram.
    volatile std::uint8_t sink = 0;
    for (std::uint8_t b : h.payload) sink = static_cast<std::uint8_t>(sink ^ b);
    (void)sink;
  }
  return 0;
}
