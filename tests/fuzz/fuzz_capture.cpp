// libFuzzer target: what a capture file hands the VoIP tap (issue #14) -- link-layer and IP
// decoding with fragment reassembly and SIP-over-TCP streams (PacketDecoder), then call discovery
// (SIP, SDP and the RTP heuristic) on every datagram, and the SIP and SDP parsers on the raw bytes.
// The first byte picks the link type; the rest is frames, each prefixed by a 2-byte length.
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <span>
#include <string_view>

#include "node/call_discovery.hpp"
#include "node/capture_file.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size == 0) return 0;
  static constexpr int kLinks[] = {0, 1, 12, 108, 113, 276, 228, 229};
  const int link = kLinks[data[0] % 8];
  const std::span<const std::uint8_t> all(data + 1, size - 1);
  (void)rtpnode::parse_sip(all);
  (void)rtpnode::parse_sdp_audio(
      std::string_view(reinterpret_cast<const char*>(all.data()), all.size()));
  rtpnode::PacketDecoder decoder;
  rtpnode::CallDiscovery discovery(true);
  std::int64_t t = 0;
  for (std::size_t at = 0; at + 2 <= all.size();) {
    const std::size_t n = std::min<std::size_t>(all[at] << 8 | all[at + 1], all.size() - at - 2);
    const auto frame = all.subspan(at + 2, n);
    at += 2 + n;
    t += 20'000'000;
    if (auto d = decoder.decode(link, t, frame, frame.size() + (n % 3 == 0 ? 7 : 0))) {
      (void)discovery.on_datagram(*d, d->tcp);
      while (auto more = decoder.take_ready()) (void)discovery.on_datagram(*more, true);
    }
  }
  return 0;
}
