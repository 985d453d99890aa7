// Float samples to integer PCM, as rtpnode writes files (node/file_backend.hpp, --output; and
// node/call_recorder.hpp, --record): s = round(x * scale) to the nearest integer, ties to even,
// clipped to [-scale, scale - 1]. scale = 32768 for 16-bit, 8388608 for 24-bit. A float that is a
// 16-bit sample / 32768 (G.711 and L16 decode to those) comes back exactly.
// Thread: any; pure.
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>

#if defined(__SSE2__)
#include <emmintrin.h>
#endif

namespace rtpnode {

/// round(x * scale) ties to even, clipped to [-scale, scale - 1]; `scale` a power of two up to
/// 2^31. Rounds by adding and removing 1.5 * 2^52 (exact for |v| < 2^51 in the default rounding
/// mode; what std::nearbyint does, without its library call per sample).
template <typename Int>
[[nodiscard]] inline Int quantise(float x, double scale) noexcept {
  const double v = std::clamp(static_cast<double>(x) * scale, -scale, scale - 1.0);
  constexpr double kRound = 6755399441055744.0;  // 1.5 * 2^52
  // IEEE arithmetic (no -ffast-math here): the compiler may not fold this back into v.
  return static_cast<Int>((v + kRound) - kRound);
}

/// One sample of quantise<int16_t>(x, 32768) in float arithmetic, in a form compilers vectorise:
/// x * 32768 is exact (a power of two), and adding 1.5 * 2^23 rounds it to the nearest integer,
/// ties to even, for |x * 32768| <= 2^22 (floats in [2^23, 2^24) are the integers); anything
/// beyond is clipped after the addition, so its rounding does not matter. NaN gives an
/// unspecified sample.
inline std::int16_t quantise_s16_one(float x) noexcept {
  constexpr float kRound = 12582912.0f;  // 1.5 * 2^23
  float v = x * 32768.0f + kRound;
  v = v < kRound - 32768.0f ? kRound - 32768.0f : v;
  v = v > kRound + 32767.0f ? kRound + 32767.0f : v;
  return static_cast<std::int16_t>(static_cast<std::int32_t>(v) -
                                   static_cast<std::int32_t>(kRound));
}

#if defined(__SSE2__)
namespace detail {
/// Eight samples from `in` to 16-bit: clip to [-32768, 32767] (minps/maxps), round to nearest
/// ties to even (cvtps2dq in the default MXCSR rounding mode, which nothing here changes), narrow
/// with signed saturation (packssdw). Equal to quantise_s16_one for every non-NaN input.
inline __m128i quantise_s16_x8(const float* in) noexcept {
  const __m128 lo = _mm_set1_ps(-32768.0f), hi = _mm_set1_ps(32767.0f);
  const __m128 scale = _mm_set1_ps(32768.0f);
  const __m128 a = _mm_min_ps(_mm_max_ps(_mm_mul_ps(_mm_loadu_ps(in), scale), lo), hi);
  const __m128 b = _mm_min_ps(_mm_max_ps(_mm_mul_ps(_mm_loadu_ps(in + 4), scale), lo), hi);
  return _mm_packs_epi32(_mm_cvtps_epi32(a), _mm_cvtps_epi32(b));
}
}  // namespace detail
#endif

/// quantise<int16_t>(in[i], 32768) for n samples (quantise_s16_one; SSE2 eight at a time: GCC's
/// own vectorisation of the loop narrows with shuffles at the x86-64 baseline, 8 instructions a
/// sample in a 100-call render).
inline void quantise_s16(const float* in, std::int16_t* out, std::size_t n) noexcept {
  std::size_t i = 0;
#if defined(__SSE2__)
  for (; i + 8 <= n; i += 8)
    _mm_storeu_si128(reinterpret_cast<__m128i*>(out + i), detail::quantise_s16_x8(in + i));
#endif
  for (; i < n; ++i) out[i] = quantise_s16_one(in[i]);
}

/// quantise_s16 of two planar channels into n interleaved stereo frames: out[2i] from left[i],
/// out[2i + 1] from right[i].
inline void quantise_s16_interleave(const float* left, const float* right, std::int16_t* out,
                                    std::size_t n) noexcept {
  std::size_t i = 0;
#if defined(__SSE2__)
  for (; i + 8 <= n; i += 8) {
    const __m128i l = detail::quantise_s16_x8(left + i), r = detail::quantise_s16_x8(right + i);
    _mm_storeu_si128(reinterpret_cast<__m128i*>(out + 2 * i), _mm_unpacklo_epi16(l, r));
    _mm_storeu_si128(reinterpret_cast<__m128i*>(out + 2 * i + 8), _mm_unpackhi_epi16(l, r));
  }
#endif
  for (; i < n; ++i) {
    out[2 * i] = quantise_s16_one(left[i]);
    out[2 * i + 1] = quantise_s16_one(right[i]);
  }
}

}  // namespace rtpnode
