#include <gtest/gtest.h>

#include <atomic>
#include <cmath>
#include <chrono>
#include <deque>
#include <memory>
#include <thread>
#include <vector>

#include "node/mixer.hpp"

using namespace rtpnode;

namespace {

/// Fills a stream's ring with a ramp 1, 2, 3 ... (scaled) so positions are recognisable.
void fill_ramp(PlayoutStream& s, int frames, float scale = 1e-4f) {
  std::vector<float> v(static_cast<std::size_t>(frames * s.channels));
  for (int f = 0; f < frames; ++f)
    for (int c = 0; c < s.channels; ++c)
      v[static_cast<std::size_t>(f * s.channels + c)] = static_cast<float>(f + 1) * scale * (c + 1);
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
  m.add(s.get());
  const auto out = run(m, 12000, block);
  for (frames_t f = 0; f < kStart; ++f)
    ASSERT_EQ(out[static_cast<std::size_t>(2 * f)], 0.0f) << "frame " << f;
  for (frames_t f = kStart; f < 12000; ++f) {
    const float expect = static_cast<float>(f - kStart + 1) * 1e-4f;
    ASSERT_EQ(out[static_cast<std::size_t>(2 * f)], expect)
        << "frame " << f;  // mono -> both channels
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

// Issue #17: two hot streams summed beyond full scale (and a NaN from a broken decoder) reach
// the device clipped to [-1, 1], counted; in-range samples pass untouched.
TEST(Mixer, ClipsAndCountsSamplesBeyondFullScale) {
  Mixer m(1, 4);
  auto a = std::make_unique<PlayoutStream>(1, 1, 1024, 0);
  auto b = std::make_unique<PlayoutStream>(2, 1, 1024, 0);
  const std::vector<float> va{0.25f, 0.75f, -0.75f, 0.9f, std::nanf(""), 0.5f};
  const std::vector<float> vb{0.25f, 0.75f, -0.75f, -0.9f, 0.0f, 0.5f};
  a->ring.push(va.data(), va.size());
  b->ring.push(vb.data(), vb.size());
  m.add(a.get());
  m.add(b.get());
  const auto out = run(m, 6, 6);
  EXPECT_EQ(out, (std::vector<float>{0.5f, 1.0f, -1.0f, 0.0f, 0.0f, 1.0f}));
  EXPECT_EQ(m.samples_clipped(), 3u);  // 1.5, -1.5, NaN; exactly 1.0 is full scale, not clipped
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

TEST(Mixer, ResumesItsFrameCounterWhereTheDeviceWouldBeAtItsFirstBlock) {
  // A device opened again: the loop resumed the counter at frame 10000 at stream time 5.0 s; the
  // new device's first block comes 20 ms later (its activation) and plays frame 10960 at 48 kHz,
  // not 10000 (which would put every placed source 20 ms late).
  Mixer m(1, 4);
  auto s = std::make_unique<PlayoutStream>(1, 1, 4096, 10960);
  fill_ramp(*s, 2048);
  m.add(s.get());
  run(m, 64, 64);
  m.resume_at(10000, 5.0, 48000);
  std::vector<float> out(64);
  m.process(out.data(), 64, {5.020, 5.040, false});
  EXPECT_EQ(m.position().frame, 10960);
  EXPECT_FLOAT_EQ(out[0], 1e-4f) << "the stream's first frame plays at its start frame";
  EXPECT_EQ(s->frames_skipped.load(), 0u);
  m.process(out.data(), 64, {5.0213, 5.0413, false});
  EXPECT_EQ(m.position().frame, 11024) << "applied once; then blocks follow one another";
  // Without a stream time the counter only moves to the frame given; never backwards.
  m.resume_at(5000, 0.0, 0.0);
  m.process(out.data(), 64, {9.0, 9.02, false});
  EXPECT_EQ(m.position().frame, 11088);
  m.resume_at(20000, 0.0, 0.0);
  m.process(out.data(), 64, {9.0, 9.02, false});
  EXPECT_EQ(m.position().frame, 20000);
}

TEST(Mixer, RetiresRemovedStreamsThroughTheRetireRing) {
  Mixer m(2, 2);
  auto a = std::make_unique<PlayoutStream>(1, 1, 64, 0);
  auto b = std::make_unique<PlayoutStream>(2, 1, 64, 0);
  auto c = std::make_unique<PlayoutStream>(3, 1, 64, 0);
  m.add(a.get());
  m.add(b.get());
  m.add(c.get());                        // over max_streams: refused and handed back
  EXPECT_EQ(m.take_retired(), nullptr);  // nothing happens before the audio thread runs
  run(m, 16, 16);
  EXPECT_EQ(m.refused(), 1u);
  EXPECT_EQ(m.take_retired(), c.get());
  m.remove(a.get());
  run(m, 16, 16);
  EXPECT_EQ(m.take_retired(), a.get());
  EXPECT_EQ(m.take_retired(), nullptr);
}

// Issue #16 finding 1: a refused add marks the stream detached at once; a remove the loop sent
// before it saw that flag was still queued, and the loop freed the stream on the flag alone.
TEST(Mixer, RefusedStreamIsNotReleasableWhileACommandNamingItIsQueued) {
  Mixer m(2, 1);
  auto a = std::make_unique<PlayoutStream>(1, 1, 64, 0);
  auto b = std::make_unique<PlayoutStream>(2, 1, 64, 0);
  m.add(a.get());
  m.add(b.get());  // no slot: refused
  run(m, 16, 16);
  ASSERT_TRUE(b->detached.load());
  EXPECT_TRUE(m.releasable(*b));
  m.remove(b.get(), 0);  // the loop had not looked at the flag yet (a re-placement)
  m.set_gain(b.get(), 0.5f, 0);
  EXPECT_FALSE(m.releasable(*b));  // the audio thread still holds two commands naming it
  run(m, 16, 16);
  EXPECT_TRUE(m.releasable(*b));
  b.reset();       // freed: under ASan any later touch of it fails this test
  run(m, 64, 16);  // ... and the audio thread does not touch it again
  EXPECT_EQ(m.refused(), 1u);
  EXPECT_FALSE(m.releasable(*a));  // still mixing
}

TEST(Mixer, CommandsSentAfterADetachAreIgnoredAndHoldTheStreamUntilConsumed) {
  Mixer m(2, 2);
  auto s = std::make_unique<PlayoutStream>(1, 1, 64, 0);
  fill_ramp(*s, 32);
  m.add(s.get());
  m.remove(s.get(), 0);
  run(m, 16, 16);
  ASSERT_TRUE(s->detached.load());
  EXPECT_TRUE(m.releasable(*s));
  m.set_gain(s.get(), 0.0f, 0);  // a control change racing the detach
  EXPECT_FALSE(m.releasable(*s));
  const auto out = run(m, 16, 16);
  EXPECT_TRUE(m.releasable(*s));
  for (float v : out) EXPECT_EQ(v, 0.0f);  // not mixed again
  // A second life: added again, it plays from where its ring is.
  m.add(s.get());
  run(m, 16, 16);
  EXPECT_FALSE(s->detached.load());
  EXPECT_FALSE(m.releasable(*s));
}

TEST(Mixer, CommandsWaitOnTheLoopSideWhenTheRingIsFullAndArriveInOrder) {
  Mixer m(2, 1);  // a small command ring
  auto s = std::make_unique<PlayoutStream>(1, 1, 8192, 0);
  fill_ramp(*s, 8192, 1e-5f);
  m.add(s.get());
  for (int i = 0; i < 1000; ++i) m.set_gain(s.get(), 0.25f, 0);
  m.set_gain(s.get(), 0.5f, 0);  // the last one wins, so order must hold
  EXPECT_GT(m.commands_deferred(), 0u);
  EXPECT_GT(m.commands_waiting(), 0u);
  int rounds = 0;
  for (; rounds < 100 && m.commands_waiting() > 0; ++rounds) {
    m.flush_deferred();
    run(m, 16, 16);
  }
  EXPECT_EQ(m.commands_waiting(), 0u);
  EXPECT_GT(rounds, 1);
  run(m, 16, 16);  // applies what the last flush sent
  const auto played = static_cast<float>(s->frames_played.load());
  const auto out = run(m, 16, 16);
  EXPECT_FLOAT_EQ(out[0], 0.5f * (played + 1.0f) * 1e-5f);  // the last gain, not an earlier one
  m.remove(s.get(), 0);
  run(m, 16, 16);
  EXPECT_TRUE(m.releasable(*s));  // the remove arrived: nothing was dropped
}

// The lifetime rule under real concurrency: an audio thread mixes without pause while the loop
// thread adds streams, changes their gain, removes them and frees each one the moment
// releasable() allows, with more streams than slots so that adds are refused too. Under ASan a
// stream freed too early is a use-after-free; under TSan an unordered access is a race.
TEST(Mixer, StreamsFreedWhenReleasableAreNeverTouchedAgainByTheAudioThread) {
  Mixer m(2, 4, 16);
  std::atomic<bool> stop{false};
  std::thread audio([&] {
    std::vector<float> out(2 * 64);
    while (!stop.load(std::memory_order_relaxed)) m.process(out.data(), 64, {});
  });
  std::deque<std::unique_ptr<PlayoutStream>> live;
  std::vector<float> chunk(64, 0.25f);
  std::uint32_t next_id = 0;
  int freed = 0, freed_after_mixing = 0;
  // Until 300 streams were mixed, removed and freed (refused ones are freed too, and count
  // apart), however the two threads are scheduled; bounded at 30 s.
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(30);
  for (int round = 0; freed_after_mixing < 300 && std::chrono::steady_clock::now() < deadline;
       ++round) {
    if (live.size() < 8) {
      live.push_back(std::make_unique<PlayoutStream>(next_id++, 1, 1024, m.position().frame));
      live.back()->ring.push(chunk.data(), chunk.size());
      m.add(live.back().get());
    }
    PlayoutStream& s = *live[static_cast<std::size_t>(round) % live.size()];
    if (round % 3 == 0) m.set_gain(&s, 0.5f, m.position().frame);
    if (round % 5 == 0) m.remove(&s, m.position().frame + 32);
    m.flush_deferred();
    while (m.take_retired() != nullptr) {
    }
    for (auto it = live.begin(); it != live.end();) {
      if (m.releasable(**it)) {
        const PlayoutStream& f = **it;  // the audio thread mixed it: played, skipped or underran
        if (f.frames_played.load() + f.frames_skipped.load() + f.underrun_frames.load() > 0)
          ++freed_after_mixing;
        it = live.erase(it);  // freed here, on the loop thread
        ++freed;
      } else {
        ++it;
      }
    }
    if (round % 64 == 0) std::this_thread::yield();
  }
  stop = true;
  audio.join();
  EXPECT_GE(freed_after_mixing, 300);
  EXPECT_GT(freed, freed_after_mixing);
  EXPECT_GT(m.refused(), 0u);  // more streams than slots: the refusal path ran too
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

namespace {

/// A stream whose every sample is `value` (so gains and ramps read directly off the output).
std::unique_ptr<PlayoutStream> constant_stream(std::uint32_t id, int channels, int frames,
                                               frames_t start, float value = 1.0f) {
  auto s = std::make_unique<PlayoutStream>(id, channels, 1 << 16, start);
  std::vector<float> v(static_cast<std::size_t>(frames * channels), value);
  s->ring.push(v.data(), v.size());
  return s;
}

}  // namespace

class MixerRampBlockSize : public ::testing::TestWithParam<int> {};

TEST_P(MixerRampBlockSize, JoinFadesInOverTheRampFromTheStartFrame) {
  constexpr frames_t kStart = 1000, kRamp = 240;
  Mixer m(2, 4, kRamp);
  auto s = std::make_unique<PlayoutStream>(1, 1, 16384, kStart);
  fill_ramp(*s, 4000);
  m.add(s.get());
  const auto out = run(m, 6000, GetParam());
  for (frames_t f = 0; f < kStart; ++f) ASSERT_EQ(out[static_cast<std::size_t>(2 * f)], 0.0f);
  for (frames_t k = 0; k < 4000; ++k) {
    const float x = static_cast<float>(k + 1) * 1e-4f;
    const float g = k < kRamp - 1 ? static_cast<float>(k + 1) / static_cast<float>(kRamp) : 1.0f;
    ASSERT_EQ(out[static_cast<std::size_t>(2 * (kStart + k))], g * x) << "stream frame " << k;
  }
}

TEST_P(MixerRampBlockSize, GainChangeStartsAtItsExactFrame) {
  constexpr frames_t kRamp = 100, kAt = 2345;
  Mixer m(1, 4, kRamp);
  auto s = constant_stream(1, 1, 6000, 0);
  m.add(s.get());
  m.set_gain(s.get(), 0.5f, kAt);
  const auto out = run(m, 5000, GetParam());
  EXPECT_EQ(out[static_cast<std::size_t>(kAt - 1)], 1.0f);
  for (frames_t k = 0; k < kRamp; ++k)
    ASSERT_FLOAT_EQ(out[static_cast<std::size_t>(kAt + k)],
                    1.0f - 0.5f * static_cast<float>(k + 1) / kRamp)
        << k;
  EXPECT_EQ(out[4999], 0.5f);
}
INSTANTIATE_TEST_SUITE_P(BlockSizes, MixerRampBlockSize, ::testing::Values(1, 64, 333, 4096));

TEST(Mixer, MuteAndUnmuteRampAndLeaveTheOtherStreamUntouched) {
  constexpr frames_t kRamp = 64;
  Mixer m(2, 4, kRamp);
  auto a = constant_stream(1, 1, 4000, 0, 0.25f);
  auto b = constant_stream(2, 1, 4000, 0, 0.5f);
  m.add(a.get(), Route::to_channels(1, {0}));  // a: left only
  m.add(b.get(), Route::to_channels(1, {1}));  // b: right only
  m.set_gain(a.get(), 0.0f, 1000);
  auto out = run(m, 1500, 256);
  m.set_gain(a.get(), 1.0f, 2000);  // sent while muted, due later
  const auto rest = run(m, 1500, 256);
  out.insert(out.end(), rest.begin(), rest.end());
  for (frames_t f = kRamp; f < 3000; ++f)
    ASSERT_EQ(out[static_cast<std::size_t>(2 * f + 1)], 0.5f) << f;
  EXPECT_EQ(out[2 * 999], 0.25f);
  EXPECT_GT(out[2 * 1000], 0.0f);  // ramping, not stepping
  EXPECT_EQ(out[2 * (1000 + kRamp - 1)], 0.0f);
  EXPECT_EQ(out[2 * 1999], 0.0f);
  EXPECT_FLOAT_EQ(out[2 * 2000], 0.25f / kRamp);
  EXPECT_EQ(out[2 * (2000 + kRamp)], 0.25f);
}

TEST(Mixer, LeaveFadesOutThenDetachesWithoutCountingUnderruns) {
  constexpr frames_t kRamp = 50;
  Mixer m(1, 4, kRamp);
  auto s = constant_stream(1, 1, 1000, 0);
  m.add(s.get());
  m.remove(s.get(), 900);
  const auto out = run(m, 2000, 128);
  EXPECT_EQ(out[899], 1.0f);
  EXPECT_FLOAT_EQ(out[900], 1.0f - 1.0f / kRamp);
  EXPECT_EQ(out[900 + kRamp - 1], 0.0f);
  for (frames_t f = 900 + kRamp; f < 2000; ++f) ASSERT_EQ(out[static_cast<std::size_t>(f)], 0.0f);
  EXPECT_TRUE(s->detached.load());
  EXPECT_EQ(m.take_retired(), s.get());
  EXPECT_EQ(s->underrun_events.load(), 0u);
}

TEST(Mixer, RouteChangeDipsThroughSilenceAndSwitchesChannels) {
  constexpr frames_t kRamp = 32;
  Mixer m(2, 4, kRamp);
  auto s = constant_stream(1, 1, 4000, 0);
  m.add(s.get(), Route::to_channels(1, {0}));
  ASSERT_TRUE(m.set_route(s.get(), Route::to_channels(1, {1}), 1000));
  EXPECT_FALSE(m.set_route(s.get(), Route::to_channels(1, {0, 1}), 1500));  // one in flight
  const auto out = run(m, 2000, 100);
  EXPECT_EQ(out[2 * 999], 1.0f);
  EXPECT_EQ(out[2 * 999 + 1], 0.0f);
  EXPECT_EQ(out[2 * (1000 + kRamp - 1)], 0.0f);          // faded out on the left ...
  EXPECT_EQ(out[2 * (1000 + kRamp) + 1], 1.0f / kRamp);  // ... then in on the right
  EXPECT_EQ(out[2 * 1999], 0.0f);
  EXPECT_EQ(out[2 * 1999 + 1], 1.0f);
  EXPECT_EQ(s->route_acks.load(), 1u);
  EXPECT_TRUE(m.set_route(s.get(), Route::to_channels(1, {0, 1}), 2000));
}

TEST(Route, MapsChannelsAsDocumented) {
  const Route mono_both = Route::to_channels(1, {0, 1});
  ASSERT_EQ(mono_both.taps, 2);
  EXPECT_EQ(mono_both.dst[1], 1);
  const Route stereo_swap = Route::to_channels(2, {1, 0});
  ASSERT_EQ(stereo_swap.taps, 2);
  EXPECT_EQ(stereo_swap.src[0], 0);
  EXPECT_EQ(stereo_swap.dst[0], 1);
  EXPECT_EQ(stereo_swap.weight[0], 1.0f);
  const Route downmix = Route::to_channels(2, {3});
  ASSERT_EQ(downmix.taps, 2);
  EXPECT_EQ(downmix.dst[0], 3);
  EXPECT_EQ(downmix.weight[1], 0.5f);
  const Route standard = Route::standard(1, 4);
  EXPECT_EQ(standard.taps, 4);
}

// Issue #17: a 64-channel stream (AES67 and L24 allow 1-64) onto a 64-channel device: every
// channel plays its own samples, in blocks larger than the mixer's 8-channel scratch chunk.
TEST(Mixer, ASixtyFourChannelStreamPlaysEveryChannelInPlace) {
  Mixer m(64, 4);
  auto s = std::make_unique<PlayoutStream>(1, 64, 4096, 0);
  fill_ramp(*s, 3000, 1e-6f);
  m.add(s.get());
  const auto out = run(m, 3000, 1024);
  for (int f = 0; f < 3000; f += 7)
    for (int c = 0; c < 64; ++c)
      ASSERT_EQ(out[static_cast<std::size_t>(f * 64 + c)],
                static_cast<float>(f + 1) * 1e-6f * static_cast<float>(c + 1))
          << "frame " << f << " channel " << c;
  EXPECT_EQ(s->frames_played.load(), 3000u);
  EXPECT_EQ(s->underrun_events.load(), 0u);
}
