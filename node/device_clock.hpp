// Maps the loop thread's monotonic clock onto the device frame counter F (DESIGN.md "Timeline").
//
// The audio thread publishes, per block, F at block start and the block's PortAudio stream time
// (current_time). The loop thread reads the stream time "now" (Pa_GetStreamTime) next to its
// monotonic clock, so it knows the monotonic instant of that block start. Each update gives one
// reading of the device position at that instant; a single reading jitters (JACK's
// jack_frame_time: up to ~0.5 ms, 24 frames at 48 kHz).
//
// Every reading feeds a least-squares line of device frames against monotonic time (LineFit,
// 60 s memory). Once the fit spans kRateMinSpanS, the line is the map: its slope is the device's
// true rate (a crystal is off by tens of ppm: 1 ppm is 86 ms a day, so the nominal rate would let
// NTP-placed audio, #4, drift), and its value at t is the position, averaged over thousands of
// readings (issue #20: a reading-by-reading average kept ~8 frames of jitter; the line is
// within one frame after kSettlingS, test: DeviceClock.MapErrorStaysUnderOneFrame...). Until
// then, and for kRateMinSpanS after a device jump, the position is an exponential average of
// the readings extrapolated at the last measured rate:
//   F(t) = F_ref + (t - t_ref) * rate * (1 + skew).
//
// Thread: loop thread only. Pure logic (no PortAudio calls): the caller passes the readings.
#pragma once

#include <cstdint>

#include "jitter/line_fit.hpp"
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
  /// frame_at() unrounded: the device frame (fractional) the callback processes at monotonic
  /// time `t`. Valid only when valid().
  [[nodiscard]] double position_at(mono_ns_t t) const noexcept { return position(t); }
  /// Monotonic time (ns) at which the callback processes device frame `f` (inverse of frame_at).
  [[nodiscard]] mono_ns_t time_of(frames_t f) const noexcept;
  /// Frames from the callback's block start to the DAC (PortAudio dac_time - current_time).
  [[nodiscard]] frames_t output_latency_frames() const noexcept { return output_latency_frames_; }
  /// Nominal device rate, frames per second.
  [[nodiscard]] double rate() const noexcept { return rate_; }
  /// Measured device skew against the monotonic clock: true rate / nominal - 1 (1e-6 = 1 ppm).
  /// 0 until the rate fit spans kRateMinSpanS.
  [[nodiscard]] double skew() const noexcept { return skew_; }

  /// Weight of a new reading in the exponential average (0..1].
  static constexpr double kSmoothing = 0.05;
  /// Forgetting distance of the rate fit, s.
  static constexpr double kRateMemoryS = 60.0;
  /// Time after which frame_at() is within a frame of the device's position with readings that
  /// jitter by +-0.5 ms at 1024-frame callbacks (issue #20's test), s.
  static constexpr double kSettlingS = 60.0;
  /// Span of readings before the measured rate is used, s.
  static constexpr double kRateMinSpanS = 10.0;
  /// Skews beyond +-1 % are not a crystal: ignored.
  static constexpr double kMaxSkew = 0.01;
  /// A reading this far (s) from the mapping is not jitter (readings scatter by ~0.5 ms).
  static constexpr double kJumpS = 0.002;
  /// Far readings in a row that make a device jump (fewer are skipped).
  static constexpr int kJumpConfirm = 3;
  /// Device jumps seen (xruns, restarts).
  [[nodiscard]] std::uint64_t jumps() const noexcept { return jumps_; }
  /// The last jump: how many frames the device fell behind the mapping before it (> 0: a stall,
  /// every frame now plays that much later in time; < 0: frames were skipped).
  [[nodiscard]] frames_t last_jump_frames() const noexcept { return last_jump_frames_; }

 private:
  /// Device frame (fractional) at monotonic time t.
  [[nodiscard]] double position(mono_ns_t t) const noexcept;

  bool fitted_ = false;
  double rate_;
  bool valid_ = false;
  std::uint64_t last_callbacks_ = 0;
  mono_ns_t ref_ns_ = 0;     ///< t_ref
  double ref_frames_ = 0.0;  ///< F_ref: smoothed position at t_ref
  double skew_ = 0.0;
  mono_ns_t fit_origin_ns_ = 0;
  LineFit fit_{kRateMemoryS};  ///< x: s since fit_origin, y: frame - x * nominal rate
  frames_t output_latency_frames_ = 0;
  int far_readings_ = 0;
  std::uint64_t jumps_ = 0;
  frames_t last_jump_frames_ = 0;
};

}  // namespace rtpnode
