// The node's NTP timeline (issue #4, DESIGN.md "Timeline"): one mapping from the senders' NTP
// clock to device frames, shared by every source whose sender sends RTCP Sender Reports. A
// source's RTP timestamp maps to NTP through its latest SR (RFC 3550 §6.4.1); NTP maps to the
// device frame at which that instant plays here. Sources from senders that share an NTP clock
// therefore play equal capture instants at the same device frame, whatever their clock rates.
#pragma once

#include <cstdint>

#include "rtp/units.hpp"

namespace rtpnode {

/// Thread: loop only.
struct SyncTimeline {
  bool set = false;
  std::int64_t ntp0_ns = 0;  ///< an NTP instant, ns since 1900-01-01 (RFC 5905 era 0)
  double frame0 = 0;         ///< the device frame at which ntp0_ns plays
  /// Bumped whenever frame0 moves later to make room for a source that arrives later than the
  /// others: every synchronised source then places itself again.
  std::uint64_t generation = 0;

  /// Device frame (fractional) at which NTP instant `ntp_ns` plays; `frames_per_ns` is the
  /// device's measured rate (nominal * (1 + skew) / 1e9).
  [[nodiscard]] double frame_of(std::int64_t ntp_ns, double frames_per_ns) const noexcept {
    return frame0 + static_cast<double>(ntp_ns - ntp0_ns) * frames_per_ns;
  }
  /// Moves the origin to `ntp_ns` keeping the mapping there: later rate updates then bend the
  /// mapping only from here on instead of swinging it around an old origin.
  void rebase(std::int64_t ntp_ns, double frames_per_ns) noexcept {
    frame0 = frame_of(ntp_ns, frames_per_ns);
    ntp0_ns = ntp_ns;
  }
};

/// RFC 3550 §4: 64-bit NTP timestamp (32.32 fixed point, seconds since 1900) to ns since 1900.
constexpr std::int64_t ntp64_to_ns(std::uint64_t ntp) noexcept {
  return static_cast<std::int64_t>(ntp >> 32) * 1'000'000'000 +
         static_cast<std::int64_t>(((ntp & 0xffffffffu) * 1'000'000'000ull) >> 32);
}

/// Seconds between the NTP epoch (1900) and the Unix epoch (1970), RFC 868.
constexpr std::int64_t kNtpUnixOffsetS = 2'208'988'800;

}  // namespace rtpnode
