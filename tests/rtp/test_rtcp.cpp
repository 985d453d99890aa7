#include <gtest/gtest.h>

#include <algorithm>
#include <random>
#include <vector>

#include "rtp/ortp_log.hpp"
#include "rtp/rtcp.hpp"

using namespace rtpnode;

namespace {

void put32(std::vector<std::uint8_t>& v, std::uint32_t x) {
  for (int s = 24; s >= 0; s -= 8) v.push_back(static_cast<std::uint8_t>(x >> s));
}

/// SR (RFC 3550 §6.4.1) with no report block, then BYE for the same SSRC.
std::vector<std::uint8_t> sr_and_bye(std::uint32_t ssrc, std::uint64_t ntp, std::uint32_t ts) {
  std::vector<std::uint8_t> v{0x80, 200, 0, 6};
  put32(v, ssrc);
  put32(v, static_cast<std::uint32_t>(ntp >> 32));
  put32(v, static_cast<std::uint32_t>(ntp));
  put32(v, ts);
  put32(v, 500);
  put32(v, 80000);
  v.insert(v.end(), {0x81, 203, 0, 1});
  put32(v, ssrc);
  return v;
}

}  // namespace

TEST(Rtcp, ParsesSenderReportAndBye) {
  const auto pkt = sr_and_bye(0xdeadbeef, 0xe5a1b2c3'40000000ull, 123456);
  RtcpCompound c;
  ASSERT_EQ(rtcp_parse(pkt, c), RtcpParseStatus::ok);
  EXPECT_EQ(c.packets, 2);
  ASSERT_EQ(c.sender_reports.size(), 1u);
  EXPECT_EQ(c.sender_reports[0].ssrc, 0xdeadbeefu);
  EXPECT_EQ(c.sender_reports[0].ntp, 0xe5a1b2c3'40000000ull);
  EXPECT_EQ(c.sender_reports[0].rtp_ts, 123456u);
  EXPECT_EQ(c.sender_reports[0].packets, 500u);
  ASSERT_EQ(c.byes.size(), 1u);
  EXPECT_EQ(c.byes[0], 0xdeadbeefu);
}

TEST(Rtcp, ReceiverReportRoundTripsWithCname) {
  RtcpReportBlock b;
  b.ssrc = 0x11223344;
  b.fraction_lost = 13;
  b.cumulative_lost = 42;
  b.highest_seq = 0x0001fffe;
  b.jitter = 77;
  b.lsr = 0xa1b2c3d4;
  b.dlsr = 65536 * 2;
  const auto pkt = rtcp_build_receiver_report(0xcafe, {b}, "rtpnode@host");
  EXPECT_EQ(pkt.size() % 4, 0u);
  RtcpCompound c;
  ASSERT_EQ(rtcp_parse(pkt, c), RtcpParseStatus::ok);
  ASSERT_EQ(c.report_blocks.size(), 1u);
  const RtcpReportBlock& r = c.report_blocks[0];
  EXPECT_EQ(r.reporter, 0xcafeu);
  EXPECT_EQ(r.ssrc, b.ssrc);
  EXPECT_EQ(r.fraction_lost, 13);
  EXPECT_EQ(r.cumulative_lost, 42);
  EXPECT_EQ(r.highest_seq, b.highest_seq);
  EXPECT_EQ(r.jitter, 77u);
  EXPECT_EQ(r.lsr, b.lsr);
  EXPECT_EQ(r.dlsr, b.dlsr);
  ASSERT_EQ(c.cnames.size(), 1u);
  EXPECT_EQ(c.cnames[0].second, "rtpnode@host");
}

TEST(Rtcp, RejectsMalformedCompoundsAndSurvivesGarbage) {
  const auto good = sr_and_bye(1, 2, 3);
  RtcpCompound c;
  auto bad = good;
  bad[0] = 0x40;
  EXPECT_EQ(rtcp_parse(bad, c), RtcpParseStatus::bad_version);
  bad = good;
  bad[3] = 9;  // SR length runs past the datagram
  EXPECT_EQ(rtcp_parse(bad, c), RtcpParseStatus::too_short);
  bad = good;
  bad[0] = 0x81;  // SR claims a report block it does not have
  EXPECT_EQ(rtcp_parse(bad, c), RtcpParseStatus::bad_length);
  bad = good;
  bad[0] |= 0x20;  // padding on the first packet
  EXPECT_EQ(rtcp_parse(bad, c), RtcpParseStatus::bad_padding);
  bad = good;
  bad.push_back(0);  // trailing byte
  EXPECT_NE(rtcp_parse(bad, c), RtcpParseStatus::ok);
  EXPECT_TRUE(c.sender_reports.empty());
  EXPECT_EQ(rtcp_parse(std::vector<std::uint8_t>{0x80, 200}, c), RtcpParseStatus::too_short);
  // Random bytes and random mutations of a good packet: never a crash, never a read outside.
  std::mt19937 rng(5);
  for (int i = 0; i < 20000; ++i) {
    std::vector<std::uint8_t> v = i % 2 ? good : std::vector<std::uint8_t>(rng() % 80);
    for (auto& x : v)
      if (i % 2 == 0 || rng() % 8 == 0) x = static_cast<std::uint8_t>(rng());
    if (i % 4 == 1) v[0] = static_cast<std::uint8_t>(0x80 | (v[0] & 0x3f));
    (void)rtcp_parse(v, c);
  }
}

TEST(Rtcp, SenderReportWithByeRoundTrips) {
  RtcpSenderReport sr;
  sr.ssrc = 77;
  sr.ntp = 0x0123456789abcdefull;
  sr.rtp_ts = 99;
  sr.packets = 5;
  sr.octets = 800;
  const auto pkt = rtcp_build_sender_report(sr, "rtpsend", true);
  RtcpCompound c;
  ASSERT_EQ(rtcp_parse(pkt, c), RtcpParseStatus::ok);
  ASSERT_EQ(c.sender_reports.size(), 1u);
  EXPECT_EQ(c.sender_reports[0].ntp, sr.ntp);
  EXPECT_EQ(c.sender_reports[0].rtp_ts, 99u);
  EXPECT_EQ(c.cnames.at(0).second, "rtpsend");
  EXPECT_EQ(c.byes, std::vector<std::uint32_t>{77});
}

// Issue #16 finding 8: oRTP printed one warning per malformed SDES; 40 k datagrams, 4 423 lines.
TEST(OrtpLog, RepeatedWarningsOfOneKindArePrintedOnceAndCounted) {
  ortp_log_route();
  // RR with no blocks, then an SDES whose chunk's CNAME item claims more bytes than there are.
  std::vector<std::uint8_t> d = {0x80, 201, 0,   1,  0, 0, 0, 1,  // RR, SSRC 1
                                 0x81, 202, 0,   2,  0, 0, 0, 2,
                                 1,    200, 'a', 'b'};  // SDES, CNAME len 200
  const std::uint64_t lines0 = ortp_log_lines();
  const std::uint64_t suppressed0 = ortp_log_suppressed();
  ::testing::internal::CaptureStderr();
  for (int i = 0; i < 1000; ++i) {
    RtcpCompound c;
    (void)rtcp_parse(d, c);
  }
  const std::string err = ::testing::internal::GetCapturedStderr();
  const std::uint64_t lines = ortp_log_lines() - lines0;
  ASSERT_GE(lines, 1000u) << "oRTP no longer warns here; pick another malformation";
  EXPECT_EQ(ortp_log_suppressed() - suppressed0,
            lines - static_cast<std::uint64_t>(std::count(err.begin(), err.end(), '\n')));
  EXPECT_LE(std::count(err.begin(), err.end(), '\n'), 2) << err;
  EXPECT_NE(err.find("repeats are counted"), std::string::npos) << err;
}

// Found by fuzz_rtcp: an SDES item type outside oRTP's enum (100) reached our callback as that
// enum, an undefined load (UBSan). Items of any type are skipped safely; CNAME is still read.
TEST(Rtcp, SdesItemsOfUnknownTypeAreSkippedAndCnameIsRead) {
  const std::vector<std::uint8_t> d = {0x80, 201, 0,   1,   0, 0, 0,   1,  // RR, SSRC 1
                                       0x81, 202, 0,   4,   0, 0, 0,   7,  // SDES, SSRC 7
                                       100,  2,   'x', 'y', 1, 2, 'a', 'b',
                                       0,    0,   0,   0};  // type 100, CNAME "ab"
  RtcpCompound c;
  ASSERT_EQ(rtcp_parse(d, c), RtcpParseStatus::ok);
  ASSERT_EQ(c.cnames.size(), 1u);
  EXPECT_EQ(c.cnames[0].first, 7u);
  EXPECT_EQ(c.cnames[0].second, "ab");
}
