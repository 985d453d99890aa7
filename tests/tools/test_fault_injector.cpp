#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <vector>

#include "tools/fault_injector.hpp"

using namespace rtpnode;

namespace {
constexpr int kPackets = 100'000;

std::vector<PacketFate> run(const FaultConfig& c, int n = kPackets) {
  FaultInjector f(c);
  std::vector<PacketFate> v;
  v.reserve(static_cast<std::size_t>(n));
  for (int i = 0; i < n; ++i) v.push_back(f.next());
  return v;
}

double quantile(std::vector<double> v, double q) {
  std::sort(v.begin(), v.end());
  return v[static_cast<std::size_t>(q * static_cast<double>(v.size() - 1))];
}
}  // namespace

TEST(FaultInjector, IndependentLossMatchesItsRate) {
  FaultConfig c;
  c.seed = 7;
  c.loss = 0.05;
  const auto v = run(c);
  const auto lost = std::count_if(v.begin(), v.end(), [](const PacketFate& f) { return f.lost; });
  EXPECT_NEAR(static_cast<double>(lost) / kPackets, 0.05, 0.003);
}

TEST(FaultInjector, GilbertBurstsHaveMeanLengthOneOverR) {
  FaultConfig c;
  c.seed = 3;
  c.burst_p = 0.01;
  c.burst_r = 0.25;  // mean burst 4 packets; loss p/(p+r) = 3.85 %
  const auto v = run(c);
  int bursts = 0, lost = 0;
  for (std::size_t i = 0; i < v.size(); ++i) {
    lost += v[i].lost;
    if (v[i].lost && (i == 0 || !v[i - 1].lost)) ++bursts;
  }
  ASSERT_GT(bursts, 500);
  EXPECT_NEAR(static_cast<double>(lost) / bursts, 4.0, 0.25);
  EXPECT_NEAR(static_cast<double>(lost) / kPackets, 0.01 / 0.26, 0.004);
}

TEST(FaultInjector, UniformJitterCoversItsRange) {
  FaultConfig c;
  c.seed = 11;
  c.jitter = {JitterModel::Kind::uniform, 0, 40'000'000, 0, 0};
  std::vector<double> ms;
  for (const auto& f : run(c)) ms.push_back(static_cast<double>(f.delay_ns) / 1e6);
  EXPECT_NEAR(quantile(ms, 0.5), 20.0, 0.5);
  EXPECT_NEAR(quantile(ms, 0.9), 36.0, 0.5);
  EXPECT_GE(*std::min_element(ms.begin(), ms.end()), 0.0);
  EXPECT_LT(*std::max_element(ms.begin(), ms.end()), 40.0);
}

TEST(FaultInjector, ParetoJitterFollowsItsQuantiles) {
  FaultConfig c;
  c.seed = 5;
  c.jitter = {JitterModel::Kind::pareto, 0, 0, 5'000'000, 2.5};
  std::vector<double> ms;
  for (const auto& f : run(c)) ms.push_back(static_cast<double>(f.delay_ns) / 1e6);
  // Pareto quantile: x_m * (1 - q)^(-1/alpha)
  for (double q : {0.5, 0.9, 0.99})
    EXPECT_NEAR(quantile(ms, q), 5.0 * std::pow(1 - q, -1 / 2.5),
                0.05 * 5.0 * std::pow(1 - q, -1 / 2.5))
        << q;
  EXPECT_GE(*std::min_element(ms.begin(), ms.end()), 5.0);
}

TEST(FaultInjector, ReorderAndDuplicateRates) {
  FaultConfig c;
  c.seed = 9;
  c.reorder = 0.02;
  c.reorder_delay_ns = 30'000'000;
  c.duplicate = 0.01;
  const auto v = run(c);
  const auto re =
      std::count_if(v.begin(), v.end(), [](const PacketFate& f) { return f.reordered; });
  const auto dup =
      std::count_if(v.begin(), v.end(), [](const PacketFate& f) { return f.duplicated; });
  EXPECT_NEAR(static_cast<double>(re) / kPackets, 0.02, 0.002);
  EXPECT_NEAR(static_cast<double>(dup) / kPackets, 0.01, 0.0015);
  for (const auto& f : v) EXPECT_EQ(f.delay_ns, f.reordered ? 30'000'000 : 0);
}

TEST(FaultInjector, SameSeedSameTraceOtherSeedOtherTrace) {
  FaultConfig c;
  c.seed = 42;
  c.loss = 0.05;
  c.duplicate = 0.01;
  c.jitter = {JitterModel::Kind::uniform, 0, 10'000'000, 0, 0};
  const auto a = run(c, 10'000), b = run(c, 10'000);
  c.seed = 43;
  const auto d = run(c, 10'000);
  auto same = [](const std::vector<PacketFate>& x, const std::vector<PacketFate>& y) {
    for (std::size_t i = 0; i < x.size(); ++i)
      if (x[i].lost != y[i].lost || x[i].duplicated != y[i].duplicated ||
          x[i].delay_ns != y[i].delay_ns)
        return false;
    return true;
  };
  EXPECT_TRUE(same(a, b));
  EXPECT_FALSE(same(a, d));
}

TEST(FaultInjector, EnablingOneFaultKeepsTheOthersDecisions) {
  FaultConfig c;
  c.seed = 1;
  c.loss = 0.05;
  const auto a = run(c, 5000);
  c.duplicate = 0.02;
  const auto b = run(c, 5000);
  for (std::size_t i = 0; i < a.size(); ++i) ASSERT_EQ(a[i].lost, b[i].lost) << i;
}

TEST(FaultInjector, ParsesProbabilitiesAndJitterModels) {
  std::string err;
  EXPECT_DOUBLE_EQ(*parse_probability("5%", err), 0.05);
  EXPECT_DOUBLE_EQ(*parse_probability("0.25", err), 0.25);
  EXPECT_FALSE(parse_probability("150%", err));
  EXPECT_FALSE(parse_probability("lots", err));
  auto u = parse_jitter("uniform:0-40ms", err);
  ASSERT_TRUE(u) << err;
  EXPECT_EQ(u->min_ns, 0);
  EXPECT_EQ(u->max_ns, 40'000'000);
  auto u2 = parse_jitter("uniform:5ms-1s", err);
  ASSERT_TRUE(u2) << err;
  EXPECT_EQ(u2->min_ns, 5'000'000);
  auto p = parse_jitter("pareto:5ms,2.5", err);
  ASSERT_TRUE(p) << err;
  EXPECT_EQ(p->scale_ns, 5'000'000);
  EXPECT_DOUBLE_EQ(p->shape, 2.5);
  EXPECT_FALSE(parse_jitter("normal:5ms", err));
  EXPECT_FALSE(parse_jitter("uniform:40-10ms", err));
  EXPECT_FALSE(parse_jitter("pareto:5ms,-1", err));
}
