// Per-call recording (issue #14 --record): frames land at their device frames, sides on their
// channels, a source's channels averaged, late frames dropped, silent stretches written as
// zeros as the device passes them (memory holds only what is ahead of the device).
#include <gtest/gtest.h>
#include <sndfile.h>
#include <unistd.h>

#include <cstdio>
#include <string>
#include <vector>

#include "node/call_recorder.hpp"

namespace rtpnode {
namespace {

std::vector<float> read_all(const std::string& path, SF_INFO& info) {
  SNDFILE* f = sf_open(path.c_str(), SFM_READ, &info);
  EXPECT_NE(f, nullptr);
  std::vector<float> s(static_cast<std::size_t>(info.frames * info.channels));
  sf_readf_float(f, s.data(), info.frames);
  sf_close(f);
  return s;
}

TEST(CallRecorder, SidesLandAtTheirDeviceFramesAndSilenceIsWrittenAsThePlayoutPasses) {
  const std::string path = ::testing::TempDir() + "rec_" + std::to_string(getpid()) + ".wav";
  {
    CallRecorder rec(path, 8000);
    const std::vector<float> caller(100, 0.5f);
    std::vector<float> callee_stereo;
    for (int i = 0; i < 50; ++i) callee_stereo.insert(callee_stereo.end(), {0.25f, 0.75f});
    rec.add(0, 1000, caller.data(), 100, 1);        // file frame 0..99, left
    rec.add(1, 1050, callee_stereo.data(), 50, 2);  // file frame 50..99, right, averaged
    rec.flush_before(1080);
    EXPECT_EQ(rec.frames_written(), 80u);
    rec.add(0, 1070, caller.data(), 20, 1);  // 1070..1079 already written: dropped; 1080.. added
    EXPECT_EQ(rec.frames_dropped(), 10u);
    rec.flush_before(1000 + 100 + 30000);  // a silent stretch: zeros up to there
    EXPECT_EQ(rec.frames_written(), 30100u);
    rec.add(1, 31100, caller.data(), 10, 1);
    rec.close();
    rec.close();
  }
  SF_INFO info{};
  const auto s = read_all(path, info);
  std::remove(path.c_str());
  ASSERT_EQ(info.channels, 2);
  EXPECT_EQ(info.samplerate, 8000);
  ASSERT_EQ(info.frames, 30110);
  auto near = [](float a, float b) { return std::abs(a - b) < 1.0f / 16384; };
  EXPECT_TRUE(near(s[0], 0.5f));
  EXPECT_TRUE(near(s[1], 0.0f));
  EXPECT_TRUE(near(s[2 * 50], 0.5f));
  EXPECT_TRUE(near(s[2 * 50 + 1], 0.5f));  // (0.25 + 0.75) / 2
  EXPECT_TRUE(near(s[2 * 79 + 1], 0.5f));
  EXPECT_TRUE(near(s[2 * 79], 0.5f));  // written before the late add: unchanged
  EXPECT_TRUE(near(s[2 * 80], 1.0f));  // the late add's frames still ahead: added
  EXPECT_TRUE(near(s[2 * 90], 0.5f));
  EXPECT_TRUE(near(s[2 * 100], 0.0f));
  EXPECT_TRUE(near(s[2 * 30000 + 1], 0.0f));
  EXPECT_TRUE(near(s[2 * 30100 + 1], 0.5f));
  EXPECT_TRUE(near(s[2 * 30100], 0.0f));
}

TEST(CallRecorder, NamesAreStartTimeAndASafeCallId) {
  EXPECT_EQ(call_recording_name(1'796'020'954'453'142'000, "a84b4c76e66710@pc33/../x y"),
            "20261130T064234Z_a84b4c76e66710_pc33_.._x_y.wav");
  EXPECT_THROW(CallRecorder("/nonexistent/dir/x.wav", 8000), std::runtime_error);
}

}  // namespace
}  // namespace rtpnode
