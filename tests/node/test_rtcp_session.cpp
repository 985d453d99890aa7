// The receiver's RTCP session without sockets or timers: held SRs, RR contents and where they
// go, and the report interval, driven by a fake clock.
#include <gtest/gtest.h>

#include <arpa/inet.h>
#include <netinet/in.h>

#include <set>

#include "node/rtcp_session.hpp"

#include "support/net.hpp"

using namespace rtpnode;
using rtpnode::test::v4;

namespace {

constexpr mono_ns_t kT0 = 5'000'000'000'000;

std::uint16_t port_of(const sockaddr_storage& ss) {
  return ntohs(reinterpret_cast<const sockaddr_in*>(&ss)->sin_port);
}

ReportTarget target(std::uint32_t ssrc, std::uint16_t listen_port,
                    const sockaddr_storage& rtp_from) {
  ReportTarget t;
  t.block.ssrc = ssrc;
  t.block.highest_seq = 1000 + ssrc;
  t.key = (std::uint64_t{listen_port} << 32) | ssrc;
  t.rtp_from = rtp_from;
  return t;
}

}  // namespace

TEST(RtcpSession, ReportsGoToTheSrSenderWithLsrAndDlsrElseToRtpPortPlusOne) {
  RtcpSession session(42, "rtpnode@test", 100);
  const auto a = v4("10.0.0.1", 40000), b = v4("10.0.0.2", 50000);
  RtcpSenderReport sr;
  sr.ssrc = 1;
  sr.ntp = (std::uint64_t{3'900'000'000} << 32) | 0x80000000u;  // x.5 s
  sr.rtp_ts = 160;
  const auto a_rtcp_from = v4("10.0.0.1", 40005);  // the sender's RTCP comes from another port
  session.hold((std::uint64_t{5004} << 32) | 1, sr, reinterpret_cast<const sockaddr*>(&a_rtcp_from),
               kT0);
  const OutgoingReports out =
      session.build({target(1, 5004, a), target(2, 5004, b)}, kT0 + 250'000'000);
  ASSERT_EQ(out.packets.size(), 1u);
  RtcpCompound c;
  ASSERT_EQ(rtcp_parse(out.packets[0], c), RtcpParseStatus::ok);
  ASSERT_EQ(c.report_blocks.size(), 2u);
  EXPECT_EQ(c.report_blocks[0].reporter, session.reporter_ssrc());
  EXPECT_EQ(c.report_blocks[0].lsr, static_cast<std::uint32_t>(sr.ntp >> 16));
  EXPECT_EQ(c.report_blocks[0].dlsr, 16384u);  // 0.25 s in 1/65536 s
  EXPECT_EQ(c.report_blocks[1].lsr, 0u);
  EXPECT_EQ(c.report_blocks[1].dlsr, 0u);
  ASSERT_EQ(c.cnames.size(), 1u);
  EXPECT_EQ(c.cnames[0].second, "rtpnode@test");
  ASSERT_EQ(out.destinations.size(), 2u);
  EXPECT_EQ(port_of(out.destinations[0]), 40005);  // where its SR came from
  EXPECT_EQ(port_of(out.destinations[1]), 50001);  // RFC 3550 §11: RTP port + 1
  // Forgetting the SR (BYE) sends the next report to the RTP port + 1.
  session.forget((std::uint64_t{5004} << 32) | 1);
  EXPECT_EQ(session.held((std::uint64_t{5004} << 32) | 1), nullptr);
  const OutgoingReports again = session.build({target(1, 5004, a)}, kT0);
  EXPECT_EQ(port_of(again.destinations[0]), 40001);
}

TEST(RtcpSession, MoreThanThirtyOneSourcesSplitIntoSeveralReportsToDeduplicatedDestinations) {
  RtcpSession session(1, "c", 100);
  std::vector<ReportTarget> targets;
  const auto one_sender = v4("10.0.0.9", 6000);
  for (std::uint32_t s = 1; s <= 40; ++s) targets.push_back(target(s, 5004, one_sender));
  const OutgoingReports out = session.build(targets, kT0);
  ASSERT_EQ(out.packets.size(), 2u);
  EXPECT_EQ(out.destinations.size(), 1u);
  std::set<std::uint32_t> reported;
  for (const auto& p : out.packets) {
    RtcpCompound c;
    ASSERT_EQ(rtcp_parse(p, c), RtcpParseStatus::ok);
    EXPECT_LE(c.report_blocks.size(), 31u);
    for (const auto& b : c.report_blocks) reported.insert(b.ssrc);
  }
  EXPECT_EQ(reported.size(), 40u);
}

TEST(RtcpSession, IntervalIsHalfTminFirstThenTminAndGrowsWithTheSession) {
  RtcpSession session(7, "c", 100);
  const auto tmin = std::chrono::seconds(5);
  // RFC 3550 A.7: the initial interval is Tmin / 2, randomised over [0.5, 1.5] and divided by
  // e - 3/2 = 1.21828.
  for (int i = 0; i < 50; ++i) {
    const double first = session.next_interval_s(1, tmin, kT0);
    EXPECT_GE(first, 2.5 * 0.5 / 1.21828 - 1e-9);
    EXPECT_LE(first, 2.5 * 1.5 / 1.21828 + 1e-9);
  }
  session.on_reported(kT0);
  for (int i = 0; i < 50; ++i) {
    const double next = session.next_interval_s(1, tmin, kT0);
    EXPECT_GE(next, 5.0 * 0.5 / 1.21828 - 1e-9);
    EXPECT_LE(next, 5.0 * 1.5 / 1.21828 + 1e-9);
  }
  // A large session at a low bandwidth: 500 senders, 8 kB/s of RTP. The deterministic interval
  // is members x avg size / (receivers' share of 5 %), far above Tmin.
  for (int k = 0; k <= 100; ++k)
    session.on_datagram(52, kT0 + k * 6'250'000);  // 80 B with headers / 6.25 ms
  const double big = session.next_interval_s(500, tmin, kT0 + 100 * 6'250'000);
  EXPECT_GT(big, 5.0 * 1.5 / 1.21828);
}

TEST(RtcpSession, HeldReportsAreBoundedAndAveragedSizesFollowTraffic) {
  RtcpSession session(3, "c", 4);
  const auto from = v4("10.0.0.1", 1);
  RtcpSenderReport sr;
  for (std::uint32_t s = 0; s < 4; ++s)
    session.hold(s, sr, reinterpret_cast<const sockaddr*>(&from), kT0);
  EXPECT_NE(session.held(3), nullptr);
  session.hold(3, sr, reinterpret_cast<const sockaddr*>(&from), kT0);  // an update: kept
  EXPECT_NE(session.held(0), nullptr);
  session.hold(99, sr, reinterpret_cast<const sockaddr*>(&from),
               kT0);  // a fifth sender: cleared first
  EXPECT_EQ(session.held(0), nullptr);
  EXPECT_NE(session.held(99), nullptr);
  const double before = session.avg_rtcp_size();
  for (int i = 0; i < 200; ++i) session.on_compound(972);  // 1000 bytes with UDP/IPv4 headers
  EXPECT_NEAR(session.avg_rtcp_size(), 1000.0, 1.0);
  EXPECT_LT(before, 200.0);
}
