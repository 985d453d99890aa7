// rtpsend's test signals (tools/rtpsend/audio_input.hpp).
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdlib>

#include "tools/rtpsend/audio_input.hpp"

using rtpnode::rtpsend::make_signal;

// A tone made at the sending rate loops without a seam: the step from the last sample back to
// the first is no larger than any step inside the loop. (Made at 48 kHz and resampled to 8 kHz,
// the loop lost the resampler's latency at its end: a 16 ms dip once a second.)
TEST(RtpsendSignals, ToneLoopsWithoutASeamAtEveryCodecRate) {
  for (int rate : {8000, 16000, 44100, 48000}) {
    const auto a = make_signal("tone", 440, rate);
    ASSERT_EQ(a.rate, rate);
    ASSERT_EQ(a.samples.size(), static_cast<std::size_t>(rate));
    int max_step = 0;
    for (std::size_t i = 1; i < a.samples.size(); ++i)
      max_step = std::max(max_step, std::abs(a.samples[i] - a.samples[i - 1]));
    EXPECT_LE(std::abs(a.samples.front() - a.samples.back()), max_step) << rate;
    // 440 whole cycles: a quarter period in, the sine peaks at 16384 (-6 dBFS).
    int peak = 0;
    for (std::int16_t s : a.samples) peak = std::max(peak, static_cast<int>(s));
    EXPECT_NEAR(peak, 16384, 16384 * (1 - std::cos(M_PI * 440 / rate))) << rate;
  }
}

TEST(RtpsendSignals, ClicksComeAtTheirRateAtEveryCodecRate) {
  for (int rate : {8000, 48000}) {
    const auto a = make_signal("clicks", 4, rate);
    int clicks = 0;
    for (std::int16_t s : a.samples) clicks += s > 0 ? 1 : 0;
    EXPECT_EQ(clicks, 4) << rate;
    EXPECT_EQ(a.samples[static_cast<std::size_t>(rate / 4)], 29491) << rate;
  }
}
