#include "node/concealer.hpp"

#include <algorithm>
#include <cmath>

namespace rtpnode {

Concealer::Concealer(std::uint32_t audio_rate, int channels) noexcept
    : rate_(audio_rate),
      channels_(channels),
      max_frames_(frames_t{audio_rate} * kMaxConcealMs / 1000) {}

void Concealer::concealed(float* buf, frames_t frames) noexcept {
  const frames_t from = frames_t{rate_} * kConcealFadeFromMs / 1000;
  const auto span = static_cast<float>(std::max<frames_t>(1, max_frames_ - from));
  for (frames_t i = 0; i < frames; ++i) {
    const frames_t pos = run_frames_ + i;
    const float g =
        pos <= from ? 1.0f : std::max(0.0f, static_cast<float>(max_frames_ - pos) / span);
    for (int c = 0; c < channels_; ++c) buf[static_cast<std::size_t>(i * channels_ + c)] *= g;
    out_gain_ = g;
  }
  frames_concealed_ += static_cast<std::uint64_t>(frames);
  if (!concealing_) ++events_;
  concealing_ = true;
  run_frames_ += frames;
}

void Concealer::silence(float* buf, frames_t frames) noexcept {
  std::fill_n(buf, frames * channels_, 0.0f);
  frames_silent_ += static_cast<std::uint64_t>(frames);
  out_gain_ = 0.0f;
}

void Concealer::decoded(float* buf, frames_t frames) noexcept {
  concealing_ = false;
  run_frames_ = 0;
  if (out_gain_ >= 1.0f) return;
  const frames_t len = std::max<frames_t>(1, frames_t{rate_} * kResumeRampMs / 1000);
  const float start = out_gain_;
  for (frames_t i = 0; i < std::min(frames, len); ++i) {
    const float g = start + (1.0f - start) * static_cast<float>(i + 1) / static_cast<float>(len);
    for (int c = 0; c < channels_; ++c) buf[static_cast<std::size_t>(i * channels_ + c)] *= g;
  }
  out_gain_ = frames >= len
                  ? 1.0f
                  : start + (1.0f - start) * static_cast<float>(frames) / static_cast<float>(len);
}

void Concealer::reset() noexcept {
  concealing_ = false;
  run_frames_ = 0;
}

void Concealer::set_comfort_noise(std::uint8_t level) noexcept {
  comfort_noise_rms_ = static_cast<float>(std::pow(10.0, -(level & 0x7f) / 20.0));
}

void Concealer::comfort_noise(float* buf, frames_t frames) noexcept {
  const float amp = comfort_noise_rms_ * 1.7320508f;  // uniform noise: rms = amp / sqrt(3)
  for (frames_t i = 0; i < frames * channels_; ++i) {
    noise_state_ = noise_state_ * 6364136223846793005ull + 1442695040888963407ull;
    buf[static_cast<std::size_t>(i)] =
        amp * (static_cast<float>(noise_state_ >> 40) * 0x1.0p-23f - 1.0f);
  }
}

}  // namespace rtpnode
