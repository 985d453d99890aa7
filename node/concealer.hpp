// A source's concealment shaping (issue #13's concealer stage), around whatever the codec's PLC
// produces: a run of concealment fades linearly to zero between kConcealFadeFromMs and
// kMaxConcealMs and is silence after that (longer extrapolation only adds artefacts, and the
// switch never clicks); real audio after a fade comes back through a kResumeRampMs linear ramp
// from the gain reached; RFC 3389 comfort noise fills the sender's silences at the level it
// announced. Counts concealed frames, concealment runs and silence.
//
// Thread: the source's owner (the loop thread). No allocation.
#pragma once

#include <cstdint>

#include "rtp/units.hpp"

namespace rtpnode {

class Concealer {
 public:
  static constexpr int kMaxConcealMs = 100;
  static constexpr int kConcealFadeFromMs = 60;
  static constexpr int kResumeRampMs = 5;

  /// `audio_rate` frames per second (> 0); `channels` interleaved per frame (>= 1).
  Concealer(std::uint32_t audio_rate, int channels) noexcept;

  /// True when the current run reached kMaxConcealMs: play silence() instead of concealment.
  [[nodiscard]] bool exhausted() const noexcept { return run_frames_ >= max_frames_; }
  /// `frames` frames of codec concealment in `buf`: faded by their place in the run, counted.
  void concealed(float* buf, frames_t frames) noexcept;
  /// Fills `frames` frames of silence for an exhausted run (counted as silent, not concealed).
  void silence(float* buf, frames_t frames) noexcept;
  /// `frames` frames of real audio (decoded, or rebuilt by FEC) in `buf`: ramped up from the
  /// gain the output had reached; the concealment run ends.
  void decoded(float* buf, frames_t frames) noexcept;
  /// The stream was flushed: the next audio starts a new run (no ramp state is kept either).
  void reset() noexcept;

  /// RFC 3389: the level byte of a comfort-noise packet (-dBov in its low 7 bits).
  void set_comfort_noise(std::uint8_t level) noexcept;
  /// Real audio came: the comfort noise level is forgotten.
  void clear_comfort_noise() noexcept { comfort_noise_rms_ = 0; }
  [[nodiscard]] bool has_comfort_noise() const noexcept { return comfort_noise_rms_ > 0; }
  /// Fills `frames` frames with uniform noise at the comfort-noise level.
  void comfort_noise(float* buf, frames_t frames) noexcept;

  [[nodiscard]] std::uint64_t frames_concealed() const noexcept { return frames_concealed_; }
  [[nodiscard]] std::uint64_t concealment_events() const noexcept { return events_; }
  [[nodiscard]] std::uint64_t frames_silent() const noexcept { return frames_silent_; }

 private:
  std::uint32_t rate_;
  int channels_;
  frames_t max_frames_;
  bool concealing_ = false;
  frames_t run_frames_ = 0;  ///< frames concealed since the last real audio
  float out_gain_ = 1.0f;    ///< gain of the last frame produced
  float comfort_noise_rms_ = 0;
  std::uint64_t noise_state_ = 0x9e3779b97f4a7c15ull;
  std::uint64_t frames_concealed_ = 0, events_ = 0, frames_silent_ = 0;
};

}  // namespace rtpnode
