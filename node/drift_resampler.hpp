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
// Bypass at equal rates (issue #18). Filtering 48 kHz audio to 48 kHz costs speexdsp three Opus
// decodes (callgrind: 58 M instructions per second of stereo audio at quality 4), to move the
// position by a few ppm. With `bypass`, audio whose rate equals the device's plays straight from
// the input while the requested speed is within kBypassMaxOffset of 1, and the filter runs only
// for short maneuvers:
//  - pass: output frame n is input frame n + k for an integer k. The input position therefore
//    moves 1 per output frame while the request moves `speed`; the difference accumulates in
//    the position error (excess_in, input frames).
//  - slip: when |excess_in| exceeds kSlipThreshold frames, the filter plays at 1 +- kSlipSpeed
//    (fixed ratio) for exactly as many output frames as it takes to move k by one (about
//    1 / kSlipSpeed = 1000 frames, 21 ms), ending on an integer input position, and pass
//    resumes. Per 1 ppm of drift between request and 1 this happens every 1e6 * 0.6 / rate
//    seconds: about once every 12 s at 1 ppm, twice a second at 50 ppm.
//  - follow: while the request is further than kBypassMaxOffset from 1 (a delay trim, a
//    sender clock hundreds of ppm off), or bypass is not allowed now (allow_bypass), the filter
//    follows it as without bypass; a slip to the nearest integer position returns to pass when
//    it comes back within 80 % of that.
// Pass holds a whole-frame position: the position error is up to kSlipThreshold frames, so two
// bypassed sources could play a capture instant up to 1.2 frames apart. Sources synchronised on
// a timeline are therefore never bypassed (Source forbids it while placed on one): they keep
// the sub-frame placement of issue #20.
// Switches are seamless, not crossfaded: the filter is started (primed) from the input it would
// have seen, at ratio 1/1, where speexdsp's output equals its input to -100 dB (measured: 3e-6 at
// 1 kHz, 4e-5 at 20 kHz), so the first filtered frame continues the passed-through ones; a slip
// ends with the filter's phase within kSlipSpeed of an integer, and the remainder (< 0.001
// frames) is dropped and accounted in excess_in. Pass holds back the same frames as the filter
// (its input latency), so landing() is continuous across switches.
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
  /// `max_in_frames`: the longest input of one process() call; `bypass`: at equal rates, pass
  /// the input through while the speed is near 1 (header; ignored when the rates differ or
  /// `varies` is false). Throws std::runtime_error when speexdsp refuses.
  DriftResampler(std::uint32_t audio_rate, std::int64_t device_rate, int channels, int quality,
                 bool varies, frames_t max_in_frames, bool bypass = false);
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

  /// Bypass: the largest |speed - 1| passed through; beyond it the filter follows the speed.
  static constexpr double kBypassMaxOffset = 0.0005;
  /// Bypass: position error (input frames) that starts a slip.
  static constexpr double kSlipThreshold = 0.6;
  /// Bypass: speed offset of a slip (1000 ppm: 1.7 cents, for about 21 ms at 48 kHz).
  static constexpr double kSlipSpeed = 0.001;
  /// Bypass: allows or forbids passing through (forbidden: the filter follows the speed, so the
  /// position holds a fraction of a frame: sources synchronised on a timeline). The change
  /// takes effect at the next process(), seamlessly. Allowed after construction.
  void allow_bypass(bool allowed) noexcept { bypass_allowed_ = allowed; }
  /// True when built to bypass (equal rates, varying speed, bypass asked for).
  [[nodiscard]] bool bypassing() const noexcept { return bypass_; }
  /// Output frames that went through the filter / straight through since construction.
  [[nodiscard]] std::uint64_t filtered_frames() const noexcept { return filtered_frames_; }
  [[nodiscard]] std::uint64_t passed_frames() const noexcept { return passed_frames_; }
  /// Bypass: slips made (each moves the input position by one frame or to an integer).
  [[nodiscard]] std::uint64_t slips() const noexcept { return slips_; }

 private:
  enum class Mode : std::uint8_t { pass, slip, follow };
  void init_bypass();
  void apply_num(std::uint32_t num) noexcept;
  void choose_num() noexcept;
  std::span<const float> process_bypass(std::span<const float> in, frames_t frames) noexcept;
  void decide_mode() noexcept;
  void append(std::span<const float> in, frames_t frames) noexcept;
  void run(std::size_t& out_n) noexcept;
  /// Input frames bypass takes at a time (its line holds the filter's length plus these).
  static constexpr frames_t kLineChunk = 256;
  void prime() noexcept;
  void start_slip(std::int64_t k) noexcept;
  void advance(std::int64_t out_frames) noexcept;

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
  std::uint64_t filtered_frames_ = 0;
  std::uint64_t passed_frames_ = 0;

  // Bypass state (bypass_ only). Positions are input frame indices since the last reset.
  bool bypass_ = false;
  bool bypass_allowed_ = true;
  Mode mode_ = Mode::pass;
  frames_t hold_ = 0;             ///< frames pass holds back: speexdsp's input latency at 1/1
  frames_t history_ = 0;          ///< frames before the position kept to prime the filter
  std::vector<float> line_;       ///< input frames [line_base_, fed_)
  std::vector<float> prime_out_;  ///< where priming's (dropped) output goes
  std::int64_t line_base_ = 0;    ///< index of line_'s first frame
  std::int64_t fed_ = 0;          ///< input frames given since the last reset
  std::int64_t spx_fed_ = 0;      ///< input frames speexdsp consumed (slip, follow)
  std::int64_t pos_int_ = 0;      ///< input position of the next output frame: whole frames
  std::int64_t pos_frac_ = 0;     ///< and its fraction, in 1/den_ frames
  std::int64_t slip_left_ = 0;    ///< output frames until the slip lands
  std::uint32_t slip_step_ = 0;   ///< |num - den| of a slip
  std::uint64_t slips_ = 0;
};

}  // namespace rtpnode
