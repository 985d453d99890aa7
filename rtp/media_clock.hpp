// RFC 7273 media clocks: RTP timestamps that are a reference clock's time (issue #19).
//
// With "a=mediaclk:direct=OFFSET" (RFC 7273 §5.2) a stream's RTP timestamp is its capture
// instant on the reference clock named by "a=ts-refclk" (§4.8), counted in clock-rate ticks
// since that clock's epoch, plus OFFSET, modulo 2^32:
//   ts = (reference time since epoch x clock rate + OFFSET) mod 2^32.
// AES67 senders (PTP) and SMPTE ST 2110 work this way, often without any RTCP: the SDP alone
// tells a receiver when each timestamp was captured. rtpnode takes two reference clocks: "ntp"
// (the NTP timescale, UTC, epoch 1900: the receiver's own wall clock) and "ptp" (IEEE 1588:
// TAI, epoch 1970; TAI - UTC comes from the kernel or is 37 s). "local" and "private" clocks
// name nothing a receiver can read, and "direct=N rate=..." changes the rate: not followed.
//
// Pure arithmetic on integers (no 128-bit types: 32-bit ARM); any thread.
#pragma once

#include <cstdint>
#include <optional>
#include <string>

#include "rtp/units.hpp"

namespace rtpnode {

struct SdpMedia;

/// A stream's RFC 7273 direct media clock.
struct MediaClock {
  enum class Reference { ntp, ptp };
  Reference reference = Reference::ntp;
  std::uint32_t offset = 0;  ///< a=mediaclk:direct=OFFSET
  [[nodiscard]] const char* name() const noexcept {
    return reference == Reference::ntp ? "ntp" : "ptp";
  }
};

/// The media clock `m`'s a=ts-refclk and a=mediaclk describe, or nullopt with `why` (when given)
/// saying why not ("" when the SDP names none).
std::optional<MediaClock> media_clock_of(const SdpMedia& m, std::string* why = nullptr);

/// Nanoseconds between the NTP epoch (1900, UTC) and the PTP epoch (1970, TAI) at TAI - UTC =
/// `tai_minus_utc_s`: reference time (ptp) = NTP time - this.
constexpr std::int64_t ptp_minus_ntp_epoch_ns(int tai_minus_utc_s) {
  return (2'208'988'800LL - tai_minus_utc_s) * 1'000'000'000LL;
}

/// The RTP timestamp of an instant `ref_ns` (ns since the reference clock's epoch, >= 0) at
/// `clock_rate` Hz (1..2^31): rounded to the nearest tick.
constexpr rtp_ts_t media_clock_timestamp(std::int64_t ref_ns, std::int64_t clock_rate,
                                         std::uint32_t offset) {
  const std::int64_t secs = ref_ns / 1'000'000'000, rem = ref_ns % 1'000'000'000;
  const std::int64_t ticks = secs * clock_rate + (rem * clock_rate + 500'000'000) / 1'000'000'000;
  return static_cast<rtp_ts_t>(static_cast<std::uint64_t>(ticks) + offset);
}

/// The instant (ns since the reference clock's epoch) that timestamp `ts` stands for: of all
/// the instants whose timestamp is `ts` (one every 2^32 ticks: 24.9 h at 48 kHz), the one
/// nearest `near_ref_ns` (e.g. the packet's arrival). Exact to the nanosecond below.
constexpr std::int64_t media_clock_instant(rtp_ts_t ts, std::int64_t clock_rate,
                                           std::uint32_t offset, std::int64_t near_ref_ns) {
  // Ticks since the epoch at near_ref_ns, floored; the timestamp's distance from it (signed,
  // |d| < 2^31 ticks).
  const std::int64_t secs = near_ref_ns / 1'000'000'000, rem = near_ref_ns % 1'000'000'000;
  const std::int64_t near_ticks = secs * clock_rate + rem * clock_rate / 1'000'000'000;
  const auto near_ts = static_cast<rtp_ts_t>(static_cast<std::uint64_t>(near_ticks) + offset);
  const auto d = static_cast<std::int32_t>(ts - near_ts);
  const std::int64_t ticks = near_ticks + d;
  // ticks * 1e9 / rate without overflow: whole seconds and the rest.
  const std::int64_t whole = ticks / clock_rate, part = ticks % clock_rate;
  return whole * 1'000'000'000 + part * 1'000'000'000 / clock_rate;
}

}  // namespace rtpnode
