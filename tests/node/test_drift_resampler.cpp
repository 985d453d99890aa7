// The resampling stage: passthrough, rate conversion and speed trims, by counting frames.
#include <gtest/gtest.h>

#include <vector>

#include "node/drift_resampler.hpp"

using namespace rtpnode;

TEST(DriftResampler, EqualRatesWithoutSpeedChangesPassThroughBitExact) {
  DriftResampler r(48000, 48000, 2, 4, false, 1920);
  EXPECT_FALSE(r.active());
  EXPECT_EQ(r.delay(), 0);
  std::vector<float> in(1920);
  for (std::size_t i = 0; i < in.size(); ++i) in[i] = static_cast<float>(i) / 32768.0f;
  const auto out = r.process(in, 960);
  ASSERT_EQ(out.size(), in.size());
  EXPECT_EQ(out.data(), in.data());
}

TEST(DriftResampler, ConvertsRatesAndTrimsTheSpeed) {
  DriftResampler r(8000, 48000, 1, 4, true, 160);
  ASSERT_TRUE(r.active());
  EXPECT_GT(r.delay(), 0);
  std::vector<float> in(160, 0.25f);
  // 100 packets of 20 ms at speed 1: 6 output frames per input frame, less the filter's delay.
  std::size_t out_frames = 0;
  for (int i = 0; i < 100; ++i) out_frames += r.process(in, 160).size();
  EXPECT_TRUE(r.primed());
  EXPECT_NEAR(static_cast<double>(out_frames + static_cast<std::size_t>(r.delay())), 96000.0, 2.0);
  // 1 % fast: 1 % fewer output frames for the same input.
  r.set_speed(1.01);
  EXPECT_NEAR(r.speed(), 1.01, 1e-4);
  std::size_t fast = 0;
  for (int i = 0; i < 100; ++i) fast += r.process(in, 160).size();
  EXPECT_NEAR(static_cast<double>(fast), 96000.0 / 1.01, 60.0);
  // Back to exactly 1: the nominal ratio again.
  r.set_speed(1.0);
  EXPECT_EQ(r.speed(), 1.0);
  r.reset();
  EXPECT_FALSE(r.primed());
}
