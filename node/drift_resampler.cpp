#include "node/drift_resampler.hpp"

#include <speex/speex_resampler.h>

#include <cmath>
#include <stdexcept>
#include <string>

#include "node/resampler_ratio.hpp"

namespace rtpnode {

namespace {

void check(int err, const char* what) {
  if (err != RESAMPLER_ERR_SUCCESS)
    throw std::runtime_error(std::string(what) + ": " + speex_resampler_strerror(err));
}

/// A numerator that is a multiple of the prime denominator would make speexdsp reduce the
/// ratio (and truncate its phase): the next one up or down instead.
std::uint32_t avoid_multiple(std::uint32_t num, bool up) {
  if (num % kSpeexRatioDen != 0) return num;
  return up ? num + 1 : num - 1;
}

}  // namespace

DriftResampler::DriftResampler(std::uint32_t audio_rate, std::int64_t device_rate, int channels,
                               int quality, bool varies, frames_t max_in_frames)
    : audio_rate_(audio_rate), device_rate_(device_rate), channels_(channels), varies_(varies) {
  if (static_cast<std::int64_t>(audio_rate) == device_rate && !varies) return;
  int err = 0;
  const auto dev = static_cast<spx_uint32_t>(device_rate);
  if (varies) {
    ideal_num_ = kSpeexRatioDen * static_cast<double>(audio_rate) / static_cast<double>(dev);
    const auto num = avoid_multiple(static_cast<std::uint32_t>(std::llround(ideal_num_)), true);
    state_ = speex_resampler_init_frac(static_cast<spx_uint32_t>(channels), num, kSpeexRatioDen,
                                       audio_rate, dev, quality, &err);
  } else {
    state_ =
        speex_resampler_init(static_cast<spx_uint32_t>(channels), audio_rate, dev, quality, &err);
  }
  if (!state_) check(err == RESAMPLER_ERR_SUCCESS ? RESAMPLER_ERR_ALLOC_FAILED : err, "speexdsp");
  check(err, "speex_resampler_init");
  spx_uint32_t n = 1, d = 1;
  speex_resampler_get_ratio(state_, &n, &d);
  num_ = n;
  den_ = d;
  // Start without the filter's leading zeros, so output frame k matches input time k.
  speex_resampler_skip_zeros(state_);
  // Room for the longest input at the slowest speed.
  const frames_t max_out = rescale_floor(max_in_frames, audio_rate, device_rate) + 1;
  out_.resize(static_cast<std::size_t>(max_out * 102 / 100 + 64) *
              static_cast<std::size_t>(channels));
}

DriftResampler::~DriftResampler() {
  if (state_) speex_resampler_destroy(state_);
}

double DriftResampler::landing() const noexcept {
  if (!state_) return 0.0;
  return static_cast<double>(in_total_ * den_ - pos_num_) / num_;
}

void DriftResampler::set_speed(double speed) noexcept {
  if (!state_ || !varies_) return;
  speed_ = speed;
  ideal_num_ =
      kSpeexRatioDen * static_cast<double>(audio_rate_) * speed / static_cast<double>(device_rate_);
  choose_num();
}

void DriftResampler::choose_num() noexcept {
  // Dither between the two numerators around the requested one: the step below while ahead
  // (more input consumed than the requested speed would have), the step above while behind.
  const double threshold_in = kDitherThreshold * ideal_num_ / den_;
  const auto lo = static_cast<std::uint32_t>(std::floor(ideal_num_));
  const std::uint32_t below = avoid_multiple(lo, false);
  const std::uint32_t above = avoid_multiple(lo + 1, true);
  std::uint32_t num = num_;
  if (num != below && num != above) num = excess_in_ > 0 ? below : above;
  if (excess_in_ > threshold_in) num = below;
  if (excess_in_ < -threshold_in) num = above;
  apply_num(num);
}

void DriftResampler::apply_num(std::uint32_t num) noexcept {
  if (num == num_) return;
  // The denominator stays kSpeexRatioDen (prime, num never a multiple): speexdsp keeps its phase
  // as is, and so does pos_num_.
  speex_resampler_set_rate_frac(state_, num, kSpeexRatioDen, audio_rate_,
                                static_cast<spx_uint32_t>(device_rate_));
  num_ = num;
  ++ratio_changes_;
}

void DriftResampler::reset() noexcept {
  if (state_) {
    speex_resampler_reset_mem(state_);
    speex_resampler_skip_zeros(state_);
  }
  primed_ = false;
  in_total_ = 0;
  pos_num_ = 0;
  excess_in_ = 0.0;
}

std::span<const float> DriftResampler::process(std::span<const float> in,
                                               frames_t frames) noexcept {
  const auto samples = static_cast<std::size_t>(frames) * static_cast<std::size_t>(channels_);
  if (!state_) return in.first(samples);
  auto in_len = static_cast<spx_uint32_t>(frames);
  auto out_len = static_cast<spx_uint32_t>(out_.size() / static_cast<std::size_t>(channels_));
  speex_resampler_process_interleaved_float(state_, in.data(), &in_len, out_.data(), &out_len);
  primed_ = true;
  in_total_ += in_len;
  pos_num_ += static_cast<std::int64_t>(out_len) * num_;
  if (varies_) {
    excess_in_ += static_cast<double>(out_len) * (static_cast<double>(num_) - ideal_num_) / den_;
    choose_num();  // now, so that landing() uses the ratio the next input plays at
  }
  // Keep the sums small: drop whole input frames already passed.
  const std::int64_t whole = pos_num_ / den_;
  in_total_ -= whole;
  pos_num_ -= whole * den_;
  return {out_.data(), std::size_t{out_len} * static_cast<std::size_t>(channels_)};
}

}  // namespace rtpnode
