#include "node/device_clock.hpp"

#include <cmath>

namespace rtpnode {

void DeviceClock::update(const DevicePosition& pos, double stream_now_s, mono_ns_t mono_now_ns) noexcept {
  if (pos.callbacks == 0 || pos.callbacks == last_callbacks_) return;
  last_callbacks_ = pos.callbacks;
  // Monotonic instant of the block start: now minus the stream time elapsed since it.
  const double block_mono_s = static_cast<double>(mono_now_ns) * 1e-9 - (stream_now_s - pos.current_time);
  const double estimate = static_cast<double>(pos.frame) - block_mono_s * rate_;
  if (!valid_) {
    offset_frames_ = estimate;
    valid_ = true;
  } else {
    // A reading far off (device restarted, stream time jumped) replaces the average.
    if (std::fabs(estimate - offset_frames_) > rate_ * 0.5) offset_frames_ = estimate;
    else offset_frames_ += kSmoothing * (estimate - offset_frames_);
  }
  output_latency_frames_ = static_cast<frames_t>(std::llround((pos.dac_time - pos.current_time) * rate_));
  if (output_latency_frames_ < 0) output_latency_frames_ = 0;
}

frames_t DeviceClock::frame_at(mono_ns_t t) const noexcept {
  return static_cast<frames_t>(std::floor(offset_frames_ + static_cast<double>(t) * 1e-9 * rate_));
}

mono_ns_t DeviceClock::time_of(frames_t f) const noexcept {
  return static_cast<mono_ns_t>(std::llround((static_cast<double>(f) - offset_frames_) / rate_ * 1e9));
}

}  // namespace rtpnode
