#include "rtp/redundancy.hpp"

#include <algorithm>

namespace rtpnode {

std::optional<RedPacket> parse_red(std::span<const std::uint8_t> payload) noexcept {
  RedPacket p;
  std::size_t at = 0;
  std::size_t data_bytes = 0;  // the redundant blocks' data, in header order
  for (;;) {
    if (at >= payload.size()) return std::nullopt;  // a header past the end
    const std::uint8_t first = payload[at];
    if ((first & 0x80) == 0) {  // F = 0: the primary's one-byte header ends the list
      p.primary.pt = first & 0x7f;
      ++at;
      break;
    }
    if (p.redundant_count == kMaxRedundantBlocks || at + 4 > payload.size()) return std::nullopt;
    RedBlock& b = p.redundant[p.redundant_count++];
    b.pt = first & 0x7f;
    b.ts_offset = static_cast<std::uint16_t>((payload[at + 1] << 6) | (payload[at + 2] >> 2));
    const std::size_t length =
        (static_cast<std::size_t>(payload[at + 2] & 0x03) << 8) | payload[at + 3];
    b.data = {payload.data(), length};  // placed below, once the headers' end is known
    data_bytes += length;
    at += 4;
  }
  if (payload.size() - at < data_bytes) return std::nullopt;  // a block past the end
  for (std::size_t i = 0; i < p.redundant_count; ++i) {
    const std::size_t length = p.redundant[i].data.size();
    p.redundant[i].data = payload.subspan(at, length);
    at += length;
  }
  p.primary.data = payload.subspan(at);
  return p;
}

std::optional<std::size_t> build_red(std::span<const RedBlock> redundant, const RedBlock& primary,
                                     std::span<std::uint8_t> out) noexcept {
  std::size_t need = 1 + primary.data.size();
  for (const RedBlock& b : redundant) {
    if (b.pt > 127 || b.ts_offset > 0x3fff || b.data.size() > 0x3ff) return std::nullopt;
    need += 4 + b.data.size();
  }
  if (primary.pt > 127 || need > out.size()) return std::nullopt;
  std::size_t at = 0;
  for (const RedBlock& b : redundant) {
    out[at++] = static_cast<std::uint8_t>(0x80 | b.pt);
    out[at++] = static_cast<std::uint8_t>(b.ts_offset >> 6);
    out[at++] = static_cast<std::uint8_t>(((b.ts_offset & 0x3f) << 2) | (b.data.size() >> 8));
    out[at++] = static_cast<std::uint8_t>(b.data.size() & 0xff);
  }
  out[at++] = primary.pt;
  for (const RedBlock& b : redundant)
    at = std::copy(b.data.begin(), b.data.end(), out.begin() + at) - out.begin();
  at = std::copy(primary.data.begin(), primary.data.end(), out.begin() + at) - out.begin();
  return at;
}

}  // namespace rtpnode
