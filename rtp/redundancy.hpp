// RFC 2198 redundant audio data: an RTP payload of blocks, each one packet's worth of audio
// with its own payload type; the last block is the primary (this packet's audio), the ones
// before it repeat earlier packets' audio, each `ts_offset` RTP ticks before the RTP header's
// timestamp, so a receiver that lost a packet rebuilds it from the next one.
//
// RFC 2198 §3: a redundant block's header is 4 bytes (F=1, block PT 7 bits, timestamp offset
// 14 bits, block length 10 bits); the primary's is 1 byte (F=0, block PT); the blocks' data
// follow the headers in the same order, the primary's to the end of the payload.
//
// Thread: pure functions, any thread; no allocation.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>

namespace rtpnode {

/// Most redundant blocks a packet may carry here (RFC 2198 sets no bound; senders use 1 or 2).
inline constexpr std::size_t kMaxRedundantBlocks = 8;

/// One block: payload type 0..127, timestamp offset 0..16383 ticks before the RTP header's
/// (0 for the primary), and its data (a view into the parsed payload).
struct RedBlock {
  std::uint8_t pt = 0;
  std::uint16_t ts_offset = 0;
  std::span<const std::uint8_t> data;
};

/// A parsed RED payload: up to kMaxRedundantBlocks redundant blocks (oldest first, as sent)
/// and the primary.
struct RedPacket {
  std::array<RedBlock, kMaxRedundantBlocks> redundant{};
  std::size_t redundant_count = 0;
  RedBlock primary;
};

/// Parses `payload`. std::nullopt when it is malformed: empty, a header or a block running past
/// its end, or more than kMaxRedundantBlocks redundant blocks. The primary may be empty (RFC 2198
/// allows a zero-length block). The views point into `payload`.
[[nodiscard]] std::optional<RedPacket> parse_red(std::span<const std::uint8_t> payload) noexcept;

/// Writes a RED payload of `redundant` (oldest first; each pt <= 127, ts_offset <= 16383,
/// data <= 1023 bytes) and `primary` (pt <= 127) into `out`. Returns the bytes written, or
/// std::nullopt when a field is out of range or `out` is too small.
[[nodiscard]] std::optional<std::size_t> build_red(std::span<const RedBlock> redundant,
                                                   const RedBlock& primary,
                                                   std::span<std::uint8_t> out) noexcept;

}  // namespace rtpnode
