// A source's resampling stage (issue #13): decoded audio at the codec's rate to the device rate,
// at the playback speed the playout controller asks for (drift compensation and delay trims,
// jitter/playout.hpp) -- speexdsp, with the ratio over a fixed prime denominator
// (resampler_ratio.hpp). Fixed playout without drift compensation at equal rates passes samples
// through untouched (bit-exact); speed exactly 1 keeps the exact nominal ratio.
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
  /// Output frames the filter holds back (its delay); 0 when passing through.
  [[nodiscard]] frames_t delay() const noexcept { return delay_; }
  /// True once input went in since the last reset (the filter then holds delay() frames).
  [[nodiscard]] bool primed() const noexcept { return primed_; }
  /// The speed applied now (1 = none).
  [[nodiscard]] double speed() const noexcept { return speed_; }
  /// Plays the audio at `speed` times real time from the next process() on (0.9..1.1). The
  /// filter is rebuilt only when the ratio's numerator changes.
  void set_speed(double speed) noexcept;
  /// Starts afresh (a new ring): the filter memory is cleared, without its leading zeros.
  void reset() noexcept;
  /// Converts `frames` interleaved frames; the result is valid until the next call (the input
  /// itself when passing through).
  std::span<const float> process(std::span<const float> in, frames_t frames) noexcept;

 private:
  std::uint32_t audio_rate_;
  std::int64_t device_rate_;
  int channels_;
  SpeexResamplerState_* state_ = nullptr;
  std::vector<float> out_;
  frames_t delay_ = 0;
  bool primed_ = false;
  double speed_ = 1.0;
  std::uint32_t ratio_num_ = 0;  ///< numerator over kSpeexRatioDen (0: never set)
  static constexpr std::uint32_t kNominalRatio = 0xffffffffu;  ///< ratio_num_: audio/device rate
};

}  // namespace rtpnode
