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

/// The worst distance (frames) between each predicted position and the peak of the impulse
/// near it in `out` (parabolic interpolation of the three largest samples). The first is
/// skipped: it has no left neighbour for the interpolation.
double worst_peak_distance(const std::vector<float>& out, const std::vector<double>& predicted) {
  double worst = 0;
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
  return worst_peak_distance(out, predicted);
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

// Issue #18: bypass at equal rates. Speeds near 1 play straight from the input; the filter runs
// only for slips (one frame in ~21 ms) and for larger speed changes.

namespace {

/// A 440 Hz sine at amplitude 0.5, frames [first, first + n), `channels` identical channels.
std::vector<float> sine(std::int64_t first, frames_t n, int channels, double hz = 440.0) {
  std::vector<float> v(static_cast<std::size_t>(n * channels));
  for (frames_t i = 0; i < n; ++i)
    for (int c = 0; c < channels; ++c)
      v[static_cast<std::size_t>(i * channels + c)] = static_cast<float>(
          0.5 * std::sin(2 * M_PI * hz * static_cast<double>(first + i) / 48000.0));
  return v;
}

}  // namespace

TEST(DriftResampler, BypassAtSpeedOnePassesTheInputThroughBitExact) {
  DriftResampler r(48000, 48000, 2, 4, true, 960, true);
  ASSERT_TRUE(r.bypassing());
  std::vector<float> out;
  for (int p = 0; p < 50; ++p) {
    const auto o = r.process(sine(p * 960, 960, 2), 960);
    out.insert(out.end(), o.begin(), o.end());
  }
  EXPECT_EQ(r.filtered_frames(), 0u);
  // The filter's input latency is held back, as the filter would: output + landing = input.
  const double landing = r.landing();
  EXPECT_GT(landing, 0.0);
  EXPECT_EQ(static_cast<double>(out.size() / 2) + landing, 50 * 960.0);
  const auto ref = sine(0, static_cast<frames_t>(out.size() / 2), 2);
  EXPECT_EQ(out, ref);
}

// The position follows drift-sized speeds within the slip threshold, with the filter running a
// small share of the time, and never moves by more than a slip at once.
TEST(DriftResampler, BypassFollowsSmallSpeedsWithinTheSlipThreshold) {
  for (double speed : {1.0 + 5e-6, 1.0 - 20e-6, 1.0 + 100e-6, 1.0 - 400e-6}) {
    DriftResampler r(48000, 48000, 1, 4, true, 960, true);
    r.set_speed(speed);
    double out = 0, worst = 0;
    constexpr int kPackets = 3000;  // 60 s
    for (int i = 0; i < kPackets; ++i) {
      out += static_cast<double>(r.process(sine(i * 960, 960, 1), 960).size());
      const double expected = (i + 1) * 960.0 / speed;
      worst = std::max(worst, std::abs(out + r.landing() - expected));
    }
    // Error in output frames: the threshold, plus the part of a slip under way.
    EXPECT_LT(worst, DriftResampler::kSlipThreshold + 1.05) << "speed " << speed;
    const double filtered = static_cast<double>(r.filtered_frames()) /
                            static_cast<double>(r.filtered_frames() + r.passed_frames());
    // Each slip filters ~1000 frames for one frame of drift: the share is |speed - 1| / 0.001.
    EXPECT_LT(filtered, std::abs(speed - 1.0) / DriftResampler::kSlipSpeed * 1.2 + 0.01)
        << "speed " << speed;
    EXPECT_GE(static_cast<double>(r.slips()), std::abs(speed - 1.0) * kPackets * 960 - 2);
    std::printf("speed %+.0f ppm: worst %.3f frames, filtered %.2f %%, %llu slips\n",
                (speed - 1) * 1e6, worst, filtered * 100,
                static_cast<unsigned long long>(r.slips()));
  }
}

// No click at any switch: the output of a 440 Hz sine stays a sine. Its second difference is
// at most A * w^2 (0.0017 here); a dropped or repeated frame would add A * w (0.029), and even
// a 0.01-frame step 3e-4.
TEST(DriftResampler, BypassSwitchesWithoutClicks) {
  DriftResampler r(48000, 48000, 1, 4, true, 960, true);
  std::vector<float> out;
  const double speeds[] = {1.0 + 80e-6, 1.0 + 0.004, 1.0 - 60e-6, 1.0 - 0.01, 1.0 + 30e-6};
  for (int p = 0; p < 1500; ++p) {
    r.set_speed(speeds[(p / 300) % 5]);
    const auto o = r.process(sine(p * 960, 960, 1), 960);
    out.insert(out.end(), o.begin(), o.end());
  }
  EXPECT_GT(r.slips(), 20u);
  EXPECT_GT(r.passed_frames(), 200'000u);
  const double w = 2 * M_PI * 440.0 / 48000.0;
  const double bound = 0.5 * w * w * 1.05;
  double worst = 0;
  for (std::size_t i = 64; i + 1 < out.size(); ++i)
    worst = std::max(worst, std::abs(static_cast<double>(out[i + 1]) - 2.0 * out[i] + out[i - 1]));
  EXPECT_LT(worst, bound);
  std::printf("largest second difference %.6f (a sine's %.6f)\n", worst, 0.5 * w * w);
}

// Leaving a large trim (follow) for pass ends on the whole position nearest the request.
TEST(DriftResampler, BypassReturnsToPassAfterATrim) {
  DriftResampler r(48000, 48000, 2, 4, true, 960, true);
  double out = 0, expected = 0;
  for (int p = 0; p < 1000; ++p) {
    const double speed = p < 200 ? 1.0 : p < 400 ? 1.01 : 1.0 + 10e-6;
    r.set_speed(speed);
    out += static_cast<double>(r.process(sine(p * 960, 960, 2), 960).size() / 2);
    expected += 960.0 / speed;
  }
  EXPECT_NEAR(out + r.landing(), expected, DriftResampler::kSlipThreshold + 0.05);
  const std::uint64_t passed = r.passed_frames();
  r.process(sine(1000 * 960, 960, 2), 960);
  EXPECT_EQ(r.passed_frames(), passed + 960);  // back in pass
}

TEST(DriftResampler, BypassLandingPredictsWhereTheNextInputFramePlays) {
  constexpr frames_t n = 960;
  DriftResampler r(48000, 48000, 1, 4, true, n, true);
  std::mt19937 rng(3);
  std::uniform_real_distribution<double> speed(1.0 - 300e-6, 1.0 + 300e-6);
  std::vector<float> in(static_cast<std::size_t>(n), 0.0f), out;
  in[0] = 1.0f;
  std::vector<double> predicted;
  for (int p = 0; p < 400; ++p) {
    if (p % 50 == 0) r.set_speed(p % 100 == 0 ? 1.003 : speed(rng));  // some follow, some pass
    predicted.push_back(static_cast<double>(out.size()) + r.landing());
    const auto o = r.process(in, n);
    out.insert(out.end(), o.begin(), o.end());
  }
  const double worst = worst_peak_distance(out, predicted);
  std::printf("bypass landing error %.3f frames\n", worst);
  EXPECT_LT(worst, 0.25);
  // Half the time at 1.003 (follow), the other half within 300 ppm of 1 (mostly pass).
  EXPECT_GT(r.passed_frames(), (r.passed_frames() + r.filtered_frames()) / 4);
  EXPECT_GT(r.filtered_frames(), (r.passed_frames() + r.filtered_frames()) / 2);
}

// Synchronised sources forbid bypass: the filter takes over at once and the position then
// follows the request to a fraction of a frame; allowed again, it returns to pass.
TEST(DriftResampler, ForbiddingBypassFollowsTheSpeedWithTheFilter) {
  DriftResampler r(48000, 48000, 1, 4, true, 960, true);
  r.set_speed(1.0 + 40e-6);
  double out = 0, expected = 0;
  for (int p = 0; p < 100; ++p) {
    out += static_cast<double>(r.process(sine(p * 960, 960, 1), 960).size());
    expected += 960.0 / r.speed();
  }
  r.allow_bypass(false);
  const std::uint64_t passed = r.passed_frames();
  double worst = 0;
  for (int p = 100; p < 1100; ++p) {
    out += static_cast<double>(r.process(sine(p * 960, 960, 1), 960).size());
    expected += 960.0 / r.speed();
    if (p > 300) worst = std::max(worst, std::abs(out + r.landing() - expected));
  }
  EXPECT_EQ(r.passed_frames(), passed);
  EXPECT_LT(worst, 2 * DriftResampler::kDitherThreshold);
  r.allow_bypass(true);
  for (int p = 1100; p < 1110; ++p) r.process(sine(p * 960, 960, 1), 960);
  EXPECT_GT(r.passed_frames(), passed + 4000);
}
