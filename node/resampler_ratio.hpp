// The speexdsp ratio for a source's playback speed.
//
// Why a fixed denominator: speex_resampler_set_rate_frac (speexdsp 1.2.1, Debian 12) rescales each
// channel's fractional phase by new_den / old_den in 32-bit arithmetic (multiply_frac) and, when
// phase * new_den overflows, returns RESAMPLER_ERR_OVERFLOW with the new ratio stored but the
// phase and filter not updated: the next process call reads out of bounds (we hit it at 44.1 kHz
// with a denominator of 48 000 000; the overflow report is xiph/speexdsp PR #55). The phase is
// below the old denominator, so the product cannot overflow when every denominator is below 2^16.
// kSpeexRatioDen = 65521 is the largest prime below 2^16: speex reduces num/den by their GCD, and
// with a prime denominator the reduced denominator is 65521 (or, if num is a multiple, 1).
//
// Resolution: one step of num changes the speed by dev_rate / (65521 * audio_rate): 15 ppm at
// 48 kHz -> 48 kHz, 17 ppm at 44.1 kHz, 92 ppm at 8 kHz (0.16 cent of pitch; the speed loop's
// proportional term absorbs the rounding as a delay error of at most 92e-6 / 0.5 s = 0.2 ms).
//
// Thread: any (pure).
#pragma once

#include <cmath>
#include <cstdint>

namespace rtpnode {

inline constexpr std::uint32_t kSpeexRatioDen = 65521;

/// Numerator of the speexdsp ratio num / kSpeexRatioDen (input frames per output frame) that
/// plays `audio_rate` audio at `speed` times real time on a `device_rate` device. Rates in Hz,
/// 1000..384000; speed 0.9..1.1.
inline std::uint32_t speex_ratio_num(double audio_rate, double device_rate, double speed) {
  return static_cast<std::uint32_t>(
      std::llround(kSpeexRatioDen * audio_rate * speed / device_rate));
}

/// The speed a numerator gives (inverse of speex_ratio_num).
inline double speex_ratio_speed(std::uint32_t num, double audio_rate, double device_rate) {
  return static_cast<double>(num) * device_rate / (kSpeexRatioDen * audio_rate);
}

}  // namespace rtpnode
