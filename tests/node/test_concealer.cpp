// Concealment shaping on constant buffers: fade, silence, resume ramp, comfort noise level.
#include <gtest/gtest.h>

#include <cmath>
#include <vector>

#include "node/concealer.hpp"

using namespace rtpnode;

TEST(Concealer, FadesFromSixtyMsToSilenceAtAHundredThenRampsBack) {
  Concealer c(8000, 1);  // 8 frames per ms
  std::vector<float> buf(160, 1.0f);
  // 0-20, 20-40, 40-60 ms: untouched.
  for (int k = 0; k < 3; ++k) {
    std::fill(buf.begin(), buf.end(), 1.0f);
    c.concealed(buf.data(), 160);
    EXPECT_EQ(buf.front(), 1.0f);
    EXPECT_EQ(buf.back(), 1.0f);
  }
  // 60-80 ms: linear from 1 towards 0 over 40 ms.
  std::fill(buf.begin(), buf.end(), 1.0f);
  c.concealed(buf.data(), 160);
  EXPECT_EQ(buf[0], 1.0f);  // frame 480: still the fade's start
  EXPECT_NEAR(buf[159], 1.0f - 159.0f / 320.0f, 1e-6);
  std::fill(buf.begin(), buf.end(), 1.0f);
  c.concealed(buf.data(), 160);  // 80-100 ms
  EXPECT_NEAR(buf[159], 1.0f / 320.0f, 1e-6);
  EXPECT_TRUE(c.exhausted());
  EXPECT_EQ(c.frames_concealed(), 800u);
  EXPECT_EQ(c.concealment_events(), 1u);
  std::fill(buf.begin(), buf.end(), 1.0f);
  c.silence(buf.data(), 160);
  EXPECT_EQ(buf[0], 0.0f);
  EXPECT_EQ(c.frames_silent(), 160u);
  // Real audio: a 5 ms (40-frame) ramp up from 0, then untouched; the run is over.
  std::fill(buf.begin(), buf.end(), 1.0f);
  c.decoded(buf.data(), 160);
  EXPECT_NEAR(buf[0], 1.0f / 40.0f, 1e-6);
  EXPECT_NEAR(buf[19], 20.0f / 40.0f, 1e-6);
  EXPECT_EQ(buf[39], 1.0f);
  EXPECT_EQ(buf[100], 1.0f);
  EXPECT_FALSE(c.exhausted());
  std::fill(buf.begin(), buf.end(), 1.0f);
  c.concealed(buf.data(), 160);  // a new run
  EXPECT_EQ(c.concealment_events(), 2u);
  EXPECT_EQ(buf[0], 1.0f);
}

TEST(Concealer, ComfortNoiseHasTheAnnouncedLevel) {
  Concealer c(8000, 2);
  EXPECT_FALSE(c.has_comfort_noise());
  c.set_comfort_noise(40);  // -40 dBov
  ASSERT_TRUE(c.has_comfort_noise());
  std::vector<float> buf(2 * 8000);
  c.comfort_noise(buf.data(), 8000);
  double sum = 0;
  for (float v : buf) sum += static_cast<double>(v) * v;
  const double rms_db = 10.0 * std::log10(sum / static_cast<double>(buf.size()));
  EXPECT_NEAR(rms_db, -40.0, 0.2);
  c.clear_comfort_noise();
  EXPECT_FALSE(c.has_comfort_noise());
}
