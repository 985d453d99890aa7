#include "node/sender_clock.hpp"

#include <cmath>

namespace rtpnode {

std::int64_t SenderClock::ntp_of(ext_ts_t ts) const noexcept {
  if (ticks_per_ns_ > 0)
    return ntp_ns_ + std::llround(static_cast<double>(ts - ts_) / ticks_per_ns_);
  return ntp_ns_ + (ts - ts_) * 1'000'000'000 / static_cast<std::int64_t>(clock_rate_);
}

bool SenderClock::consistent(std::int64_t ntp_a, ext_ts_t ts_a, std::int64_t ntp_b,
                             ext_ts_t ts_b) const noexcept {
  // Where mapping a puts instant ntp_b, in ticks, against what mapping b says: a sender's RTP
  // clock may run kMaxRateError off its NTP clock, plus kTolerance for how SRs are stamped.
  const double rate = ticks_per_ns_ > 0 ? ticks_per_ns_ : clock_rate_ * 1e-9;
  const double elapsed = static_cast<double>(ntp_b - ntp_a);
  const double predicted = static_cast<double>(ts_a) + elapsed * rate;
  const double allowed =
      (std::abs(elapsed) * kMaxRateError + static_cast<double>(kTolerance.count())) * clock_rate_ *
      1e-9;
  return std::abs(static_cast<double>(ts_b) - predicted) <= allowed;
}

bool SenderClock::on_sender_report(std::int64_t ntp_ns, ext_ts_t ts) noexcept {
  if (have_ && !consistent(ntp_ns_, ts_, ntp_ns, ts)) {
    // A mapping that jumps beyond what clock drift explains is taken only when the next SR
    // confirms it.
    if (!(have_candidate_ && consistent(candidate_ntp_ns_, candidate_ts_, ntp_ns, ts))) {
      have_candidate_ = true;
      candidate_ntp_ns_ = ntp_ns;
      candidate_ts_ = ts;
      return false;
    }
    ticks_per_ns_ = 0;  // a new mapping: its rate is measured afresh
    ntp_ns_ = ntp_ns;
    ts_ = ts;
    have_candidate_ = false;
    return true;
  }
  have_candidate_ = false;
  if (have_ && ntp_ns - ntp_ns_ >= 1'000'000'000) {
    // Beyond +-2000 ppm the reports are not trusted for a rate (a restart, a stepped clock):
    // nominal then.
    const double rate = static_cast<double>(ts - ts_) / static_cast<double>(ntp_ns - ntp_ns_);
    const double nominal = clock_rate_ * 1e-9;
    ticks_per_ns_ = std::abs(rate / nominal - 1.0) < 0.002 ? rate : 0.0;
  }
  ntp_ns_ = ntp_ns;
  ts_ = ts;
  have_ = true;
  return true;
}

}  // namespace rtpnode
