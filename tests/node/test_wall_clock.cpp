// The wall clock as --sync absolute reads it (node/wall_clock.hpp): adjtimex's answer to a sync
// state, steps, and the test offset.
#include <gtest/gtest.h>

#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <string>

#include "node/sync_timeline.hpp"
#include "node/wall_clock.hpp"

using namespace rtpnode;

namespace {

timex answer(int status, long maxerror_us, long esterror_us) {
  timex tx{};
  tx.status = status;
  tx.maxerror = maxerror_us;
  tx.esterror = esterror_us;
  return tx;
}

}  // namespace

TEST(WallClock, SyncStateFollowsStaUnsyncAndTimeError) {
  const ClockSyncState chrony = clock_sync_state(TIME_OK, answer(STA_PLL, 12'500, 350));
  EXPECT_TRUE(chrony.known);
  EXPECT_TRUE(chrony.synced);
  EXPECT_DOUBLE_EQ(chrony.maxerror_ms, 12.5);
  EXPECT_DOUBLE_EQ(chrony.esterror_ms, 0.35);
  EXPECT_FALSE(clock_sync_state(TIME_OK, answer(STA_UNSYNC, 16'000'000, 16'000'000)).synced);
  EXPECT_FALSE(clock_sync_state(TIME_ERROR, answer(0, 16'000'000, 0)).synced);
  const ClockSyncState failed = clock_sync_state(-1, answer(0, 0, 0));
  EXPECT_FALSE(failed.known);
  EXPECT_FALSE(failed.synced);
}

TEST(WallClock, ReportsTheInjectedStateAndAStepOfTheTestOffset) {
  const std::string file = ::testing::TempDir() + "/wall_offset_" +
                           std::to_string(reinterpret_cast<std::uintptr_t>(&file));
  std::ofstream(file) << "0\n";
  int status = STA_UNSYNC;
  WallClock wall(
      [&](timex& tx) {
        tx = answer(status, 16'000'000, 16'000'000);
        return status == STA_UNSYNC ? TIME_ERROR : TIME_OK;
      },
      file);
  EXPECT_EQ(wall.poll(), 0) << "the first poll is no step";
  EXPECT_FALSE(wall.sync_state().synced);
  const std::int64_t before = wall.ntp_minus_monotonic_ns();
  // NTP time (ns since 1900) minus CLOCK_MONOTONIC: at least the years since 1970.
  EXPECT_GT(before, kNtpUnixOffsetS * 1'000'000'000);
  status = STA_PLL;
  EXPECT_EQ(wall.poll(), 0) << "no step: the two clocks were read again, nothing moved";
  EXPECT_TRUE(wall.sync_state().synced);
  EXPECT_EQ(wall.steps(), 0u);
  std::ofstream(file) << "5.5\n";  // the wall clock is now 5.5 ms ahead
  const std::int64_t step = wall.poll();
  EXPECT_NEAR(static_cast<double>(step), 5.5e6, 2e5);
  EXPECT_EQ(wall.steps(), 1u);
  EXPECT_EQ(wall.test_offset_ns(), 5'500'000);
  EXPECT_NEAR(static_cast<double>(wall.ntp_minus_monotonic_ns() - before), 5.5e6, 2e5);
  std::ofstream(file) << "5.9\n";  // 0.4 ms more: below the 1 ms of a step
  EXPECT_EQ(wall.poll(), 0);
  EXPECT_EQ(wall.steps(), 1u);
  std::remove(file.c_str());
}

TEST(WallClock, OffsetComesFromTheTightestBracket) {
  // True offset 5 000 000 ns. The first bracket was preempted for 1 ms after its realtime read
  // (its midpoint sits 0.5 ms late), the third before it; the second is tight (40 ns).
  const std::int64_t off = 5'000'000;
  const ClockBracket b[] = {
      {1'000'000, 1'000'020 + off, 2'000'040},
      {3'000'000, 3'000'020 + off, 3'000'040},
      {4'000'000, 5'000'020 + off, 5'000'040},
  };
  EXPECT_EQ(tightest_bracket_offset(b, 3), off);
  // Whichever position the tight one has.
  const ClockBracket c[] = {b[2], b[0], b[1]};
  EXPECT_EQ(tightest_bracket_offset(c, 3), off);
  // One bracket alone: its midpoint, preemption and all (0.5 ms off here).
  EXPECT_EQ(tightest_bracket_offset(b, 1), off - 500'000);
}

TEST(WallClock, ReadingsOfTheRealClocksAgreeWithinMicroseconds) {
  // Two readings back to back on this machine: the same offset to within the tightest bracket's
  // width (the clocks are not slewed by more than ppm between them).
  const std::int64_t a = WallClock::read_ntp_minus_monotonic_ns();
  const std::int64_t b = WallClock::read_ntp_minus_monotonic_ns();
  EXPECT_LT(std::llabs(a - b), 50'000) << a << " " << b;
}
