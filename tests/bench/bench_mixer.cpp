// Callback cost of the mixer (issue #4): N streams of stereo audio routed into a stereo device,
// 256-frame periods at 48 kHz, rings refilled between callbacks as the loop thread would. Prints
// median, p99 and max of the callback time and the share of the 5.33 ms period they take.
// Target: 64 streams <= 5 % of the period. Run: build/tests/bench_mixer [callbacks]
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <vector>

#include "node/mixer.hpp"

using namespace rtpnode;

int main(int argc, char** argv) {
  const int callbacks = argc > 1 ? std::atoi(argv[1]) : 20000;
  constexpr frames_t kPeriod = 256;
  constexpr double kPeriodUs = kPeriod * 1e6 / 48000.0;
  std::printf("streams  median_us  p99_us  max_us  p99_%%period  max_%%period\n");
  for (int n : {1, 16, 64, 256}) {
    Mixer m(2, static_cast<std::size_t>(n), 240);
    std::vector<std::unique_ptr<PlayoutStream>> streams;
    std::vector<float> chunk(kPeriod * 2);
    for (std::size_t i = 0; i < chunk.size(); ++i) chunk[i] = static_cast<float>(i % 97) * 1e-3f;
    for (int i = 0; i < n; ++i) {
      streams.push_back(std::make_unique<PlayoutStream>(static_cast<std::uint32_t>(i), 2, 8192, 0));
      // Alternate routes and gains so the taps and the gain path are exercised.
      const Route r = i % 2 ? Route::to_channels(2, {1, 0}) : Route::standard(2, 2);
      m.add(streams.back().get(), r, i % 3 ? 0.5f : 1.0f);
    }
    std::vector<float> out(kPeriod * 2);
    std::vector<double> us;
    us.reserve(static_cast<std::size_t>(callbacks));
    for (int c = 0; c < callbacks; ++c) {
      for (auto& s : streams) s->ring.push(chunk.data(), chunk.size());
      const auto t0 = std::chrono::steady_clock::now();
      m.process(out.data(), kPeriod, {});
      const auto t1 = std::chrono::steady_clock::now();
      us.push_back(std::chrono::duration<double, std::micro>(t1 - t0).count());
    }
    std::sort(us.begin(), us.end());
    const double med = us[us.size() / 2], p99 = us[us.size() * 99 / 100], mx = us.back();
    std::printf("%7d  %9.2f  %6.2f  %6.1f  %11.2f  %11.2f\n", n, med, p99, mx,
                100 * p99 / kPeriodUs, 100 * mx / kPeriodUs);
  }
  return 0;
}
