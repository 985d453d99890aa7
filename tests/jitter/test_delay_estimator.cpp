#include <gtest/gtest.h>

#include <cmath>

#include "jitter/delay_estimator.hpp"
#include "jitter/playout.hpp"

using namespace rtpnode;

namespace {
constexpr ext_ts_t kPtime = 960;  // 20 ms at 48 kHz
constexpr mono_ns_t kMs = 1'000'000;

DelayEstimator make() {
  DelayEstimatorConfig c;
  c.clock_rate = 48000;
  c.quantile = 0.99;
  return DelayEstimator(c);
}
}  // namespace

TEST(DelayEstimator, CleanNetworkGivesTheSmallestBucket) {
  DelayEstimator e = make();
  for (int i = 0; i < 500; ++i) e.update(i * kPtime, 7 * kMs + i * 20 * kMs, kPtime);
  EXPECT_EQ(e.floor_ns(), 7 * kMs);
  EXPECT_EQ(e.quantile_ns(), 1 * kMs);
}

TEST(DelayEstimator, QuantileCoversAllButTheBudget) {
  DelayEstimator e = make();
  // Every 10th packet 30 ms late, every 200th 80 ms late (0.5 %): the 99 % quantile is 30 ms.
  for (int i = 0; i < 2000; ++i) {
    const mono_ns_t extra = i % 200 == 7 ? 80 * kMs : (i % 10 == 3 ? 30 * kMs : 0);
    e.update(i * kPtime, i * 20 * kMs + extra, kPtime);
  }
  EXPECT_EQ(e.quantile_ns(), 31 * kMs);  // bucket upper edge
}

TEST(DelayEstimator, LossDoesNotInflateTheEstimate) {
  DelayEstimator e = make();
  for (int i = 0; i < 1000; ++i)
    if (i % 7 != 0) e.update(i * kPtime, i * 20 * kMs, kPtime);  // 14 % lost, no jitter
  EXPECT_EQ(e.quantile_ns(), 1 * kMs);
}

TEST(DelayEstimator, RouteChangeDownLowersTheFloorAndKeepsTheShape) {
  DelayEstimator e = make();
  int i = 0;
  for (; i < 500; ++i) e.update(i * kPtime, 100 * kMs + i * 20 * kMs + (i % 4) * 5 * kMs, kPtime);
  const mono_ns_t q = e.quantile_ns();
  for (; i < 520; ++i) e.update(i * kPtime, i * 20 * kMs + (i % 4) * 5 * kMs, kPtime);
  EXPECT_EQ(e.floor_ns(), 0);
  EXPECT_EQ(e.quantile_ns(), q);  // the jitter did not change, only the path
}

TEST(DelayEstimator, FloorRiseShiftsEntriesSoTheTargetDoesNotOvershoot) {
  DelayEstimator e = make();
  int i = 0;
  for (; i < 500; ++i) e.update(i * kPtime, i * 20 * kMs, kPtime);
  // +100 ms step: for the 2 s window the packets look 100 ms late, then the floor follows.
  for (; i < 1000; ++i) e.update(i * kPtime, 100 * kMs + i * 20 * kMs, kPtime);
  EXPECT_EQ(e.floor_ns(), 100 * kMs);
  EXPECT_LE(e.quantile_ns(), 2 * kMs);
}

TEST(DelayEstimator, ComputesRfc3550Jitter) {
  DelayEstimator e = make();
  // Alternating 0 / 10 ms extra delay: |D| = 10 ms for every pair, J converges to 10 ms.
  for (int i = 0; i < 400; ++i) e.update(i * kPtime, i * 20 * kMs + (i % 2) * 10 * kMs, kPtime);
  EXPECT_NEAR(e.jitter_ns(), 10.0 * kMs, 0.01 * kMs);
}

TEST(PlayoutController, SpeedTrimIsProportionalBoundedAndSlewLimited) {
  PlayoutConfig c;
  c.clock_rate = 48000;
  c.drift_compensation = false;  // P only: the proportional law alone
  PlayoutController pc(c);
  for (int i = 0; i < 100; ++i) pc.on_packet(i * kPtime, i * 20 * kMs, kPtime);
  const mono_ns_t target = pc.target_ns(kPtime);
  EXPECT_EQ(target, 1 * kMs);
  mono_ns_t now = 0;
  auto settle = [&](mono_ns_t delay) {  // 3 s of 20 ms updates: past the slew limit
    double s = 0;
    for (int i = 0; i < 150; ++i) s = pc.update_speed(now += 20 * kMs, delay, kPtime);
    return s;
  };
  EXPECT_DOUBLE_EQ(settle(target), 1.0);
  EXPECT_NEAR(settle(target + 10 * kMs), 1.005, 1e-12);  // 0.5/s * 10 ms
  EXPECT_NEAR(settle(target + 500 * kMs), 1.01, 1e-12);  // limit
  // From +1 % to -1 %: at most 5 %/s, i.e. 1000 ppm per 20 ms update, never a step.
  double prev = pc.speed();
  for (int i = 0; i < 150; ++i) {
    const double s = pc.update_speed(now += 20 * kMs, target - 500 * kMs, kPtime);
    EXPECT_LE(std::fabs(s - prev), 0.05 * 0.02 + 1e-12);
    prev = s;
  }
  EXPECT_NEAR(prev, 0.99, 1e-12);
}

TEST(PlayoutController, GapAbsorbsTheDelayError) {
  PlayoutConfig c;
  c.clock_rate = 48000;
  PlayoutController pc(c);
  for (int i = 0; i < 100; ++i) pc.on_packet(i * kPtime, i * 20 * kMs, kPtime);
  const mono_ns_t target = pc.target_ns(kPtime);
  EXPECT_EQ(pc.adjust_gap(400 * kMs, target + 150 * kMs, kPtime), 250 * kMs);  // shortened
  EXPECT_EQ(pc.adjust_gap(40 * kMs, target + 150 * kMs, kPtime), 0);           // at most all of it
  EXPECT_EQ(pc.adjust_gap(400 * kMs, target - 30 * kMs, kPtime), 430 * kMs);   // lengthened
  EXPECT_EQ(pc.counters().gap_adjustments, 3u);
}

TEST(PlayoutController, FixedModeWithoutDriftCompensationNeverExpandsOrTrims) {
  PlayoutConfig c;
  c.clock_rate = 48000;
  c.adaptive = false;
  c.drift_compensation = false;
  c.start_delay_ns = 40 * kMs;
  PlayoutController pc(c);
  for (int i = 0; i < 100; ++i) pc.on_packet(i * kPtime, i * 20 * kMs, kPtime);
  EXPECT_EQ(pc.target_ns(kPtime), 40 * kMs);
  EXPECT_FALSE(pc.may_expand(0, kPtime));
  EXPECT_DOUBLE_EQ(pc.update_speed(0, 500 * kMs, kPtime), 1.0);
  EXPECT_DOUBLE_EQ(pc.update_speed(2'000 * kMs, 500 * kMs, kPtime), 1.0);
}
