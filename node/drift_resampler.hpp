// A source's resampling stage (issue #13): decoded audio at the codec's rate to the device rate,
// at the playback speed the playout controller asks for (drift compensation, delay trims and the
// sync loop, jitter/playout.hpp) -- speexdsp.
//
// Exact position (issue #20). Sync needs to know, to a fraction of a device frame, where the next
// input frame will land in the output. speexdsp does not report its phase, but its phase is pure
// integer arithmetic on the ratio num/den (input frames per output frame): every output frame
// advances the input position by exactly num/den, starting at input 0 after reset + skip_zeros.
// This class keeps the same sum (`pos_num_`, in 1/den input frames), so
//   landing = (input frames consumed * den - pos_num) / num
// is the output frame, counted from the end of what was output, at which the next input frame
// plays -- including the filter's look-ahead and the fractional phase (a fixed "output latency"
// is off by up to one input frame: 6 device frames for 8 kHz audio on a 48 kHz device).
//
// Fine speed. The ratio is num / kSpeexRatioDen (resampler_ratio.hpp: a prime below 2^16, because
// of a 32-bit overflow in speexdsp), so one step of num is 15 ppm at 48 -> 48 kHz and 92 ppm at
// 8 -> 48 kHz: a speed loop that holds a position would hunt by up to half a step. The numerator
// is therefore dithered between the two steps around the requested speed (first-order error
// feedback, with a hysteresis of kDitherThreshold output frames so the filter is rebuilt only
// every few hundred ms): the output position follows the requested speed to within that
// threshold. A numerator that is a multiple of the prime (speed exactly 1 at equal rates) is
// never used: speexdsp would reduce the ratio to 1/1 and rescale (truncate) its phase.
//
// Thread: the source's owner (the loop thread). No allocation after construction.
#pragma once

#include <cstdint>
#include <span>
#include <vector>

#include "rtp/units.hpp"

struct SpeexResamplerState_;

namespace rtpnode {

class DriftResampler {
 public:
  /// `audio_rate` and `device_rate` in Hz; `quality` speexdsp 0..10; `varies`: the speed may
  /// change (adaptive playout or drift compensation), so even equal rates go through the filter;
  /// `max_in_frames`: the longest input of one process() call. Throws std::runtime_error when
  /// speexdsp refuses.
  DriftResampler(std::uint32_t audio_rate, std::int64_t device_rate, int channels, int quality,
                 bool varies, frames_t max_in_frames);
  ~DriftResampler();
  DriftResampler(const DriftResampler&) = delete;
  DriftResampler& operator=(const DriftResampler&) = delete;

  /// False: samples pass through untouched.
  [[nodiscard]] bool active() const noexcept { return state_ != nullptr; }
  /// Output frames, counted from the end of everything output since the last reset, at which
  /// the next input frame will play (fractional; >= 0), at the speed set now: a later
  /// set_speed() moves it by the held-back input times the change (0.2 frames for a 0.1 %
  /// change at 8 kHz). 0 after reset and when passing through.
  [[nodiscard]] double landing() const noexcept;
  /// True once input went in since the last reset.
  [[nodiscard]] bool primed() const noexcept { return primed_; }
  /// The speed requested by set_speed (1 = none); the output follows it on average (header).
  [[nodiscard]] double speed() const noexcept { return speed_; }
  /// Plays the audio at `speed` times real time from the next process() on (0.9..1.1). Ignored
  /// when the resampler was built with `varies` false (the speed is then always 1).
  void set_speed(double speed) noexcept;
  /// Starts afresh (a new ring): the filter memory is cleared, without its leading zeros.
  void reset() noexcept;
  /// Converts `frames` interleaved frames; the result is valid until the next call (the input
  /// itself when passing through).
  std::span<const float> process(std::span<const float> in, frames_t frames) noexcept;

  /// Hysteresis of the numerator dithering, output frames.
  static constexpr double kDitherThreshold = 0.1;
  /// How many times the ratio was changed in speexdsp (each rebuilds its filter table).
  [[nodiscard]] std::uint64_t ratio_changes() const noexcept { return ratio_changes_; }

 private:
  void apply_num(std::uint32_t num) noexcept;
  void choose_num() noexcept;

  std::uint32_t audio_rate_;
  std::int64_t device_rate_;
  int channels_;
  bool varies_;
  SpeexResamplerState_* state_ = nullptr;
  std::vector<float> out_;
  bool primed_ = false;
  double speed_ = 1.0;
  std::uint32_t num_ = 1;  ///< the ratio in speexdsp now, num_ / den_ input frames per output
  std::uint32_t den_ = 1;
  double ideal_num_ = 1.0;     ///< the requested speed's numerator over den_ (varies_ only)
  double excess_in_ = 0.0;     ///< input frames consumed beyond the requested speed (dither error)
  std::int64_t in_total_ = 0;  ///< input frames consumed since the last reset
  std::int64_t pos_num_ = 0;   ///< input position of the next output frame, in 1/den_ frames
  std::uint64_t ratio_changes_ = 0;
};

}  // namespace rtpnode
