// The NTP timeline and one source's placement policy on it (node/sync_timeline.hpp), with plain
// numbers: NTP instants in ns, device frames, loop time in ns.
#include <gtest/gtest.h>

#include "node/sync_timeline.hpp"

using namespace rtpnode;
using Kind = TimelinePlacement::Decision::Kind;

namespace {

constexpr double kFpns = 48000e-9;                         // 48 kHz device at its nominal rate
constexpr std::int64_t kNtp0 = 3'900'000'000'000'000'000;  // an NTP instant in 2023, ns

}  // namespace

TEST(SyncTimeline, EqualCaptureInstantsMapToTheSameFrameAtAnyRate) {
  SyncTimeline tl;
  EXPECT_FALSE(tl.on());
  tl.define(kNtp0, 1000.25);
  ASSERT_TRUE(tl.on());
  EXPECT_DOUBLE_EQ(tl.frame_of(kNtp0, kFpns), 1000.25);
  EXPECT_NEAR(tl.frame_of(kNtp0 + 10'000'000, kFpns), 1480.25, 1e-6);  // 10 ms later: 480 frames
  // A device 100 ppm fast plays 10 ms of NTP time in 480.048 frames.
  EXPECT_NEAR(tl.frame_of(kNtp0 + 10'000'000, kFpns * 1.0001), 1480.298, 1e-6);
  tl.turn_off();
  EXPECT_FALSE(tl.on());
}

TEST(SyncTimeline, FollowKeepsThePresentAndBendsOnlyTheFuture) {
  SyncTimeline tl;
  tl.define(kNtp0, 0.0);
  const std::uint64_t gen = tl.generation();
  const std::int64_t now = kNtp0 + 30'000'000'000;  // 30 s on: beyond kRebaseAfterNs
  const double here = tl.frame_of(now, kFpns);
  tl.follow(now, kFpns);
  EXPECT_NEAR(tl.frame_of(now, kFpns), here, 1e-6);
  EXPECT_EQ(tl.generation(), gen) << "a rebase moves no placement";
  // A refined rate (+50 ppm) moves a point 1 s ahead by 2.4 frames, not the 30 s of the past
  // (72 frames) that an old origin would swing.
  EXPECT_NEAR(
      tl.frame_of(now + 1'000'000'000, kFpns * 1.00005) - tl.frame_of(now + 1'000'000'000, kFpns),
      2.4, 1e-6);
}

TEST(TimelinePlacement, TheSecondSourceAnchorsExactlyAtItsPlaceWithItsOffset) {
  SyncTimeline tl;
  tl.define(kNtp0, 48000.0);
  TimelinePlacement b;
  // Captured 20 ms after ntp0, offset +10 ms (480 frames); plenty of delay (earliest far before).
  const frames_t at = b.anchor(tl, kNtp0 + 20'000'000, kFpns, 480, 0, 999'999);
  EXPECT_EQ(at, 48000 + 960 + 480);
  EXPECT_TRUE(b.placed());
  EXPECT_EQ(b.error_frames(), 0.0);
}

TEST(TimelinePlacement, ASourceThatLacksDelayMovesEveryPlacementLater) {
  SyncTimeline tl;
  tl.define(kNtp0, 48000.0);
  TimelinePlacement a, b;
  // A plays on the timeline.
  ASSERT_EQ(a.check(tl, kNtp0, kFpns, 0, 48000.3, 0, 96, 0).kind, Kind::hold);
  ASSERT_TRUE(a.placed());
  // B's place (48960) is before the earliest it can play (49500): it anchors at its own
  // arrival-based place (49600) and the timeline moves 640 frames later.
  const std::uint64_t gen = tl.generation();
  EXPECT_EQ(b.anchor(tl, kNtp0 + 20'000'000, kFpns, 0, 49500, 49600), 49600);
  EXPECT_NE(tl.generation(), gen);
  EXPECT_NEAR(tl.frame_of(kNtp0, kFpns), 48640.0, 1e-9);
  // A's next packet (10 ms on) re-places A at its moved place: exactly 640 frames later.
  const auto d = a.check(tl, kNtp0 + 10'000'000, kFpns, 0, 48480.0, 0, 96, 1'000'000'000);
  ASSERT_EQ(d.kind, Kind::place);
  EXPECT_EQ(d.place_at, 48480 + 640);
}

TEST(TimelinePlacement, SmallErrorsAreHeldLargeOnesReplacedAtMostTwiceASecond) {
  SyncTimeline tl;
  tl.define(kNtp0, 0.0);
  TimelinePlacement p;
  // Not placed yet and 5 frames off: placed at its place (a ring restart).
  auto d = p.check(tl, kNtp0, kFpns, 0, 5.0, -1'000'000, 96, 0);
  ASSERT_EQ(d.kind, Kind::place);
  EXPECT_EQ(d.place_at, 0);
  // Then 3.5 frames late: held, the error goes to the speed loop.
  d = p.check(tl, kNtp0 + 20'000'000, kFpns, 0, 960 + 3.5, -1'000'000, 96, 20'000'000);
  ASSERT_EQ(d.kind, Kind::hold);
  EXPECT_NEAR(d.error_frames, 3.5, 1e-9);
  EXPECT_NEAR(p.error_frames(), 3.5, 1e-9);
  // Just under 20 ms (959 frames) off: still held.
  d = p.check(tl, kNtp0 + 40'000'000, kFpns, 0, 1920 - 959.0, -1'000'000, 96, 40'000'000);
  EXPECT_EQ(d.kind, Kind::hold);
  // 25 ms off, 60 ms after the last placement: deferred (counted), then placed after 500 ms.
  d = p.check(tl, kNtp0 + 60'000'000, kFpns, 0, 2880 + 1200.0, -1'000'000, 96, 60'000'000);
  EXPECT_EQ(d.kind, Kind::deferred);
  EXPECT_EQ(p.deferred(), 1u);
  d = p.check(tl, kNtp0 + 520'000'000, kFpns, 0, 24960 + 1200.0, -1'000'000, 96, 520'000'000);
  ASSERT_EQ(d.kind, Kind::place);
  EXPECT_EQ(d.place_at, 24960);
}

TEST(TimelinePlacement, TheDefiningSourceIsSeatedWhereItPlays) {
  SyncTimeline tl;
  tl.define(kNtp0, 12345.6);  // from where source A plays now
  TimelinePlacement a;
  const auto d = a.check(tl, kNtp0, kFpns, 0, 12345.6, 0, 96, 0);
  EXPECT_EQ(d.kind, Kind::hold) << "no ring restart for the source that defined the timeline";
  EXPECT_TRUE(a.placed());
  // An offset change unplaces it: the next packet places it at place + offset.
  a.unplace();
  const auto moved = a.check(tl, kNtp0 + 20'000'000, kFpns, 480, 12345.6 + 960, 0, 96, 10);
  ASSERT_EQ(moved.kind, Kind::place);
  EXPECT_EQ(moved.place_at, 12346 + 960 + 480);
}

TEST(SyncTimeline, ADeviceStallMovesEveryPlacementBackByTheStall) {
  SyncTimeline tl;
  tl.define(kNtp0, 48000.0);
  TimelinePlacement a;
  ASSERT_EQ(a.check(tl, kNtp0, kFpns, 0, 48000.0, 0, 96, 0).kind, Kind::hold);
  // The device stalled 50 ms (2400 frames): the same capture instant now plays 2400 frames
  // earlier in the device's count, i.e. at the same time as before the stall.
  const std::uint64_t gen = tl.generation();
  tl.on_device_jump(2400);
  EXPECT_NE(tl.generation(), gen);
  EXPECT_NEAR(tl.frame_of(kNtp0, kFpns), 45600.0, 1e-9);
  // A placed source re-places at once (no 500 ms limit applies to a device jump: it was placed
  // at 0 ns and checks again 20 ms later) exactly 2400 frames earlier.
  a.unplace();  // as Source::on_device_jump
  const auto d = a.check(tl, kNtp0 + 20'000'000, kFpns, 0, 48960.0, 0, 96, 20'000'000);
  ASSERT_EQ(d.kind, Kind::place);
  EXPECT_EQ(d.place_at, 48960 - 2400);
}

// Issue #19: --sync absolute. The wall clock defines the timeline; it never moves for a source.

TEST(SyncTimeline, AbsoluteMapsACaptureInstantToTheFrameAtTheDacThePlayoutDelayLater) {
  SyncTimeline tl;
  tl.set_absolute(true);
  constexpr std::int64_t kDelay = 200'000'000;
  // Device frame 96000.5 reaches the DAC at wall-clock kNtp0.
  EXPECT_EQ(tl.set_wall_clock(kNtp0, 96000.5, kDelay, kFpns, 48.0), 0.0);
  ASSERT_TRUE(tl.on());
  // Captured 200 ms before kNtp0: plays at that frame; 10 ms later: 480 frames later.
  EXPECT_NEAR(tl.frame_of(kNtp0 - kDelay, kFpns), 96000.5, 1e-6);
  EXPECT_NEAR(tl.frame_of(kNtp0 - kDelay + 10'000'000, kFpns), 96480.5, 1e-6);
  // The same mapping read later (the device ran on at its rate) is no move, no new generation.
  const std::uint64_t gen = tl.generation();
  EXPECT_NEAR(tl.set_wall_clock(kNtp0 + 1'000'000'000, 96000.5 + 48000.0, kDelay, kFpns, 48.0), 0.0,
              1e-6);
  EXPECT_EQ(tl.generation(), gen);
  EXPECT_NEAR(tl.frame_of(kNtp0 - kDelay, kFpns), 96000.5, 1e-6);
}

TEST(SyncTimeline, AbsoluteFollowsSmallMovesAndReplacesEveryoneOnAStep) {
  SyncTimeline tl;
  tl.set_absolute(true);
  constexpr std::int64_t kDelay = 100'000'000;
  tl.set_wall_clock(kNtp0, 0.0, kDelay, kFpns, 48.0);
  const std::uint64_t gen = tl.generation();
  // The device clock's fit refined by 0.3 frames: followed, no re-placement.
  EXPECT_NEAR(tl.set_wall_clock(kNtp0, 0.3, kDelay, kFpns, 48.0), 0.3, 1e-9);
  EXPECT_EQ(tl.generation(), gen);
  // The wall clock stepped 5 ms ahead: the frame at the DAC "now" is the one 5 ms earlier in
  // the old mapping's terms, so every instant plays 240 frames earlier -- a step.
  EXPECT_NEAR(tl.set_wall_clock(kNtp0 + 5'000'000, 0.3, kDelay, kFpns, 48.0), -240.0, 1e-6);
  EXPECT_EQ(tl.generation(), gen + 1);
  EXPECT_NEAR(tl.frame_of(kNtp0 - kDelay, kFpns), 0.3 - 240.0, 1e-6);
}

TEST(TimelinePlacement, AbsoluteNeverMovesTheTimelineForALateSourceAndCountsIt) {
  SyncTimeline tl;
  tl.set_absolute(true);
  tl.set_wall_clock(kNtp0, 48000.0, 50'000'000, kFpns, 48.0);  // 50 ms playout delay
  const double before = tl.frame_of(kNtp0, kFpns);
  const std::uint64_t gen = tl.generation();
  TimelinePlacement late;
  // Its first packet, captured at kNtp0 - 50 ms, should play at frame 48000 but cannot before
  // 48500 (it came 60 ms late): it plays at 48500; nobody else moves.
  const frames_t at = late.anchor(tl, kNtp0 - 50'000'000, kFpns, 0, 48500, 999'999);
  EXPECT_EQ(at, 48500);
  EXPECT_EQ(late.short_of_delay(), 1u);
  EXPECT_DOUBLE_EQ(tl.frame_of(kNtp0, kFpns), before);
  EXPECT_EQ(tl.generation(), gen);
  // Its next packet (20 ms later, still late) holds where it plays: at earliest + margin.
  const TimelinePlacement::Decision d =
      late.check(tl, kNtp0 - 30'000'000, kFpns, 0, 48500.0 + 960.0 + 10.0, 49460, 10, 0);
  EXPECT_EQ(d.kind, Kind::hold);
  EXPECT_NEAR(d.error_frames, 0.0, 1e-9);
  EXPECT_EQ(late.short_of_delay(), 2u);
  EXPECT_EQ(tl.generation(), gen);
  // A source on time is placed exactly at its place, as in the relative mode.
  TimelinePlacement ok;
  EXPECT_EQ(ok.anchor(tl, kNtp0, kFpns, 480, 0, 999'999), 48000 + 2400 + 480);
  EXPECT_EQ(ok.short_of_delay(), 0u);
}
