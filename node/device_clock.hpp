// Maps the loop thread's monotonic clock onto the device frame counter F (DESIGN.md "Timeline").
//
// The audio thread publishes, per block, F at block start and the block's PortAudio stream time
// (current_time). The loop thread reads the stream time "now" (Pa_GetStreamTime) next to its
// monotonic clock, so it knows the monotonic instant of that block start. Each update gives one
// estimate of the offset F0 in  F(t) = F0 + t * rate;  a single estimate jitters (JACK's
// jack_frame_time: up to ~0.5 ms), so F0 is smoothed with an exponential average.
//
// Thread: loop thread only. Pure logic (no PortAudio calls): the caller passes the readings.
#pragma once

#include <cstdint>

#include "node/mixer.hpp"
#include "rtp/units.hpp"

namespace rtpnode {

class DeviceClock {
 public:
  /// `rate` = device frames per second (> 0).
  explicit DeviceClock(double rate) : rate_(rate) {}

  /// Feeds one reading: the last published position, the stream time now (s) and the monotonic
  /// time now (ns), read back to back. Ignored until the device has run one block.
  void update(const DevicePosition& pos, double stream_now_s, mono_ns_t mono_now_ns) noexcept;

  /// True once a reading from a running device was taken.
  [[nodiscard]] bool valid() const noexcept { return valid_; }
  /// Device frame the callback is processing at monotonic time `t` (extrapolated, fractional
  /// frames floored). Valid only when valid().
  [[nodiscard]] frames_t frame_at(mono_ns_t t) const noexcept;
  /// Monotonic time (ns) at which the callback processes device frame `f` (inverse of frame_at).
  [[nodiscard]] mono_ns_t time_of(frames_t f) const noexcept;
  /// Frames from the callback's block start to the DAC (PortAudio dac_time - current_time).
  [[nodiscard]] frames_t output_latency_frames() const noexcept { return output_latency_frames_; }
  [[nodiscard]] double rate() const noexcept { return rate_; }

  /// Weight of a new reading in the exponential average (0..1].
  static constexpr double kSmoothing = 0.05;

 private:
  double rate_;
  bool valid_ = false;
  std::uint64_t last_callbacks_ = 0;
  double offset_frames_ = 0.0;  ///< F0: F(t) = F0 + t_seconds * rate
  frames_t output_latency_frames_ = 0;
};

}  // namespace rtpnode
