// Which instant JackBackend takes as a cycle's start (node/jack_backend.hpp, cycle_start_us):
// JACK's DLL estimate when it can be trusted, the callback's wake-up otherwise. The cases are
// readings from a JACK 1.9.21 dummy server on this machine (2026-12-02): 1024-frame periods with
// a build loading both cores, and a 256-frame server stopped for 50 ms (SIGSTOP) whose DLL then
// rang for ~10 s.
#include <gtest/gtest.h>

#include "node/jack_backend.hpp"

using rtpnode::JackBackend;

namespace {

constexpr double kPeriod1024Us = 1024 * 1e6 / 48000;  // 21 333.3 µs
constexpr double kPeriod256Us = 256 * 1e6 / 48000;    // 5 333.3 µs
constexpr std::uint64_t kNow = 1'000'000'000;

std::uint64_t start(std::int64_t lag_us, double period_error_ppm, double nominal_us) {
  const auto period = static_cast<float>(nominal_us * (1.0 + period_error_ppm * 1e-6));
  return JackBackend::cycle_start_us(
      kNow, static_cast<std::uint64_t>(static_cast<std::int64_t>(kNow) - lag_us), period,
      nominal_us);
}

}  // namespace

TEST(JackCycleStart, SettledDllIsTakenThroughLateWakeUps) {
  // Steady state: the wake-up 91 µs after the DLL's start, period 25 ppm off.
  EXPECT_EQ(start(91, 25, kPeriod1024Us), kNow - 91);
  // A wake-up 1.5 ms and 7.5 ms late (both seen under load): still the DLL's start, not the
  // late wake-up (the rule before took the wake-up beyond 1 ms, and its lateness went into the
  // device clock's map).
  EXPECT_EQ(start(1500, 103, kPeriod1024Us), kNow - 1500);
  EXPECT_EQ(start(7510, 40, kPeriod1024Us), kNow - 7510);
  // The DLL's estimate slightly after the wake-up (-68 µs seen): the shared estimate.
  EXPECT_EQ(start(-68, 96, kPeriod1024Us), kNow + 68);
}

TEST(JackCycleStart, RingingDllGivesWayToTheWakeUp) {
  // After a 50 ms stall of a 256-frame server: the DLL 48 ms behind, period 360 ppm off...
  EXPECT_EQ(start(48315, 360, kPeriod256Us), kNow);
  // ...then 2.3 ms behind at 1.5 % (more than half a period is never taken either)...
  EXPECT_EQ(start(2301, 15336, kPeriod256Us), kNow);
  // ...then ahead of the wake-ups by 2.5-8.9 ms while its period is 0.04-1.5 % off.
  EXPECT_EQ(start(-8887, 10216, kPeriod256Us), kNow);
  EXPECT_EQ(start(-2538, 422, kPeriod256Us), kNow);
  // A settled period does not make a start 3 ms after the wake-up or 3 ms before it (more
  // than half a 256-frame period) believable.
  EXPECT_EQ(start(-3000, 10, kPeriod256Us), kNow);
  EXPECT_EQ(start(3000, 10, kPeriod256Us), kNow);
}

TEST(JackCycleStart, WithinOneMillisecondBeforeTheWakeUpTheDllIsTakenAsBefore) {
  // The earlier rule, kept: a start at most 1 ms before the wake-up, whatever the DLL's state.
  EXPECT_EQ(start(559, 17487, kPeriod256Us), kNow - 559);
  EXPECT_EQ(start(1000, 5000, kPeriod256Us), kNow - 1000);
  EXPECT_EQ(start(1001, 5000, kPeriod256Us), kNow);
  // No nominal period known: only that rule.
  EXPECT_EQ(start(1500, 0, 0.0), kNow);
}
