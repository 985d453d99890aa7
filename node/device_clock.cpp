#include "node/device_clock.hpp"

#include <cmath>

namespace rtpnode {

void DeviceClock::update(const DevicePosition& pos, double stream_now_s,
                         mono_ns_t mono_now_ns) noexcept {
  if (pos.callbacks == 0 || pos.callbacks == last_callbacks_) return;
  last_callbacks_ = pos.callbacks;
  // Monotonic instant of the block start: now minus the stream time elapsed since it.
  const mono_ns_t block_ns =
      mono_now_ns - static_cast<mono_ns_t>(std::llround((stream_now_s - pos.current_time) * 1e9));
  const auto frame = static_cast<double>(pos.frame);
  if (!valid_) {
    valid_ = true;
    ref_ns_ = block_ns;
    ref_frames_ = frame;
    fit_origin_ns_ = block_ns;
  } else {
    const double predicted = position(block_ns);
    if (std::fabs(frame - predicted) > rate_ * kJumpS) {
      // One reading far off is a stalled reader (the loop thread was descheduled between the two
      // clock reads): skipped. kJumpConfirm in a row is the device jumping (xrun, restart): the
      // mapping moves to the new position and the rate fit starts over (a step inside the fit
      // would bend the slope: 100 ms in 60 s reads as 1700 ppm); the measured skew stays
      // published until the new fit spans kRateMinSpanS.
      if (++far_readings_ < kJumpConfirm) return;
      far_readings_ = 0;
      ++jumps_;
      last_jump_frames_ = static_cast<frames_t>(std::llround(predicted - frame));
      ref_ns_ = block_ns;
      ref_frames_ = frame;
      fit_.reset();
      fitted_ = false;
      fit_origin_ns_ = block_ns;
    } else {
      // Move the reference to this reading, then average the reading in.
      far_readings_ = 0;
      ref_ns_ = block_ns;
      ref_frames_ = predicted + kSmoothing * (frame - predicted);
    }
  }
  const double x = static_cast<double>(block_ns - fit_origin_ns_) * 1e-9;
  fit_.add(x, frame - x * rate_);
  fitted_ = false;
  if (fit_.span() >= kRateMinSpanS && fit_.has_slope()) {
    const double skew = fit_.slope() / rate_;
    if (std::fabs(skew) <= kMaxSkew) {
      skew_ = skew;
      fitted_ = true;
    }
  }
  output_latency_frames_ =
      static_cast<frames_t>(std::llround((pos.dac_time - pos.current_time) * rate_));
  if (output_latency_frames_ < 0) output_latency_frames_ = 0;
}

double DeviceClock::position(mono_ns_t t) const noexcept {
  if (fitted_) {
    const double x = static_cast<double>(t - fit_origin_ns_) * 1e-9;
    return x * rate_ + fit_.at(x);
  }
  return ref_frames_ + static_cast<double>(t - ref_ns_) * 1e-9 * rate_ * (1.0 + skew_);
}

frames_t DeviceClock::frame_at(mono_ns_t t) const noexcept {
  return static_cast<frames_t>(std::floor(position(t)));
}

mono_ns_t DeviceClock::time_of(frames_t f) const noexcept {
  // The map is a straight line through (ref_ns_, position(ref_ns_)) at rate * (1 + skew).
  return ref_ns_ +
         static_cast<mono_ns_t>(std::llround((static_cast<double>(f) - position(ref_ns_)) /
                                             (rate_ * (1.0 + skew_)) * 1e9));
}

}  // namespace rtpnode
