#include <gtest/gtest.h>

#include "rtp/payload_format.hpp"

using namespace rtpnode;

TEST(PayloadMap, KnowsRfc3551StaticTypes) {
  PayloadMap m;
  ASSERT_NE(m.find(0), nullptr);
  EXPECT_EQ(m.find(0)->codec, Codec::pcmu);
  EXPECT_EQ(m.find(8)->codec, Codec::pcma);
  const PayloadFormat* g722 = m.find(9);
  ASSERT_NE(g722, nullptr);
  EXPECT_EQ(g722->clock_rate, 8000u);   // RFC 3551 §4.5.2: 8000 Hz RTP clock...
  EXPECT_EQ(g722->audio_rate, 16000u);  // ...for 16 kHz audio
  ASSERT_NE(m.find(18), nullptr);       // RFC 3551 §4.5.6: G729/8000
  EXPECT_EQ(m.find(18)->codec, Codec::g729);
  EXPECT_EQ(m.find(18)->clock_rate, 8000u);
  std::string err;
  const auto g729 = parse_payload_format("G729/8000", err);
  ASSERT_TRUE(g729) << err;
  EXPECT_EQ(g729->codec, Codec::g729);
  EXPECT_EQ(g729->describe(), "g729/8000/1");
  EXPECT_FALSE(parse_payload_format("G729/16000", err));
  EXPECT_NE(err.find("RFC 3551 §4.5.6"), std::string::npos) << err;
  EXPECT_FALSE(parse_payload_format("G729/8000/2", err));
  // 10 and 11 (L16/44100) only on request (issue #16): a stray PT 10 opens nothing.
  EXPECT_EQ(m.find(10), nullptr);
  EXPECT_EQ(m.find(11), nullptr);
  const PayloadMap all = PayloadMap::rfc3551();
  EXPECT_EQ(all.find(10)->channels, 2);
  EXPECT_EQ(all.find(10)->clock_rate, 44100u);
  EXPECT_EQ(all.find(11)->channels, 1);
  EXPECT_EQ(all.find(0)->codec, Codec::pcmu);
  EXPECT_EQ(m.find(96), nullptr);
  EXPECT_EQ(m.find(3), nullptr);  // GSM is not decoded
}

TEST(PayloadMap, AppliesDynamicMapping) {
  PayloadMap m;
  std::string err;
  ASSERT_TRUE(m.apply("96=opus/48000/2", err)) << err;
  ASSERT_TRUE(m.apply("97=L16/48000/2", err)) << err;
  EXPECT_EQ(m.find(96)->codec, Codec::opus);
  EXPECT_EQ(m.find(96)->channels, 2);
  EXPECT_EQ(m.find(97)->codec, Codec::l16);
  EXPECT_EQ(m.find(97)->clock_rate, 48000u);
  EXPECT_EQ(m.find(97)->describe(), "l16/48000/2");
  // PipeWire's and AES67's L24 (RFC 3190): any rate, 3 bytes per sample.
  ASSERT_TRUE(m.apply("127=L24/48000/2", err)) << err;
  EXPECT_EQ(m.find(127)->codec, Codec::l24);
  EXPECT_EQ(m.find(127)->describe(), "l24/48000/2");
  EXPECT_EQ(m.find(127)->max_payload_bytes(1), 48u * 2 * 3);
  ASSERT_TRUE(m.apply("98=l24/96000/8", err)) << err;
  EXPECT_EQ(m.find(98)->audio_rate, 96000u);
}

// trx-tx's Opus: RTP timestamps at 8 kHz (RFC 7587 says 48 kHz); decoded at 48 kHz.
TEST(PayloadMap, RtpClockOverrideForSendersThatBreakTheRule) {
  PayloadMap m;
  std::string err;
  ASSERT_TRUE(m.apply("0=opus/48000/2/ts=8000", err)) << err;
  const PayloadFormat* f = m.find(0);
  EXPECT_EQ(f->codec, Codec::opus);
  EXPECT_EQ(f->clock_rate, 8000u);
  EXPECT_EQ(f->audio_rate, 48000u);
  EXPECT_EQ(f->frames_per_tick(), 6.0);
  EXPECT_EQ(f->describe(), "opus/48000/2/ts=8000");
  EXPECT_FALSE(m.apply("0=opus/8000/2", err));  // without the override: refused, RFC 7587
  EXPECT_NE(err.find("RFC 7587"), std::string::npos);
  EXPECT_FALSE(m.apply("0=opus/48000/2/ts=8", err));
  EXPECT_NE(err.find("ts=1000..384000"), std::string::npos) << err;
  EXPECT_FALSE(m.apply("0=opus/48000/ts=8000/2", err));
  EXPECT_EQ(m.find(9)->describe(), "g722/8000/1");  // G.722's 8 kHz clock is not an override
}

TEST(PayloadMap, RejectsBadSpecsWithAReason) {
  PayloadMap m;
  std::string err;
  EXPECT_FALSE(m.apply("128=opus/48000/2", err));
  EXPECT_FALSE(m.apply("96=opus/44100/2", err));
  EXPECT_NE(err.find("48000"), std::string::npos);
  EXPECT_FALSE(m.apply("96=mp3/44100", err));
  EXPECT_NE(err.find("mp3"), std::string::npos);
  EXPECT_FALSE(m.apply("96=l16/48000/0", err));
  EXPECT_FALSE(m.apply("opus/48000", err));
  EXPECT_FALSE(m.apply("96=g722/16000", err));
}

TEST(RawFormat, ParsesSeedSenderFormat) {
  std::string err;
  auto f = parse_raw_format("s16le/8000/1", err);
  ASSERT_TRUE(f) << err;
  EXPECT_EQ(f->codec, Codec::raw_s16le);
  EXPECT_EQ(f->audio_rate, 8000u);
  EXPECT_EQ(f->channels, 1);
  EXPECT_FALSE(parse_raw_format("u8/8000/1", err));
  EXPECT_FALSE(parse_raw_format("s16le/8000", err));
}

// Issue #17: raw PCM as s16le, s16be, s24le or f32le, 1..64 channels; L16/L24 1..64 channels
// (AES67 up to 64); Opus stays 1..2.
TEST(RawFormat, ParsesEveryFormatAndUpToSixtyFourChannels) {
  std::string err;
  const std::pair<const char*, Codec> cases[] = {{"s16le/48000/2", Codec::raw_s16le},
                                                 {"S16BE/44100/64", Codec::raw_s16be},
                                                 {"s24le/96000/8", Codec::raw_s24le},
                                                 {"f32le/48000/1", Codec::raw_f32le}};
  for (const auto& [spec, codec] : cases) {
    const auto f = parse_raw_format(spec, err);
    ASSERT_TRUE(f) << spec << ": " << err;
    EXPECT_EQ(f->codec, codec) << spec;
    EXPECT_TRUE(is_raw(f->codec));
  }
  EXPECT_FALSE(parse_raw_format("s16le/48000/65", err));
  EXPECT_NE(err.find("1..64"), std::string::npos) << err;
  EXPECT_FALSE(parse_raw_format("f64le/48000/2", err));
  EXPECT_NE(err.find("s16le, s16be, s24le or f32le"), std::string::npos) << err;
  const auto l24 = parse_payload_format("L24/48000/64", err);
  ASSERT_TRUE(l24) << err;
  EXPECT_EQ(l24->channels, 64);
  EXPECT_FALSE(parse_payload_format("L24/48000/65", err));
  EXPECT_FALSE(parse_payload_format("opus/48000/3", err));
}
