// rtpsend's test signals (tools/rtpsend/audio_input.hpp).
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <fstream>
#include <string>
#include <vector>

#include "rtp/codec.hpp"
#include "rtp/payload_format.hpp"
#include "tools/rtpsend/audio_input.hpp"

using rtpnode::rtpsend::make_signal;

// A tone made at the sending rate loops without a seam: the step from the last sample back to
// the first is no larger than any step inside the loop. (Made at 48 kHz and resampled to 8 kHz,
// the loop lost the resampler's latency at its end: a 16 ms dip once a second.)
TEST(RtpsendSignals, ToneLoopsWithoutASeamAtEveryCodecRate) {
  for (int rate : {8000, 16000, 44100, 48000}) {
    const auto a = make_signal("tone", 440, rate);
    ASSERT_EQ(a.rate, rate);
    ASSERT_EQ(a.samples.size(), static_cast<std::size_t>(rate));
    int max_step = 0;
    for (std::size_t i = 1; i < a.samples.size(); ++i)
      max_step = std::max(max_step, std::abs(a.samples[i] - a.samples[i - 1]));
    EXPECT_LE(std::abs(a.samples.front() - a.samples.back()), max_step) << rate;
    // 440 whole cycles: a quarter period in, the sine peaks at 16384 (-6 dBFS).
    int peak = 0;
    for (std::int16_t s : a.samples) peak = std::max(peak, static_cast<int>(s));
    EXPECT_NEAR(peak, 16384, 16384 * (1 - std::cos(M_PI * 440 / rate))) << rate;
  }
}

TEST(RtpsendSignals, ClicksComeAtTheirRateAtEveryCodecRate) {
  for (int rate : {8000, 48000}) {
    const auto a = make_signal("clicks", 4, rate);
    int clicks = 0;
    for (std::int16_t s : a.samples) clicks += s > 0 ? 1 : 0;
    EXPECT_EQ(clicks, 4) << rate;
    EXPECT_EQ(a.samples[static_cast<std::size_t>(rate / 4)], 29491) << rate;
  }
}

// --raw-format reads headerless files in every raw layout (libsndfile's SF_FORMAT_RAW): the same
// 16-bit samples written as s16le, s16be, s24le and f32le (by rtpnode's own encoders) read back
// equal.
TEST(RtpsendRawFiles, EveryRawLayoutReadsBackTheSameSamples) {
  std::vector<std::int16_t> pcm(2 * 480);
  for (std::size_t i = 0; i < pcm.size(); ++i)
    pcm[i] = static_cast<std::int16_t>(static_cast<int>(i * 977 % 65536) - 32768);
  for (const char* layout : {"s16le", "s16be", "s24le", "f32le"}) {
    std::string err;
    const auto f = rtpnode::parse_raw_format(std::string(layout) + "/48000/2", err);
    ASSERT_TRUE(f) << err;
    std::vector<std::uint8_t> bytes(pcm.size() * rtpnode::pcm_sample_bytes(f->codec));
    ASSERT_EQ(rtpnode::make_encoder(*f)->encode(pcm, 480, bytes), static_cast<int>(bytes.size()));
    const std::string path = ::testing::TempDir() + "/raw." + layout;
    std::ofstream(path, std::ios::binary)
        .write(reinterpret_cast<const char*>(bytes.data()),
               static_cast<std::streamsize>(bytes.size()));
    const auto a = rtpnode::rtpsend::read_raw_file(path, *f);
    EXPECT_EQ(a.rate, 48000);
    EXPECT_EQ(a.channels, 2);
    EXPECT_EQ(a.samples, pcm) << layout;
  }
}
