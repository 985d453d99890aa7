#include <gtest/gtest.h>

#include "rtp/rtp_header.hpp"
#include "support/packet_builder.hpp"

using namespace rtpnode;
using rtpnode::test::PacketBuilder;

namespace {
RtpParseStatus parse(const std::vector<std::uint8_t>& p, RtpHeaderView& h) {
  return rtp_parse(p, h);
}
}  // namespace

TEST(RtpHeader, ParsesFixedHeaderFields) {
  PacketBuilder b;
  b.pt = 96;
  b.marker = true;
  b.ssrc = 0xdeadbeef;
  const auto p = b.build(0xfffe, 0x89abcdef, {1, 2, 3});
  RtpHeaderView h;
  ASSERT_EQ(parse(p, h), RtpParseStatus::ok);
  EXPECT_EQ(h.payload_type, 96);
  EXPECT_TRUE(h.marker);
  EXPECT_EQ(h.sequence_number, 0xfffe);
  EXPECT_EQ(h.timestamp, 0x89abcdefu);
  EXPECT_EQ(h.ssrc, 0xdeadbeefu);
  ASSERT_EQ(h.payload.size(), 3u);
  EXPECT_EQ(h.payload[0], 1);
  EXPECT_EQ(h.payload[2], 3);
}

TEST(RtpHeader, SkipsCsrcsExtensionAndPadding) {
  PacketBuilder b;
  b.csrcs = 2;
  b.extension_words = 3;
  b.padding = 4;
  const auto p = b.build(1, 2, {9, 8, 7, 6, 5});
  RtpHeaderView h;
  ASSERT_EQ(parse(p, h), RtpParseStatus::ok);
  EXPECT_EQ(h.csrc_count, 2);
  EXPECT_TRUE(h.has_extension);
  ASSERT_EQ(h.payload.size(), 5u);
  EXPECT_EQ(h.payload[0], 9);
  EXPECT_EQ(h.payload[4], 5);
}

TEST(RtpHeader, RejectsShortDatagram) {
  const std::vector<std::uint8_t> p(11, 0x80);
  RtpHeaderView h;
  EXPECT_EQ(parse(p, h), RtpParseStatus::too_short);
  EXPECT_EQ(parse({}, h), RtpParseStatus::too_short);
}

TEST(RtpHeader, RejectsVersionOtherThanTwo) {
  auto p = PacketBuilder{}.build(1, 2, {0});
  RtpHeaderView h;
  for (std::uint8_t v : {0, 1, 3}) {
    p[0] = static_cast<std::uint8_t>((p[0] & 0x3f) | (v << 6));
    EXPECT_EQ(parse(p, h), RtpParseStatus::bad_version) << int(v);
  }
}

TEST(RtpHeader, RejectsCsrcCountPastTheEnd) {
  auto p = PacketBuilder{}.build(1, 2, {0, 0, 0});
  p[0] |= 0x0f;  // 15 CSRCs = 60 bytes, datagram has 3 after the fixed header
  RtpHeaderView h;
  EXPECT_EQ(parse(p, h), RtpParseStatus::csrc_overflow);
}

TEST(RtpHeader, RejectsExtensionLengthPastTheEnd) {
  PacketBuilder b;
  b.extension_words = 1;
  auto p = b.build(1, 2, {});
  p[12 + 3] = 50;  // claims 50 words
  RtpHeaderView h;
  EXPECT_EQ(parse(p, h), RtpParseStatus::extension_overflow);
  // Extension bit set but not even the 4-byte extension header fits.
  auto q = PacketBuilder{}.build(1, 2, {});
  q[0] |= 0x10;
  EXPECT_EQ(parse(q, h), RtpParseStatus::extension_overflow);
}

TEST(RtpHeader, RejectsBadPadding) {
  RtpHeaderView h;
  auto zero = PacketBuilder{}.build(1, 2, {1, 2, 0});
  zero[0] |= 0x20;  // pad count 0 is invalid
  EXPECT_EQ(parse(zero, h), RtpParseStatus::bad_padding);
  auto big = PacketBuilder{}.build(1, 2, {1, 2, 200});
  big[0] |= 0x20;  // pad count larger than the payload
  EXPECT_EQ(parse(big, h), RtpParseStatus::bad_padding);
}

TEST(RtpHeader, ClassifiesMultiplexedRtcp) {
  // RTCP SR: V=2, PT=200.
  std::vector<std::uint8_t> sr(28, 0);
  sr[0] = 0x80;
  sr[1] = 200;
  RtpHeaderView h;
  EXPECT_EQ(parse(sr, h), RtpParseStatus::rtcp);
}

TEST(SeqUnwrapper, ExtendsAcrossWrapAndReorder) {
  SeqUnwrapper u;
  EXPECT_EQ(u.unwrap(65534), 65534);
  EXPECT_EQ(u.unwrap(65535), 65535);
  EXPECT_EQ(u.unwrap(0), 65536);
  EXPECT_EQ(u.unwrap(1), 65537);
  EXPECT_EQ(u.unwrap(65535), 65535);  // reordered from before the wrap
  EXPECT_EQ(u.unwrap(2), 65538);
  EXPECT_EQ(u.unwrap(2), 65538);  // duplicate keeps its value
}

TEST(SeqUnwrapper, ReorderedPacketBeforeWrapKeepsCycle) {
  SeqUnwrapper u;
  EXPECT_EQ(u.unwrap(10), 10);
  EXPECT_EQ(u.unwrap(5), 5);
  EXPECT_EQ(u.unwrap(11), 11);
}

TEST(TsUnwrapper, ExtendsAcross32BitWrap) {
  TsUnwrapper u;
  EXPECT_EQ(u.unwrap(0xffffff00u), 0xffffff00ll);
  EXPECT_EQ(u.unwrap(0x00000060u), 0x100000060ll);
  EXPECT_EQ(u.unwrap(0xfffffff0u), 0xfffffff0ll);  // older packet, previous cycle
  EXPECT_EQ(u.unwrap(0x000003c0u), 0x1000003c0ll);
}

TEST(Units, RescaleFloorIsExactAndFloors) {
  EXPECT_EQ(rescale_floor(160, 8000, 48000), 960);
  EXPECT_EQ(rescale_floor(1, 48000, 8000), 0);
  EXPECT_EQ(rescale_floor(-1, 48000, 8000), -1);
  EXPECT_EQ(rescale_floor(-6, 48000, 8000), -1);
  EXPECT_EQ(rescale_floor(-7, 48000, 8000), -2);
  EXPECT_EQ(frames_to_ns(48000, 48000), 1'000'000'000);
  EXPECT_EQ(ns_to_frames(20'000'000, 44100), 882);
  // Large values (a week of 48 kHz frames in ns) do not overflow.
  EXPECT_EQ(frames_to_ns(48000ll * 604800, 48000), 604800ll * 1'000'000'000);
}
