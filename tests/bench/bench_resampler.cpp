// Cost of the rate-conversion stage per stream (issue #5): speexdsp as Source uses it, per 20 ms
// packet, at each quality, for the two cases the issue names (mono 8 kHz -> 48 kHz, stereo
// 44.1 kHz -> 48 kHz), with the ratio held and with the ratio changed before every packet (the
// drift loop's worst case: set_rate_frac rebuilds the filter). Run: build/tests/bench_resampler.
// Time is per 20 ms packet of one stream; its share of a core is Time / 20 ms.
#include <benchmark/benchmark.h>
#include <speex/speex_resampler.h>

#include <cmath>
#include <vector>

#include "node/resampler_ratio.hpp"

namespace {

void run(benchmark::State& state, int channels, spx_uint32_t in_rate, bool change_ratio) {
  const int quality = static_cast<int>(state.range(0));
  int err = 0;
  SpeexResamplerState* r =
      speex_resampler_init(static_cast<spx_uint32_t>(channels), in_rate, 48000, quality, &err);
  speex_resampler_skip_zeros(r);
  const spx_uint32_t in_frames = in_rate / 50;  // 20 ms
  std::vector<float> in(in_frames * static_cast<spx_uint32_t>(channels));
  for (std::size_t i = 0; i < in.size(); ++i)
    in[i] = 0.5f * std::sin(static_cast<float>(i) * 0.05f);
  std::vector<float> out((960 * 102 / 100 + 64) * static_cast<std::size_t>(channels));
  double speed = 1.0;
  std::int64_t n = 0;
  for (auto _ : state) {
    if (change_ratio) {
      // +-500 ppm around nominal, a new step every packet (as fine as the ratio resolves).
      speed = 1.0 + 1e-5 * static_cast<double>((n % 100) - 50);
      speex_resampler_set_rate_frac(r, rtpnode::speex_ratio_num(in_rate, 48000, speed),
                                    rtpnode::kSpeexRatioDen, in_rate, 48000);
    }
    spx_uint32_t in_len = in_frames;
    auto out_len = static_cast<spx_uint32_t>(out.size() / static_cast<std::size_t>(channels));
    speex_resampler_process_interleaved_float(r, in.data(), &in_len, out.data(), &out_len);
    benchmark::DoNotOptimize(out.data());
    ++n;
  }
  speex_resampler_destroy(r);
}

void MonoPcmu8kTo48k(benchmark::State& s) {
  run(s, 1, 8000, false);
}
void MonoPcmu8kTo48kRatioChanging(benchmark::State& s) {
  run(s, 1, 8000, true);
}
void Stereo44k1To48k(benchmark::State& s) {
  run(s, 2, 44100, false);
}
void Stereo44k1To48kRatioChanging(benchmark::State& s) {
  run(s, 2, 44100, true);
}
void Stereo48kTo48kRatioChanging(benchmark::State& s) {
  run(s, 2, 48000, true);
}

}  // namespace

BENCHMARK(MonoPcmu8kTo48k)->DenseRange(0, 5);
BENCHMARK(MonoPcmu8kTo48kRatioChanging)->DenseRange(0, 5);
BENCHMARK(Stereo44k1To48k)->DenseRange(0, 5);
BENCHMARK(Stereo44k1To48kRatioChanging)->DenseRange(0, 5);
BENCHMARK(Stereo48kTo48kRatioChanging)->DenseRange(0, 5);
BENCHMARK_MAIN();
