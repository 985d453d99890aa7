// The #3 acceptance bounds, checked by running the real jitter buffer and playout controller over
// the harness's synthetic traces (deterministic: seed 7, 120 s each). tools/rtpjbsim prints the
// same figures.
#include <gtest/gtest.h>

#include <cstdio>
#include <fstream>

#include "tools/trace_sim.hpp"

using namespace rtpnode;
using namespace rtpnode::sim;

namespace {

constexpr double kSeconds = 120;
constexpr std::uint64_t kSeed = 7;

struct Point {
  const char* name;
  double epsilon;
  PlayoutProfile profile;
};
const Point kSpeech{"speech", 0.01, kSpeechProfile};
const Point kMusic{"music", 0.001, kMusicProfile};

SimResult run(const Trace& t, const Point& p, int extra_margin = 0) {
  SimOptions o;
  o.epsilon = p.epsilon;
  o.playout.estimator.quantile = p.profile.quantile;
  o.playout.estimator.memory_ns = p.profile.memory_ns;
  o.playout.margin_packets += extra_margin;
  return simulate(t, o);
}

std::vector<Trace> jitter_traces() {
  return {make_uniform(kSeconds, 40, kSeed),    make_uniform(kSeconds, 100, kSeed),
          make_pareto(kSeconds, 5, 2.5, kSeed), make_gilbert(kSeconds, 0.05, 3, kSeed),
          make_loss(kSeconds, 0.05, kSeed),     make_wifi(kSeconds, kSeed),
          make_reorder(kSeconds, 0.02, kSeed)};
}

}  // namespace

class TraceHarness : public ::testing::TestWithParam<Point> {};

TEST_P(TraceHarness, LateLossWithinBudgetAtMostTwentyPercentAboveTheFixedOracle) {
  const Point p = GetParam();
  for (const Trace& t : jitter_traces()) {
    const SimResult r = run(t, p);
    std::printf(
        "%-7s %-20s late %.3f%% mean %.1f ms fixed* %.1f ms (x%.2f) window* %.1f ms (x%.2f)\n",
        p.name, t.name.c_str(), r.late_loss * 100, r.mean_delay_ms, r.oracle_fixed_ms,
        r.ratio_fixed, r.oracle_window_ms, r.ratio_window);
    EXPECT_LE(r.late_loss, p.epsilon) << t.name;
    EXPECT_LE(r.mean_delay_ms, 1.2 * r.oracle_fixed_ms) << t.name;
  }
}

TEST_P(TraceHarness, CleanNetworkConvergesToWithinOnePacketPlusTwoMs) {
  const SimResult r = run(make_clean(kSeconds), GetParam());
  EXPECT_EQ(r.late, 0u);
  EXPECT_LE(r.final_delay_ms, 20.0 + 2.0);
}

TEST_P(TraceHarness, LateLossStopsWithinTwoSecondsOfAPlus100msStep) {
  const SimResult r = run(make_step(kSeconds, 100, kSeed), GetParam());
  EXPECT_LE(r.last_late_after_step_s, 2.0);
  EXPECT_LE(r.late_loss, GetParam().epsilon);
}

TEST_P(TraceHarness, DelayComesDownWithinTenSecondsOfAMinus100msStep) {
  const SimResult r = run(make_step(kSeconds, -100, kSeed), GetParam());
  EXPECT_GE(r.settle_after_step_s, 0.0);
  EXPECT_LE(r.settle_after_step_s, 10.0);
  EXPECT_LE(r.final_delay_ms, 20.0);  // back near the 5 ms jitter, not 100 ms above it
}

INSTANTIATE_TEST_SUITE_P(Profiles, TraceHarness, ::testing::Values(kSpeech, kMusic),
                         [](const auto& info) { return std::string(info.param.name); });

TEST(TraceHarnessFec, NextPacketIsHereForNinetyPercentOfRandomLosses) {
  // With Opus FEC the target keeps one more packet: the packet after a lost one must be stored
  // at the lost one's deadline for its redundancy to rebuild it.
  const SimResult r = run(make_loss(kSeconds, 0.05, kSeed), kSpeech, /*extra_margin=*/1);
  ASSERT_GT(r.network_lost, 200u);
  EXPECT_GE(static_cast<double>(r.fec_available) / static_cast<double>(r.network_lost), 0.9);
}

TEST(TraceHarnessReplay, ReadsRtpsendTraceOutWithWrapAndFates) {
  const std::string path = ::testing::TempDir() + "/trace.txt";
  {
    std::ofstream f(path);
    // seq wraps 65535 -> 0, timestamp wraps 2^32 -> 0; one lost, one paused (never sent).
    f << "65534 4294966336 5000000 sent\n65535 0 25000000 sent\n";
    f << "0 960 45000000 lost\n1 1920 65000000 sent\n2 2880 85000000 paused\n3 3840 105000000\n";
  }
  std::string err;
  auto t = read_trace(path, 48000, err);
  ASSERT_TRUE(t) << err;
  ASSERT_EQ(t->packets.size(), 5u);
  EXPECT_EQ(t->ptime_ticks, 960);
  EXPECT_EQ(t->packets[2].seq, t->packets[0].seq + 2);
  EXPECT_TRUE(t->packets[2].lost);
  EXPECT_EQ(t->packets[4].ts - t->packets[0].ts, 5 * 960);
  const SimResult r = simulate(*t, {});
  EXPECT_EQ(r.network_lost, 1u);
  EXPECT_EQ(r.late, 0u);
}

TEST(TraceHarnessReplay, RefusesMalformedLines) {
  const std::string path = ::testing::TempDir() + "/bad.txt";
  std::ofstream(path) << "1 960 garbage\n";
  std::string err;
  EXPECT_FALSE(read_trace(path, 48000, err));
  EXPECT_NE(err.find(":1:"), std::string::npos);
}

// Issue #5: 24 h of simulated playback per skew under the fake clock (about 8 s each here).
class DriftSim : public ::testing::TestWithParam<double> {};

TEST_P(DriftSim, TwentyFourHoursHoldTheDelayWithoutUnderrun) {
  sim::DriftSimOptions o;
  o.seconds = 86400;
  o.sender_skew = GetParam() * 1e-6;
  o.jitter_ms = 5;
  const sim::DriftSimResult r = sim::simulate_drift(o);
  std::printf(
      "skew %+.0f ppm: underruns %llu, delay-target max |1 s mean| %.3f ms (mean %+.3f), converged "
      "%.0f s, "
      "drift %+.2f ppm, max error after settle %.2f ppm\n",
      GetParam(), static_cast<unsigned long long>(r.underruns), r.max_delay_error_ms,
      r.mean_delay_error_ms, r.converged_after_s, r.drift_ppm, r.max_drift_error_ppm);
  EXPECT_NEAR(static_cast<double>(r.packets), 86400.0 * 50 * (1 + GetParam() * 1e-6),
              2.0);  // the sender's pace
  EXPECT_EQ(r.underruns, 0u);
  EXPECT_EQ(r.late, 0u);
  EXPECT_LE(r.max_delay_error_ms, 1.0);  // steady state: within +-1 ms of the target
  EXPECT_LE(r.converged_after_s, 30.0);  // and there within 30 s
  EXPECT_NEAR(r.drift_ppm, r.true_drift_ppm, 2.0);
}

INSTANTIATE_TEST_SUITE_P(Skews, DriftSim, ::testing::Values(-1000.0, 1000.0));

TEST(DriftSim, DeviceClockSkewIsCompensatedToo) {
  // Sender 200 ppm slow, sound card 300 ppm fast: 500 ppm apart, 10 minutes.
  sim::DriftSimOptions o;
  o.seconds = 600;
  o.sender_skew = -200e-6;
  o.device_skew = 300e-6;
  const sim::DriftSimResult r = sim::simulate_drift(o);
  EXPECT_EQ(r.underruns, 0u);
  EXPECT_LE(r.max_delay_error_ms, 1.0);
  EXPECT_NEAR(r.drift_ppm, (0.9998 / 1.0003 - 1) * 1e6, 2.0);
}

TEST(DriftSim, WithoutCompensationTheDelayCreeps) {
  // The control: --drift off under the same 1000 ppm keeps only the proportional trim, which
  // leaves a standing error of skew / Kp = 2 ms.
  sim::DriftSimOptions o;
  o.seconds = 300;
  o.sender_skew = 1000e-6;
  o.playout.drift_compensation = false;
  const sim::DriftSimResult r = sim::simulate_drift(o);
  EXPECT_GT(r.mean_delay_error_ms, 1.5);
}
