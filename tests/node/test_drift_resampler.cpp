// The resampling stage: passthrough, rate conversion and speed trims, by counting frames.
#include <gtest/gtest.h>

#include <cmath>
#include <random>
#include <vector>

#include "node/drift_resampler.hpp"

using namespace rtpnode;

TEST(DriftResampler, EqualRatesWithoutSpeedChangesPassThroughBitExact) {
  DriftResampler r(48000, 48000, 2, 4, false, 1920);
  EXPECT_FALSE(r.active());
  EXPECT_EQ(r.landing(), 0.0);
  std::vector<float> in(1920);
  for (std::size_t i = 0; i < in.size(); ++i) in[i] = static_cast<float>(i) / 32768.0f;
  const auto out = r.process(in, 960);
  ASSERT_EQ(out.size(), in.size());
  EXPECT_EQ(out.data(), in.data());
}

TEST(DriftResampler, ConvertsRatesAndTrimsTheSpeed) {
  DriftResampler r(8000, 48000, 1, 4, true, 160);
  ASSERT_TRUE(r.active());
  EXPECT_EQ(r.landing(), 0.0);  // nothing went in yet
  std::vector<float> in(160, 0.25f);
  // 100 packets of 20 ms at speed 1: 6 output frames per input frame, up to where the next
  // input frame lands (the numerator is dithered around 1/6: within the dither threshold).
  std::size_t out_frames = 0;
  for (int i = 0; i < 100; ++i) out_frames += r.process(in, 160).size();
  EXPECT_TRUE(r.primed());
  EXPECT_NEAR(static_cast<double>(out_frames) + r.landing(), 96000.0,
              2 * DriftResampler::kDitherThreshold);
  // 1 % fast: 1 % fewer output frames for the same input.
  r.set_speed(1.01);
  EXPECT_NEAR(r.speed(), 1.01, 1e-4);
  std::size_t fast = 0;
  for (int i = 0; i < 100; ++i) fast += r.process(in, 160).size();
  EXPECT_NEAR(static_cast<double>(fast), 96000.0 / 1.01, 60.0);
  r.set_speed(1.0);
  EXPECT_EQ(r.speed(), 1.0);
  r.reset();
  EXPECT_FALSE(r.primed());
  EXPECT_EQ(r.landing(), 0.0);
}

namespace {

/// Feeds `packets` packets of `n` input frames, each starting with an impulse (the rest silent),
/// at a speed drawn per packet from [1 - spread, 1 + spread]; returns the worst distance (output
/// frames) between where landing() said each packet's first frame would play and the peak of
/// its impulse in the output (parabolic interpolation of the three largest samples).
double worst_landing_error(std::uint32_t audio_rate, double spread, int packets, frames_t n) {
  DriftResampler r(audio_rate, 48000, 1, 4, true, n);
  std::mt19937 rng(7);
  std::uniform_real_distribution<double> speed(1.0 - spread, 1.0 + spread);
  std::vector<float> in(static_cast<std::size_t>(n), 0.0f), out;
  in[0] = 1.0f;
  std::vector<double> predicted;
  for (int p = 0; p < packets; ++p) {
    r.set_speed(speed(rng));
    predicted.push_back(static_cast<double>(out.size()) + r.landing());
    const auto o = r.process(in, n);
    out.insert(out.end(), o.begin(), o.end());
  }
  double worst = 0;
  // (The first impulse is skipped: it has no left neighbour for the interpolation.)
  for (std::size_t p = 1; p + 1 < predicted.size(); ++p) {
    const auto c = static_cast<std::size_t>(std::llround(predicted[p]));
    std::size_t best = c;
    for (std::size_t i = c > 8 ? c - 8 : 0; i <= c + 8 && i + 1 < out.size(); ++i)
      if (out[i] > out[best]) best = i;
    if (best == 0) continue;
    const double y0 = out[best - 1], y1 = out[best], y2 = out[best + 1];
    const double peak = static_cast<double>(best) + 0.5 * (y0 - y2) / (y0 - 2 * y1 + y2);
    worst = std::max(worst, std::abs(peak - predicted[p]));
  }
  return worst;
}

}  // namespace

// Issue #20: where a packet's first frame lands, known to a fraction of a frame, at any speed
// (resampled 8 kHz audio and 48 kHz audio trimmed), including the fractional phase.
TEST(DriftResampler, LandingPredictsWhereTheNextInputFramePlays) {
  const double upsampled = worst_landing_error(8000, 0.01, 200, 160);
  const double trimmed = worst_landing_error(48000, 0.01, 200, 960);
  std::printf("landing error: 8 kHz %.3f frames, 48 kHz %.3f frames\n", upsampled, trimmed);
  EXPECT_LT(upsampled, 0.1);
  EXPECT_LT(trimmed, 0.25);  // an impulse at 48 kHz is 3 samples wide: interpolation error
}

// Issue #20: the numerator is dithered, so the output follows a requested speed much finer than
// one step of the ratio (92 ppm at 8 -> 48 kHz), without rebuilding the filter per packet.
TEST(DriftResampler, OutputFollowsASpeedFinerThanOneRatioStep) {
  for (double speed : {1.0, 1.00001, 0.99997, 1.00437}) {
    DriftResampler r(8000, 48000, 1, 4, true, 160);
    r.set_speed(speed);
    std::vector<float> in(160, 0.1f);
    double out = 0;
    constexpr int kPackets = 3000;  // 60 s
    for (int i = 0; i < kPackets; ++i) out += static_cast<double>(r.process(in, 160).size());
    // Output frames up to where the next input frame lands = input frames * 6 / speed.
    EXPECT_NEAR(out + r.landing(), kPackets * 960.0 / speed, 2 * DriftResampler::kDitherThreshold)
        << "speed " << speed;
    // A change rebuilds speexdsp's filter table: measured at about 3 us each here, and at most
    // 10 a second.
    EXPECT_LT(r.ratio_changes(), 600u) << "speed " << speed;
  }
}
