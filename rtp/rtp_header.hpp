// RTP fixed-header view and validation, RFC 3550 §5.1 and the checks of Appendix A.1.
// Also sequence-number and timestamp unwrapping into 64-bit extended forms.
// Pure functions, no allocation: safe on any thread.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <string_view>

#include "rtp/units.hpp"

namespace rtpnode {

/// Outcome of parsing one datagram as RTP. Everything but `ok` is counted and dropped.
enum class RtpParseStatus : std::uint8_t {
  ok,
  too_short,           ///< fewer than 12 bytes, or shorter than the header the fields announce
  bad_version,         ///< version field is not 2
  bad_padding,         ///< P bit set but the pad count is 0 or exceeds the space after the header
  csrc_overflow,       ///< CC * 4 bytes of CSRC run past the end of the datagram
  extension_overflow,  ///< X bit set and the extension length runs past the end
  rtcp,                ///< second byte is an RTCP packet type 192..223 (RFC 5761 §4): not RTP
};
inline constexpr std::size_t kRtpParseStatusCount = 7;

/// Stable lower-case name of a status, for logs and JSON ("too_short", ...).
std::string_view to_string(RtpParseStatus s) noexcept;

/// View into a datagram that passed validation. `payload` aliases the datagram's bytes and is
/// valid only as long as that buffer is; padding is already removed.
struct RtpHeaderView {
  std::uint8_t payload_type = 0;  ///< 0..127
  bool marker = false;  ///< M bit: for audio, first packet of a talkspurt (RFC 3551 §4.1)
  seq_t sequence_number = 0;
  rtp_ts_t timestamp = 0;  ///< in the payload format's clock-rate ticks
  std::uint32_t ssrc = 0;
  std::uint8_t csrc_count = 0;
  bool has_extension = false;
  std::span<const std::uint8_t> payload;
};

/// Parses and validates `datagram` (RFC 3550 §5.1; A.1 validity checks except the sequence
/// probation, which needs per-source state). An empty payload is valid (e.g. keep-alive).
/// Thread: any. No allocation.
[[nodiscard]] RtpParseStatus rtp_parse(std::span<const std::uint8_t> datagram,
                                       RtpHeaderView& out) noexcept;

/// Writes a 12-byte RTP fixed header (no CSRC, no extension) into `out[0..12)`.
/// Returns 12, or 0 when `out` is too small. Used by rtpsend and the tests' packet builder.
std::size_t rtp_write_header(std::span<std::uint8_t> out, std::uint8_t payload_type, bool marker,
                             seq_t sequence_number, rtp_ts_t timestamp,
                             std::uint32_t ssrc) noexcept;

/// Unwraps a wrapping wire counter (`Wire`, unsigned) into a signed 64-bit extended value
/// relative to the highest one seen (RFC 3550 A.1): each step is the signed difference `Delta`
/// of the wire values, so forward jumps of up to half the wire range and reordering of up to
/// half the range are resolved. The first value seeds the state. Thread: one owner.
template <typename Wire, typename Delta>
class Unwrapper {
 public:
  /// The extended value of `v`.
  std::int64_t unwrap(Wire v) noexcept {
    if (!seeded_) {
      seeded_ = true;
      highest_ = v;
      return highest_;
    }
    const auto delta = static_cast<Delta>(static_cast<Wire>(v - static_cast<Wire>(highest_)));
    const std::int64_t ext = highest_ + delta;
    if (ext > highest_) highest_ = ext;
    return ext;
  }
  /// The extended value `v` would get now, without changing the state.
  [[nodiscard]] std::int64_t peek(Wire v) const noexcept {
    if (!seeded_) return v;
    return highest_ + static_cast<Delta>(static_cast<Wire>(v - static_cast<Wire>(highest_)));
  }
  void reset() noexcept {
    seeded_ = false;
    highest_ = 0;
  }

 private:
  bool seeded_ = false;
  std::int64_t highest_ = 0;
};

/// Sequence numbers: ±32767 (RFC 3550 A.1).
using SeqUnwrapper = Unwrapper<seq_t, std::int16_t>;
/// RTP timestamps: ±2^31 ticks (±12.4 h at 48 kHz).
using TsUnwrapper = Unwrapper<rtp_ts_t, std::int32_t>;

}  // namespace rtpnode
