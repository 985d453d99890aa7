#include <gtest/gtest.h>

#include "node/device_clock.hpp"

using namespace rtpnode;

TEST(DeviceClock, MapsMonotonicTimeToDeviceFrames) {
  DeviceClock c(48000);
  EXPECT_FALSE(c.valid());
  // Stream time and monotonic time differ by an arbitrary offset (here 1000 s).
  DevicePosition p{96000, 256, 2.0, 2.0107, 10};
  c.update(p, 2.001, 1'001'001'000'000);  // read 1 ms after the block start
  ASSERT_TRUE(c.valid());
  EXPECT_EQ(c.frame_at(1'001'000'000'000), 96000);               // block start
  EXPECT_EQ(c.frame_at(1'001'000'000'000 + 10'000'000), 96480);  // +10 ms
  EXPECT_EQ(c.output_latency_frames(), 514);
  EXPECT_NEAR(static_cast<double>(c.time_of(96480)), 1'001'010'000'000.0, 1000.0);
}

TEST(DeviceClock, SmoothsJitteryReadings) {
  DeviceClock c(48000);
  // True mapping: frame = (t - 5 s) * 48000. Readings jitter by +-0.5 ms.
  for (int i = 1; i <= 400; ++i) {
    const double t = 5.0 + i * 0.005;
    const frames_t frame = static_cast<frames_t>(i) * 240;
    const double jitter = (i % 2 ? 0.0005 : -0.0005);
    c.update(
        DevicePosition{frame, 240, t + jitter, t + jitter + 0.01, static_cast<std::uint64_t>(i)}, t,
        static_cast<mono_ns_t>(t * 1e9));
  }
  // A single reading would be off by 24 frames; the average is within a few.
  EXPECT_NEAR(static_cast<double>(c.frame_at(static_cast<mono_ns_t>(7.0 * 1e9))), 96000.0, 4.0);
}

TEST(DeviceClock, IgnoresRepeatedPositions) {
  DeviceClock c(48000);
  c.update(DevicePosition{0, 0, 0, 0, 0}, 0, 0);  // no callback yet
  EXPECT_FALSE(c.valid());
}

TEST(DeviceClock, MeasuresTheDeviceRateAndKeepsTheMappingOverAnHour) {
  // The device's crystal runs 150 ppm fast against the monotonic clock; readings every 5.33 ms
  // (256-frame blocks) jitter by +-0.5 ms.
  const double skew = 150e-6;
  const double rate = 48000 * (1 + skew);
  DeviceClock c(48000);
  std::uint64_t callbacks = 0;
  double t = 100.0;
  for (frames_t frame = 0; t < 100.0 + 3600.0; frame += 256) {
    t = 100.0 + static_cast<double>(frame) / rate;
    const double jitter = ((++callbacks * 7919) % 1001 / 1000.0 - 0.5) * 1e-3;
    // The stream time of the block start jitters; the loop reads 2 ms into the block.
    c.update(DevicePosition{frame, 256, t + jitter, t + jitter + 0.01, callbacks}, t + 0.002,
             static_cast<mono_ns_t>(std::llround((t + 0.002) * 1e9)));
    if (callbacks == 1000) {
      EXPECT_EQ(c.skew(), 0.0) << "not used before 10 s of readings";
    }
  }
  EXPECT_NEAR(c.skew() * 1e6, 150.0, 1.0);
  // The mapping an hour in: within a few frames of the truth (the nominal rate would be 26 000
  // frames off by now).
  const double at = t + 0.5;
  EXPECT_NEAR(static_cast<double>(c.frame_at(static_cast<mono_ns_t>(std::llround(at * 1e9)))),
              (at - 100.0) * rate, 4.0);
  EXPECT_NEAR(static_cast<double>(c.time_of(static_cast<frames_t>((at - 100.0) * rate))), at * 1e9,
              100'000.0);
}

TEST(DeviceClock, AnXrunJumpMovesTheMappingButNotTheRate) {
  // 100 ms of device frames lost at 30 s (an xrun), and single stalled readings: the mapping
  // follows the jump, the rate estimate does not bend, single bad readings are ignored.
  const double skew = -80e-6;
  const double rate = 48000 * (1 + skew);
  DeviceClock c(48000);
  std::uint64_t callbacks = 0;
  double t = 0;
  frames_t lost = 0;
  for (frames_t frame = 0; t < 120.0; frame += 256) {
    t = static_cast<double>(frame + lost) / rate;
    if (t >= 30.0 && lost == 0) lost = 4800;  // from now on frames run 4800 behind the time
    const double jitter = ((++callbacks * 7919) % 1001 / 1000.0 - 0.5) * 1e-3;
    const double stall = callbacks % 997 == 0 ? 0.05 : 0.0;  // the reader was descheduled 50 ms
    c.update(DevicePosition{frame, 256, t + jitter, t + jitter + 0.01, callbacks},
             t + 0.002 + stall, static_cast<mono_ns_t>(std::llround((t + 0.002) * 1e9)));
  }
  EXPECT_EQ(c.jumps(), 1u);
  EXPECT_NEAR(c.skew() * 1e6, -80.0, 2.0);
  const double at = t + 0.5;
  EXPECT_NEAR(static_cast<double>(c.frame_at(static_cast<mono_ns_t>(std::llround(at * 1e9)))),
              at * rate - 4800, 4.0);
}
