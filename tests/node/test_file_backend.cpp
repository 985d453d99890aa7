// The audio output seam without a device: FileBackend (driven and real-time pacing) and
// ManualBackend, each feeding one mixer stream whose samples are known.
#include <gtest/gtest.h>
#include <sndfile.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <thread>
#include <memory>
#include <string>
#include <vector>

#include "node/file_backend.hpp"
#include "node/quantise.hpp"

using namespace rtpnode;

namespace {

std::string temp_path(const std::string& name) {
  return (std::filesystem::temp_directory_path() /
          ("rtpnode-fb-" + std::to_string(getpid()) + "-" + name))
      .string();
}

/// Stereo frames whose samples are k / 32768 (exact in s16) with k running over most of the
/// 16-bit range, both signs.
std::vector<float> l16_pattern(int frames) {
  std::vector<float> v(static_cast<std::size_t>(frames) * 2);
  for (int f = 0; f < frames; ++f) {
    v[2 * static_cast<std::size_t>(f)] = static_cast<float>((f * 37) % 65536 - 32768) / 32768.0f;
    v[2 * static_cast<std::size_t>(f) + 1] =
        static_cast<float>(32767 - (f * 91) % 65536) / 32768.0f;
  }
  return v;
}

struct Readback {
  SF_INFO info{};
  std::vector<float> samples;
};

Readback read_back(const std::string& path) {
  Readback r;
  SNDFILE* f = sf_open(path.c_str(), SFM_READ, &r.info);
  EXPECT_NE(f, nullptr) << sf_strerror(nullptr);
  if (f == nullptr) return r;
  // Read as int and rescale ourselves: exact for 16- and 24-bit files.
  std::vector<int> raw(static_cast<std::size_t>(r.info.frames * r.info.channels));
  sf_readf_int(f, raw.data(), r.info.frames);
  sf_close(f);
  r.samples.reserve(raw.size());
  for (int v : raw) r.samples.push_back(static_cast<float>(static_cast<double>(v) / 2147483648.0));
  return r;
}

/// Renders `pattern` (starting at device frame `start`) through a driven FileBackend.
void render_to(const std::string& path, const std::string& format,
               const std::vector<float>& pattern, frames_t start, int blocks) {
  FileBackend::Options o;
  o.path = path;
  o.format = format;
  o.period = 256;
  o.pacing = FileBackend::Pacing::driven;
  FileBackend fb(o);
  Mixer mixer(2, 2);
  auto s = std::make_unique<PlayoutStream>(1, 2, 1 << 16, start);
  ASSERT_EQ(s->ring.push(pattern.data(), pattern.size()), pattern.size());
  mixer.add(s.get());
  fb.open(mixer);
  fb.start();
  EXPECT_DOUBLE_EQ(fb.stream_time(), 0.0);
  ASSERT_TRUE(fb.render(static_cast<std::size_t>(blocks)));
  EXPECT_DOUBLE_EQ(fb.stream_time(), blocks * 256 / 48000.0);
  EXPECT_EQ(fb.frames_written(), static_cast<std::uint64_t>(blocks) * 256u);
  EXPECT_EQ(fb.callback_times().count.load(), static_cast<std::uint64_t>(blocks));
  EXPECT_TRUE(fb.shutdown(std::chrono::milliseconds(100), false));
}

}  // namespace

TEST(FileBackend, WavS16IsBitExactAtTheStreamsStartFrame) {
  const std::string path = temp_path("s16.wav");
  const auto pattern = l16_pattern(4000);
  render_to(path, "s16", pattern, 1000, 24);  // 6144 frames
  const Readback r = read_back(path);
  EXPECT_EQ(r.info.samplerate, 48000);
  EXPECT_EQ(r.info.channels, 2);
  EXPECT_EQ(r.info.format, SF_FORMAT_WAV | SF_FORMAT_PCM_16);  // RF64 only past 4 GB
  ASSERT_EQ(r.info.frames, 6144);
  for (std::size_t i = 0; i < 2000; ++i) ASSERT_EQ(r.samples[i], 0.0f) << i;
  for (std::size_t i = 0; i < pattern.size(); ++i) ASSERT_EQ(r.samples[2000 + i], pattern[i]) << i;
  for (std::size_t i = 2000 + pattern.size(); i < r.samples.size(); ++i)
    ASSERT_EQ(r.samples[i], 0.0f) << i;
  std::filesystem::remove(path);
}

TEST(FileBackend, FlacS24RoundsToTwentyFourBitsAndClips) {
  const std::string path = temp_path("s24.flac");
  std::vector<float> pattern{0.5f, -0.25f, 1.5f, -1.5f, 1e-7f, -1e-7f, 0.1f, -0.1f};
  render_to(path, "s24", pattern, 0, 1);
  const Readback r = read_back(path);
  EXPECT_EQ(r.info.format, SF_FORMAT_FLAC | SF_FORMAT_PCM_24);
  ASSERT_EQ(r.info.frames, 256);
  auto q24 = [](double x) {
    return static_cast<float>(std::clamp(std::nearbyint(x * 8388608.0), -8388608.0, 8388607.0) /
                              8388608.0);
  };
  EXPECT_EQ(r.samples[0], 0.5f);
  EXPECT_EQ(r.samples[1], -0.25f);
  EXPECT_EQ(r.samples[2], 8388607.0f / 8388608.0f);  // clipped, not wrapped
  EXPECT_EQ(r.samples[3], -1.0f);
  EXPECT_EQ(r.samples[4], q24(1e-7));
  EXPECT_EQ(r.samples[6], q24(0.1f));
  EXPECT_EQ(r.samples[7], q24(-0.1f));
  std::filesystem::remove(path);
}

TEST(FileBackend, WavF32KeepsFloatSamples) {
  const std::string path = temp_path("f32.wav");
  std::vector<float> pattern{0.123456789f, -0.987654321f};
  render_to(path, "f32", pattern, 3, 1);
  SF_INFO info{};
  SNDFILE* f = sf_open(path.c_str(), SFM_READ, &info);
  ASSERT_NE(f, nullptr);
  EXPECT_EQ(info.format, SF_FORMAT_WAV | SF_FORMAT_FLOAT);
  std::vector<float> got(static_cast<std::size_t>(info.frames * 2));
  sf_readf_float(f, got.data(), info.frames);
  sf_close(f);
  EXPECT_EQ(got[6], 0.123456789f);
  EXPECT_EQ(got[7], -0.987654321f);
  std::filesystem::remove(path);
}

TEST(FileBackend, BadPathsAndFormatsAreErrorsNamingTheFix) {
  FileBackend::Options o;
  auto error_of = [&] {
    try {
      FileBackend fb(o);
    } catch (const DeviceError& e) {
      return std::string(e.what());
    }
    return std::string();
  };
  o.path = temp_path("x.mp3");
  EXPECT_NE(error_of().find("must end in .wav, .rf64 or .flac"), std::string::npos);
  o.path = temp_path("x.flac");
  o.format = "f32";
  EXPECT_NE(error_of().find("--output-format f32"), std::string::npos);
  o.format = "s16";
  o.path = "/nonexistent-dir/x.wav";
  EXPECT_NE(error_of().find("cannot create the file"), std::string::npos);
  o.path = temp_path("y.wav");
  o.period = 3;
  EXPECT_NE(error_of().find("--period"), std::string::npos);
  std::filesystem::remove(o.path);
}

TEST(FileBackend, RealTimePacingFollowsTheWallClock) {
  const std::string path = temp_path("rt.wav");
  FileBackend::Options o;
  o.path = path;
  FileBackend fb(o);
  Mixer mixer(2, 2);
  fb.open(mixer);
  const auto t0 = std::chrono::steady_clock::now();
  fb.start();
  EXPECT_TRUE(fb.stream_active());
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  const double elapsed =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  const double written_s = static_cast<double>(fb.frames_written()) / 48000.0;
  const DevicePosition pos = mixer.position();
  EXPECT_TRUE(fb.shutdown(std::chrono::milliseconds(100), false));
  EXPECT_FALSE(fb.stream_active());
  // Block k is due at k x 5.33 ms: never ahead of the wall clock, and (no stall expected in
  // 0.3 s here, but a VM may stall) not far behind it.
  EXPECT_LE(written_s, elapsed + 256 / 48000.0);
  EXPECT_GE(written_s, 0.1);
  // The virtual clock: block k's current_time is k x period / rate.
  ASSERT_GT(pos.callbacks, 0u);
  EXPECT_DOUBLE_EQ(pos.current_time, static_cast<double>(pos.callbacks - 1) * 256 / 48000.0);
  EXPECT_EQ(pos.frame, static_cast<frames_t>((pos.callbacks - 1) * 256));
  std::filesystem::remove(path);
}

TEST(ManualBackend, PullsBlocksOnTheCallersThreadWithAVirtualClock) {
  ManualBackend b(48000, 2, 128);
  Mixer mixer(2, 2);
  auto s = std::make_unique<PlayoutStream>(1, 2, 4096, 100);
  const auto pattern = l16_pattern(200);
  s->ring.push(pattern.data(), pattern.size());
  mixer.add(s.get());
  b.open(mixer);
  b.start();
  const auto first = b.pull();
  ASSERT_EQ(first.size(), 256u);
  for (std::size_t i = 0; i < 200; ++i) ASSERT_EQ(first[i], 0.0f);
  for (std::size_t i = 200; i < 256; ++i) ASSERT_EQ(first[i], pattern[i - 200]);
  EXPECT_DOUBLE_EQ(b.stream_time(), 128 / 48000.0);
  const auto second = b.pull(64, true);
  EXPECT_EQ(second[0], pattern[56]);
  EXPECT_EQ(mixer.xruns(), 1u);
  EXPECT_EQ(mixer.position().frame, 128);
  EXPECT_DOUBLE_EQ(mixer.position().current_time, 128 / 48000.0);
}

namespace rtpnode {

// The sample conversion --output and --record share (node/quantise.hpp): nearest integer, ties to
// even (as std::nearbyint), clipped; every 16-bit sample / 32768 comes back exactly.
TEST(Quantise, RoundsToNearestTiesToEvenClipsAndKeepsSixteenBitSamplesExact) {
  for (int s = -32768; s <= 32767; ++s)
    ASSERT_EQ(quantise<std::int16_t>(static_cast<float>(s) / 32768.0f, 32768.0), s);
  EXPECT_EQ(quantise<std::int16_t>(0.5f / 32768.0f, 32768.0), 0);  // tie: to even
  EXPECT_EQ(quantise<std::int16_t>(1.5f / 32768.0f, 32768.0), 2);
  EXPECT_EQ(quantise<std::int16_t>(-2.5f / 32768.0f, 32768.0), -2);
  EXPECT_EQ(quantise<std::int16_t>(0.6f / 32768.0f, 32768.0), 1);
  EXPECT_EQ(quantise<std::int16_t>(1.0f, 32768.0), 32767);  // full scale clips
  EXPECT_EQ(quantise<std::int16_t>(-1.0f, 32768.0), -32768);
  EXPECT_EQ(quantise<std::int16_t>(7.0f, 32768.0), 32767);
  EXPECT_EQ(quantise<std::int16_t>(-1e30f, 32768.0), -32768);
  EXPECT_EQ(quantise<std::int32_t>(0.25f, 8388608.0), 2097152);
  EXPECT_EQ(quantise<std::int32_t>(1.0f, 8388608.0), 8388607);
  // The array form gives the same samples, on a sweep that includes ties and both clip edges.
  std::vector<float> sweep;
  for (int k = -70000; k <= 70000; ++k) sweep.push_back(static_cast<float>(k) * 0.5f / 32768.0f);
  for (float x : {0.1f, -0.3337f, 0.999f, 1e-7f, 1.0f, -1.0f, 3.0f, -3.0f}) sweep.push_back(x);
  std::vector<std::int16_t> s16(sweep.size());
  quantise_s16(sweep.data(), s16.data(), sweep.size());
  for (std::size_t i = 0; i < sweep.size(); ++i)
    ASSERT_EQ(s16[i], quantise<std::int16_t>(sweep[i], 32768.0)) << sweep[i];
  // So does the interleaving form (the sweep forwards left, backwards right; a length off the
  // multiple of 8, so the vector body and the scalar tail both run), on values far beyond full
  // scale as well.
  for (float x : {1e30f, -1e30f, 65536.0f, -65537.0f, 2.5f / 32768.0f}) sweep.push_back(x);
  const std::vector<float> backwards(sweep.rbegin(), sweep.rend());
  ASSERT_NE(sweep.size() % 8, 0u);
  std::vector<std::int16_t> stereo(sweep.size() * 2);
  quantise_s16_interleave(sweep.data(), backwards.data(), stereo.data(), sweep.size());
  for (std::size_t i = 0; i < sweep.size(); ++i) {
    ASSERT_EQ(stereo[2 * i], quantise<std::int16_t>(sweep[i], 32768.0)) << sweep[i];
    ASSERT_EQ(stereo[2 * i + 1], quantise<std::int16_t>(backwards[i], 32768.0)) << backwards[i];
  }
  for (float x : {0.1f, -0.3337f, 0.999f, 1e-7f})
    EXPECT_EQ(quantise<std::int32_t>(x, 8388608.0),
              static_cast<std::int32_t>(std::nearbyint(static_cast<double>(x) * 8388608.0)));
}

}  // namespace rtpnode
