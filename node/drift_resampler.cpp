#include "node/drift_resampler.hpp"

#include <speex/speex_resampler.h>

#include <stdexcept>
#include <string>

#include "node/resampler_ratio.hpp"

namespace rtpnode {

DriftResampler::DriftResampler(std::uint32_t audio_rate, std::int64_t device_rate, int channels,
                               int quality, bool varies, frames_t max_in_frames)
    : audio_rate_(audio_rate), device_rate_(device_rate), channels_(channels) {
  if (static_cast<std::int64_t>(audio_rate) == device_rate && !varies) return;
  int err = 0;
  state_ = speex_resampler_init(static_cast<spx_uint32_t>(channels), audio_rate,
                                static_cast<spx_uint32_t>(device_rate), quality, &err);
  if (!state_ || err != RESAMPLER_ERR_SUCCESS)
    throw std::runtime_error(std::string("speex_resampler_init: ") + speex_resampler_strerror(err));
  // Start without the filter's leading zeros, so output frame k matches input time k.
  speex_resampler_skip_zeros(state_);
  delay_ = speex_resampler_get_output_latency(state_);
  // Room for the longest input at the slowest speed.
  const frames_t max_out = rescale_floor(max_in_frames, audio_rate, device_rate) + 1;
  out_.resize(static_cast<std::size_t>(max_out * 102 / 100 + 64) *
              static_cast<std::size_t>(channels));
}

DriftResampler::~DriftResampler() {
  if (state_) speex_resampler_destroy(state_);
}

void DriftResampler::set_speed(double speed) noexcept {
  if (!state_) return;
  // Speed exactly 1 (fixed playout without drift compensation) keeps the exact nominal ratio:
  // the fixed denominator cannot express 8000/48000, and bit-exact resampling is expected there.
  const double audio = audio_rate_, dev = static_cast<double>(device_rate_);
  const std::uint32_t num = speed == 1.0 ? kNominalRatio : speex_ratio_num(audio, dev, speed);
  if (num == ratio_num_) return;
  const bool first = ratio_num_ == 0;
  ratio_num_ = num;
  const auto dev_rate = static_cast<spx_uint32_t>(device_rate_);
  if (num == kNominalRatio) {
    speed_ = 1.0;
    if (!first)  // the resampler was created at the nominal ratio
      speex_resampler_set_rate_frac(state_, audio_rate_, dev_rate, audio_rate_, dev_rate);
    return;
  }
  speed_ = speex_ratio_speed(num, audio, dev);
  speex_resampler_set_rate_frac(state_, num, kSpeexRatioDen, audio_rate_, dev_rate);
}

void DriftResampler::reset() noexcept {
  if (state_) {
    speex_resampler_reset_mem(state_);
    speex_resampler_skip_zeros(state_);
  }
  primed_ = false;
}

std::span<const float> DriftResampler::process(std::span<const float> in,
                                               frames_t frames) noexcept {
  const auto samples = static_cast<std::size_t>(frames) * static_cast<std::size_t>(channels_);
  if (!state_) return in.first(samples);
  auto in_len = static_cast<spx_uint32_t>(frames);
  auto out_len = static_cast<spx_uint32_t>(out_.size() / static_cast<std::size_t>(channels_));
  speex_resampler_process_interleaved_float(state_, in.data(), &in_len, out_.data(), &out_len);
  primed_ = true;
  return {out_.data(), std::size_t{out_len} * static_cast<std::size_t>(channels_)};
}

}  // namespace rtpnode
