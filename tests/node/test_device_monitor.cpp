#include <gtest/gtest.h>

#include "node/device_monitor.hpp"

using namespace rtpnode;

namespace {
constexpr mono_ns_t kMs = 1'000'000;
constexpr mono_ns_t kT0 = 7'000'000'000;
}  // namespace

TEST(DeviceMonitor, StallsStopsAndRecoversOnTheCallbackCount) {
  DeviceMonitor m;
  std::uint64_t callbacks = 0;
  mono_ns_t t = kT0;
  // Callbacks every 5 ms: running, no change reported.
  for (int i = 0; i < 100; ++i, t += 5 * kMs) EXPECT_FALSE(m.update(++callbacks, true, t));
  EXPECT_TRUE(m.up());
  // The count stops; the stream is still active: stalled after kStallNs, said once.
  const mono_ns_t last = t - 5 * kMs;
  for (; t < last + DeviceMonitor::kStallNs; t += 5 * kMs)
    EXPECT_FALSE(m.update(callbacks, true, t)) << t - last;
  auto c = m.update(callbacks, true, t);
  ASSERT_TRUE(c);
  EXPECT_EQ(c->state, DeviceMonitor::State::stalled);
  EXPECT_NEAR(c->since_ms, 500.0, 5.0);
  EXPECT_EQ(c->callbacks, callbacks);
  EXPECT_FALSE(m.update(callbacks, true, t + kMs));
  EXPECT_EQ(std::string(to_string(m.state())), "stalled");
  // The backend then stops the stream: stopped.
  c = m.update(callbacks, false, t + 2 * kMs);
  ASSERT_TRUE(c);
  EXPECT_EQ(c->state, DeviceMonitor::State::stopped);
  EXPECT_FALSE(m.up());
  // Callbacks again: running.
  c = m.update(callbacks + 1, true, t + 3 * kMs);
  ASSERT_TRUE(c);
  EXPECT_EQ(c->state, DeviceMonitor::State::running);
  EXPECT_TRUE(m.up());
}

TEST(DeviceMonitor, ADeviceThatNeverStartsIsLostTooButNotBeforeTheFirstReading) {
  DeviceMonitor m;
  EXPECT_FALSE(m.update(0, true, kT0));  // the first reading starts the clock
  EXPECT_FALSE(m.update(0, true, kT0 + 499 * kMs));
  const auto c = m.update(0, false, kT0 + 500 * kMs);
  ASSERT_TRUE(c);
  EXPECT_EQ(c->state, DeviceMonitor::State::stopped);
}
