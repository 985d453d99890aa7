// A sender's clock as its RTCP Sender Reports describe it (RFC 3550 §6.4.1): the mapping from
// its RTP timestamps to its NTP wall clock, and the rate of its RTP clock against that wall
// clock measured from two SRs (a sender whose audio clock is off extrapolates right between
// reports). A report whose mapping jumps beyond what clock drift explains (a restarted sender, a
// stepped clock, or a forged SR -- issue #16 finding 2) is held and taken only when the next
// report agrees with it (RFC 3550 §8.2: do not trust one packet).
//
// Thread: the source's owner (the loop thread). Pure arithmetic: tests feed it scripted SRs.
#pragma once

#include <chrono>
#include <cstdint>

#include "rtp/units.hpp"

namespace rtpnode {

class SenderClock {
 public:
  /// The largest RTP-vs-NTP clock rate error accepted between two SRs (2000 ppm), and the slack
  /// for how SRs are stamped.
  static constexpr double kMaxRateError = 0.002;
  static constexpr std::chrono::nanoseconds kTolerance{5'000'000};

  /// `clock_rate`: RTP ticks per second (> 0).
  explicit SenderClock(std::uint32_t clock_rate) noexcept : clock_rate_(clock_rate) {}

  /// An SR: NTP instant `ntp_ns` (ns since 1900) sampled at extended RTP timestamp `ts`. Returns
  /// false when it was held as an unconfirmed jump (not applied).
  bool on_sender_report(std::int64_t ntp_ns, ext_ts_t ts) noexcept;
  /// True once an SR gave a mapping.
  [[nodiscard]] bool has_mapping() const noexcept { return have_; }
  /// The sender's NTP instant (ns since 1900) of extended timestamp `ts`. Valid with a mapping.
  [[nodiscard]] std::int64_t ntp_of(ext_ts_t ts) const noexcept;
  /// Measured RTP ticks per NTP ns; 0 until two SRs a second apart agree within 2000 ppm of
  /// nominal (the nominal rate is used then).
  [[nodiscard]] double ticks_per_ns() const noexcept { return ticks_per_ns_; }

 private:
  /// True when mapping (ntp_b, ts_b) agrees with (ntp_a, ts_a) within the bounds above.
  [[nodiscard]] bool consistent(std::int64_t ntp_a, ext_ts_t ts_a, std::int64_t ntp_b,
                                ext_ts_t ts_b) const noexcept;

  std::uint32_t clock_rate_;
  bool have_ = false;
  std::int64_t ntp_ns_ = 0;
  ext_ts_t ts_ = 0;
  bool have_candidate_ = false;  ///< an SR that jumped, waiting for a second one to agree
  std::int64_t candidate_ntp_ns_ = 0;
  ext_ts_t candidate_ts_ = 0;
  double ticks_per_ns_ = 0;
};

}  // namespace rtpnode
