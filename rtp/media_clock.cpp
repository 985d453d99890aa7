#include "rtp/media_clock.hpp"

#include <charconv>
#include <string_view>

#include "rtp/sdp.hpp"

namespace rtpnode {

std::optional<MediaClock> media_clock_of(const SdpMedia& m, std::string* why) {
  auto fail = [&](const std::string& reason) -> std::optional<MediaClock> {
    if (why != nullptr) *why = reason;
    return std::nullopt;
  };
  if (m.mediaclk.empty() && m.ts_refclk.empty()) return fail("");
  const std::string_view mc = m.mediaclk;
  if (mc.rfind("direct=", 0) != 0) return fail("a=mediaclk:" + m.mediaclk + " is not direct=");
  const std::string_view value = mc.substr(7);
  std::uint64_t offset = 0;
  const auto r = std::from_chars(value.data(), value.data() + value.size(), offset);
  if (r.ec != std::errc{} || offset > 0xffffffffULL)
    return fail("a=mediaclk:" + m.mediaclk + ": bad offset");
  if (r.ptr != value.data() + value.size())
    return fail("a=mediaclk:" + m.mediaclk + ": rate= is not followed");
  MediaClock c;
  c.offset = static_cast<std::uint32_t>(offset);
  const std::string_view ref = m.ts_refclk;
  if (ref.rfind("ntp=", 0) == 0)
    c.reference = MediaClock::Reference::ntp;
  else if (ref.rfind("ptp=", 0) == 0)
    c.reference = MediaClock::Reference::ptp;
  else
    return fail("a=ts-refclk:" + (m.ts_refclk.empty() ? std::string("(none)") : m.ts_refclk) +
                " names no clock this node reads (ntp= or ptp=)");
  return c;
}

}  // namespace rtpnode
