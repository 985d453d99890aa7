// libFuzzer target: every flag and control value parser (durations, addresses, selectors,
// offset/route/gain rules, payload and raw formats). Bad text must give an error, never UB.
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "node/config.hpp"
#include "rtp/payload_format.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size < 1) return 0;
  const std::string_view text(reinterpret_cast<const char*>(data + 1), size - 1);
  std::string err;
  switch (data[0] % 8) {
    case 0:
      (void)rtpnode::parse_duration(text, err);
      break;
    case 1:
      (void)rtpnode::parse_listen(text, err);
      break;
    case 2:
      (void)rtpnode::parse_selector(text, err);
      break;
    case 3:
      (void)rtpnode::parse_offset_rule(text, err);
      break;
    case 4:
      (void)rtpnode::parse_route_rule(text, 1 + data[0] / 8 % 64, err);
      break;
    case 5:
      (void)rtpnode::parse_gain_rule(text, err);
      break;
    case 6:
      (void)rtpnode::parse_payload_format(text, err);
      break;
    default:
      (void)rtpnode::parse_raw_format(text, err);
      break;
  }
  return 0;
}
