// libFuzzer target: what --sap does with datagrams from anyone on the network (issue #17) --
// parse_sap (RFC 2974), the session directory (announce, change, delete, expire, filter), and
// the SDP of each added or changed session turned into listens as the node would open them.
// The input is datagrams, each prefixed by a 2-byte length; the clock advances 1 s per datagram
// so that sessions also time out.
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <span>
#include <string>

#include "node/config.hpp"
#include "node/sap_directory.hpp"
#include "rtp/sap.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::span<const std::uint8_t> all(data, size);
  rtpnode::SapDirectory directory(size % 2 ? "" : "S*", 4);
  std::int64_t now = 0;
  for (std::size_t at = 0; at + 2 <= all.size();) {
    const std::size_t n = std::min<std::size_t>(all[at] << 8 | all[at + 1], all.size() - at - 2);
    const auto datagram = all.subspan(at + 2, n);
    at += 2 + n;
    now += 1'000'000'000;
    std::string error;
    const auto message = rtpnode::parse_sap(datagram, error);
    if (!message) continue;
    const auto change = directory.on_message(*message, now);
    using O = rtpnode::SapDirectory::Outcome;
    if (change.outcome == O::added || change.outcome == O::changed)
      (void)rtpnode::listens_from_sdp_text(change.session.sdp, "SAP", {}, error);
    (void)directory.expire(now);
  }
  return 0;
}
