#include <gtest/gtest.h>

#include "rtp/rtcp.hpp"

using namespace rtpnode;

// RFC 3550 A.7 rtcp_interval(), worked by hand.
TEST(RtcpInterval, OneSenderOneReceiverGetsTheMinimumRandomised) {
  RtcpIntervalInputs in;  // 2 members, 1 sender: senders > 25 %, no bandwidth split
  in.rtcp_bandwidth = 400;  // 5 % of 64 kbit/s
  EXPECT_NEAR(rtcp_interval(in, 0.5), 5.0 / 1.21828, 1e-9);
  EXPECT_NEAR(rtcp_interval(in, 0.0), 2.5 / 1.21828, 1e-9);
  EXPECT_NEAR(rtcp_interval(in, 0.999999), 7.5 / 1.21828, 1e-5);
  in.initial = true;  // half the minimum before the first report
  EXPECT_NEAR(rtcp_interval(in, 0.5), 2.5 / 1.21828, 1e-9);
}

TEST(RtcpInterval, ReceiversOfALargeSessionShareThreeQuartersOfTheBandwidth) {
  RtcpIntervalInputs in;
  in.members = 1000;
  in.senders = 1;
  in.rtcp_bandwidth = 400;
  in.avg_rtcp_size = 100;
  // n = 999 receivers over 300 B/s: 333 s deterministic.
  EXPECT_NEAR(rtcp_interval(in, 0.5), 100.0 * 999 / 300 / 1.21828, 1e-6);
  in.we_sent = true;  // a sender: 1 of 1 senders over 100 B/s = 1 s, raised to Tmin
  EXPECT_NEAR(rtcp_interval(in, 0.5), 5.0 / 1.21828, 1e-9);
  in.min_interval_s = 0.5;
  EXPECT_NEAR(rtcp_interval(in, 0.5), 1.0 / 1.21828, 1e-9);
}

TEST(RtcpInterval, NoBandwidthEstimateFallsBackToTheMinimum) {
  RtcpIntervalInputs in;
  in.members = 50;
  in.senders = 1;
  in.rtcp_bandwidth = 0;
  EXPECT_NEAR(rtcp_interval(in, 0.5), 5.0 / 1.21828, 1e-9);
}
