// RFC 3550 A.3 reception statistics on scripted sequence numbers.
#include <gtest/gtest.h>

#include "rtp/receive_stats.hpp"

using namespace rtpnode;

TEST(ReceiveStats, LossReorderingAndTheReportIntervalFollowA3) {
  ReceiveStats rx;
  EXPECT_FALSE(rx.started());
  rx.start(65530);
  // 65530 .. 65545 across the 16-bit wrap (extended), with 65533 and 65540 lost and 65536
  // arriving after 65537.
  for (ext_seq_t s = 65530; s <= 65545; ++s) {
    if (s == 65533 || s == 65540 || s == 65536) continue;
    EXPECT_FALSE(rx.on_packet(s)) << s;
    if (s == 65537) {
      EXPECT_TRUE(rx.on_packet(65536));
    }
  }
  EXPECT_EQ(rx.expected(), 16);
  EXPECT_EQ(rx.received(), 14u);
  EXPECT_EQ(rx.lost(), 2);
  const RtcpReportBlock b = rx.take_report_block(0xabc, 0, 77);
  EXPECT_EQ(b.ssrc, 0xabcu);
  EXPECT_EQ(b.fraction_lost, 2 * 256 / 16);  // 32
  EXPECT_EQ(b.cumulative_lost, 2);
  EXPECT_EQ(b.highest_seq, 65545u);  // 1 cycle in the high 16 bits, 9 in the low
  EXPECT_EQ(b.jitter, 77u);
  // Next interval: 10 more, none lost, and 3 duplicates: RFC 3550 counts them as received, so
  // the interval's fraction is 0 (not negative) and the cumulative loss drops by 3.
  for (ext_seq_t s = 65546; s <= 65555; ++s) rx.on_packet(s);
  const RtcpReportBlock c = rx.take_report_block(0xabc, 3, 0);
  EXPECT_EQ(c.fraction_lost, 0);
  EXPECT_EQ(c.cumulative_lost, 2 - 3);
  EXPECT_EQ(rx.lost(), 2);  // the true loss stays
}

TEST(ReceiveStats, ARestartKeepsTheFinishedRunsExpectedCount) {
  ReceiveStats rx;
  rx.start(100);
  for (ext_seq_t s = 100; s < 110; ++s) rx.on_packet(s);  // 10 expected, 10 received
  rx.restart(5000);  // the sender restarted with a new sequence
  rx.on_packet(5000);
  rx.on_packet(5002);  // 5001 lost
  EXPECT_EQ(rx.expected(), 13);
  EXPECT_EQ(rx.received(), 12u);
  EXPECT_EQ(rx.lost(), 1);
  EXPECT_EQ(rx.highest(), 5002u);
}

TEST(ReceiveStats, CumulativeLossIsClampedTo24BitsSigned) {
  ReceiveStats rx;
  rx.start(0);
  rx.on_packet(0);
  rx.on_packet(20'000'000);  // a span far beyond 2^23
  const RtcpReportBlock b = rx.take_report_block(1, 0, 0);
  EXPECT_EQ(b.cumulative_lost, 0x7fffff);
  EXPECT_EQ(b.fraction_lost, 255);
}
