#include <gtest/gtest.h>

#include <memory>
#include <vector>

#include "node/mixer.hpp"

using namespace rtpnode;

namespace {

/// Fills a stream's ring with a ramp 1, 2, 3 ... (scaled) so positions are recognisable.
void fill_ramp(PlayoutStream& s, int frames, float scale = 1e-4f) {
  std::vector<float> v(static_cast<std::size_t>(frames * s.channels));
  for (int f = 0; f < frames; ++f)
    for (int c = 0; c < s.channels; ++c) v[static_cast<std::size_t>(f * s.channels + c)] = static_cast<float>(f + 1) * scale * (c + 1);
  ASSERT_EQ(s.ring.push(v.data(), v.size()), v.size());
}

/// Runs the mixer over `total` frames in blocks of `block`, returning the device output.
std::vector<float> run(Mixer& m, int total, int block) {
  std::vector<float> out(static_cast<std::size_t>(total * m.device_channels()));
  std::vector<float> buf(static_cast<std::size_t>(block * m.device_channels()));
  for (int done = 0; done < total; done += block) {
    const int n = std::min(block, total - done);
    m.process(buf.data(), n, {});
    std::copy_n(buf.begin(), n * m.device_channels(), out.begin() + done * m.device_channels());
  }
  return out;
}

}  // namespace

class MixerBlockSize : public ::testing::TestWithParam<int> {};

TEST_P(MixerBlockSize, PlaysFirstSampleAtExactStartFrame) {
  const int block = GetParam();
  constexpr frames_t kStart = 5000;
  Mixer m(2, 4);
  auto s = std::make_unique<PlayoutStream>(1, 1, 16384, kStart);
  fill_ramp(*s, 8000);
  ASSERT_TRUE(m.add(s.get()));
  const auto out = run(m, 12000, block);
  for (frames_t f = 0; f < kStart; ++f) ASSERT_EQ(out[static_cast<std::size_t>(2 * f)], 0.0f) << "frame " << f;
  for (frames_t f = kStart; f < 12000; ++f) {
    const float expect = static_cast<float>(f - kStart + 1) * 1e-4f;
    ASSERT_EQ(out[static_cast<std::size_t>(2 * f)], expect) << "frame " << f;      // mono -> both channels
    ASSERT_EQ(out[static_cast<std::size_t>(2 * f + 1)], expect) << "frame " << f;
  }
  EXPECT_EQ(s->underrun_events.load(), 0u);
  EXPECT_EQ(s->frames_played.load(), 7000u);
}
INSTANTIATE_TEST_SUITE_P(BlockSizes, MixerBlockSize, ::testing::Values(1, 64, 333, 4096));

TEST(Mixer, SumsStreamsAndMapsStereo) {
  Mixer m(2, 4);
  auto a = std::make_unique<PlayoutStream>(1, 2, 1024, 0);
  auto b = std::make_unique<PlayoutStream>(2, 2, 1024, 0);
  fill_ramp(*a, 100);
  fill_ramp(*b, 100);
  m.add(a.get());
  m.add(b.get());
  const auto out = run(m, 100, 64);
  EXPECT_FLOAT_EQ(out[0], 2e-4f);
  EXPECT_FLOAT_EQ(out[1], 4e-4f);  // right channel carries the stream's second channel
  EXPECT_FLOAT_EQ(out[2 * 99], 200e-4f);
}

TEST(Mixer, CountsUnderrunOncePerRunAndZeroFills) {
  Mixer m(1, 4);
  auto s = std::make_unique<PlayoutStream>(1, 1, 1024, 0);
  fill_ramp(*s, 100);
  m.add(s.get());
  const auto out = run(m, 256, 64);  // 100 frames of audio, then 156 missing over 3 blocks
  EXPECT_EQ(out[99], 100e-4f);
  EXPECT_EQ(out[100], 0.0f);
  EXPECT_EQ(s->underrun_events.load(), 1u);
  EXPECT_EQ(s->underrun_frames.load(), 156u);
}

TEST(Mixer, SkipsFramesThatArriveAfterTheirDeviceFrame) {
  Mixer m(1, 4);
  auto s = std::make_unique<PlayoutStream>(1, 1, 1024, 0);
  m.add(s.get());
  run(m, 128, 64);  // 128 frames pass with nothing in the ring
  fill_ramp(*s, 256);
  const auto out = run(m, 64, 64);  // device frames 128..191 = ring frames 128..191
  EXPECT_EQ(s->frames_skipped.load(), 128u);
  EXPECT_FLOAT_EQ(out[0], 129e-4f);
}

TEST(Mixer, RetiresRemovedStreamsThroughTheRetireRing) {
  Mixer m(2, 2);
  auto a = std::make_unique<PlayoutStream>(1, 1, 64, 0);
  auto b = std::make_unique<PlayoutStream>(2, 1, 64, 0);
  auto c = std::make_unique<PlayoutStream>(3, 1, 64, 0);
  m.add(a.get());
  m.add(b.get());
  m.add(c.get());  // over max_streams: refused and handed back
  EXPECT_EQ(m.take_retired(), nullptr);  // nothing happens before the audio thread runs
  run(m, 16, 16);
  EXPECT_EQ(m.refused(), 1u);
  EXPECT_EQ(m.take_retired(), c.get());
  m.remove(a.get());
  run(m, 16, 16);
  EXPECT_EQ(m.take_retired(), a.get());
  EXPECT_EQ(m.take_retired(), nullptr);
}

TEST(Mixer, PublishesPositionAndXruns) {
  Mixer m(2, 1);
  std::vector<float> buf(2 * 300);
  m.process(buf.data(), 300, {1.0, 1.01, false});
  m.process(buf.data(), 300, {1.00625, 1.01625, true});
  const DevicePosition p = m.position();
  EXPECT_EQ(p.frame, 300);  // F at the start of the last block
  EXPECT_EQ(p.block_frames, 300);
  EXPECT_EQ(p.callbacks, 2u);
  EXPECT_DOUBLE_EQ(p.dac_time, 1.01625);
  EXPECT_EQ(m.xruns(), 1u);
}
