// libFuzzer target: RTCP compound validation (RFC 3550 A.2) and oRTP's field accessors.
#include <cstddef>
#include <cstdint>

#include "rtp/ortp_log.hpp"
#include "rtp/rtcp.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  static const bool routed = (rtpnode::ortp_log_route(), true);  // oRTP's warnings: once per kind
  (void)routed;
  rtpnode::RtcpCompound c;
  (void)rtpnode::rtcp_parse({data, size}, c);
  return 0;
}
