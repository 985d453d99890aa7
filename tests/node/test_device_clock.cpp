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
  EXPECT_EQ(c.frame_at(1'001'000'000'000), 96000);  // block start
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
    c.update(DevicePosition{frame, 240, t + jitter, t + jitter + 0.01, static_cast<std::uint64_t>(i)}, t,
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
