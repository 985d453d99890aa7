#include <gtest/gtest.h>

#include <vector>

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

// Issue #15: a stopped device is reopened at once, then with backoff 100 ms, 200 ms, ... up to
// 5 s; a reopened stream gets kStallNs to call back before it counts as failed.
TEST(DeviceMonitor, AStoppedDeviceIsReopenedAtOnceThenWithBackoffUpToFiveSeconds) {
  DeviceMonitor m;
  mono_ns_t t = kT0;
  EXPECT_FALSE(m.update(1, true, t));
  EXPECT_FALSE(m.reopen_due(t));  // running
  t += DeviceMonitor::kStallNs;
  ASSERT_TRUE(m.update(1, false, t));
  EXPECT_TRUE(m.reopen_due(t));
  // Every attempt fails (no server): the waits double from 100 ms and stop at 5 s.
  std::vector<mono_ns_t> waits;
  for (int i = 0; i < 9; ++i) {
    m.reopen_failed(t);
    const mono_ns_t failed_at = t;
    while (!m.reopen_due(t)) t += kMs;
    waits.push_back((t - failed_at) / kMs);
  }
  EXPECT_EQ(waits, (std::vector<mono_ns_t>{100, 200, 400, 800, 1600, 3200, 5000, 5000, 5000}));
  EXPECT_EQ(m.attempts(), 9);
  EXPECT_EQ(m.last_progress_ns(), kT0);  // the outage began at the last callback
  // A reopened stream: not stalled, nor due again, during its grace; its first callback makes
  // the device run and resets the backoff.
  m.reopened(t);
  EXPECT_FALSE(m.update(1, true, t + 100 * kMs));
  EXPECT_FALSE(m.reopen_due(t + 400 * kMs));
  auto c = m.update(2, true, t + 450 * kMs);
  ASSERT_TRUE(c);
  EXPECT_EQ(c->state, DeviceMonitor::State::running);
  EXPECT_EQ(m.attempts(), 0);
  EXPECT_FALSE(m.reopen_due(t + 450 * kMs));
}

TEST(DeviceMonitor, AReopenedStreamThatNeverCallsBackIsStalledAndRetriedAfterTheBackoff) {
  DeviceMonitor m;
  mono_ns_t t = kT0;
  (void)m.update(1, true, t);
  t += DeviceMonitor::kStallNs;
  ASSERT_TRUE(m.update(1, false, t));
  m.reopened(t);
  EXPECT_FALSE(m.update(1, true, t + DeviceMonitor::kStallNs - kMs));
  const auto c = m.update(1, true, t + DeviceMonitor::kStallNs);
  ASSERT_TRUE(c);
  EXPECT_EQ(c->state, DeviceMonitor::State::stalled);
  EXPECT_FALSE(m.reopen_due(t + DeviceMonitor::kStallNs));
  EXPECT_TRUE(m.reopen_due(t + DeviceMonitor::kStallNs + DeviceMonitor::kRetryFirstNs));
}

// A stalled device (the stream says it is active) may resume by itself: it is reopened only
// after kReopenStalledNs without a callback.
TEST(DeviceMonitor, AStalledDeviceIsReopenedOnlyAfterFiveSeconds) {
  DeviceMonitor m;
  mono_ns_t t = kT0;
  (void)m.update(1, true, t);
  ASSERT_TRUE(m.update(1, true, t + DeviceMonitor::kStallNs));
  EXPECT_EQ(m.state(), DeviceMonitor::State::stalled);
  EXPECT_FALSE(m.reopen_due(t + DeviceMonitor::kReopenStalledNs - kMs));
  EXPECT_TRUE(m.reopen_due(t + DeviceMonitor::kReopenStalledNs));
}
