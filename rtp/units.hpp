// Units used across rtpnode. A bare integer never carries time or size: these aliases name the
// unit, and conversions are named after both units (RTP timestamp ticks, frames, nanoseconds).
#pragma once

#include <cstdint>

namespace rtpnode {

/// Audio frames (one sample per channel), signed so that differences are natural.
using frames_t = std::int64_t;
/// RTP timestamp as on the wire (RFC 3550 §5.1): 32 bits, wraps modulo 2^32.
using rtp_ts_t = std::uint32_t;
/// RTP sequence number as on the wire (RFC 3550 §5.1): 16 bits, wraps modulo 2^16.
using seq_t = std::uint16_t;
/// Extended (unwrapped) sequence number: cycles * 2^16 + seq (RFC 3550 A.1). Signed 64 bits.
using ext_seq_t = std::int64_t;
/// Extended (unwrapped) RTP timestamp in clock-rate ticks. Signed 64 bits.
using ext_ts_t = std::int64_t;
/// Monotonic time in nanoseconds (CLOCK_MONOTONIC / uv_hrtime origin).
using mono_ns_t = std::int64_t;

/// `ticks` at `from_rate` expressed at `to_rate`, rounded toward negative infinity. Exact for any
/// 64-bit `ticks` whose result fits, with rates up to 2^31 (no 128-bit arithmetic: 32-bit ARM).
constexpr std::int64_t rescale_floor(std::int64_t ticks, std::int64_t from_rate,
                                     std::int64_t to_rate) {
  std::int64_t q = ticks / from_rate;
  std::int64_t r = ticks % from_rate;
  if (r < 0) {
    r += from_rate;
    --q;
  }
  return q * to_rate + (r * to_rate) / from_rate;
}

/// Nanoseconds covered by `frames` at `rate` Hz (rounded toward negative infinity).
constexpr mono_ns_t frames_to_ns(frames_t frames, std::int64_t rate) {
  return rescale_floor(frames, rate, 1'000'000'000);
}
/// Frames at `rate` Hz covered by `ns` nanoseconds (rounded toward negative infinity).
constexpr frames_t ns_to_frames(mono_ns_t ns, std::int64_t rate) {
  return rescale_floor(ns, 1'000'000'000, rate);
}

}  // namespace rtpnode
