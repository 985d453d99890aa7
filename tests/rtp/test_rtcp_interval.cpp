#include <gtest/gtest.h>

#include "rtp/rtcp.hpp"

using namespace rtpnode;

// RFC 3550 A.7 rtcp_interval(), worked by hand.
TEST(RtcpInterval, OneSenderOneReceiverGetsTheMinimumRandomised) {
  RtcpIntervalInputs in;    // 2 members, 1 sender: senders > 25 %, no bandwidth split
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

// The session bandwidth behind the interval (RFC 3550 §6.2), measured from arrivals.
TEST(SessionBandwidthMeter, AStreamStartingMidWindowIsNotDilutedByTheIdleTimeBeforeIt) {
  SessionBandwidthMeter m;
  constexpr std::int64_t ms = 1'000'000;
  EXPECT_EQ(m.bytes_per_second(0), 0.0);
  m.restart(1500 * ms);  // a report after 1.5 s of silence: nothing measured
  EXPECT_EQ(m.bytes_per_second(1500 * ms), 0.0);
  // PCMU at 50 packets/s, 200 bytes each with headers, starting at 1.6 s.
  for (int i = 0; i < 15; ++i) m.on_datagram(200, (1600 + 20 * i) * ms);
  // 280 ms since the first packet, 14 packets after it: 10 kB/s, not 3000 B / 1.38 s.
  EXPECT_NEAR(m.bytes_per_second(1880 * ms), 10'000.0, 1e-6);
  m.restart(1880 * ms);
  // Under 200 ms into the next window: the previous figure stands.
  m.on_datagram(200, 1900 * ms);
  m.on_datagram(200, 1920 * ms);
  EXPECT_NEAR(m.bytes_per_second(1950 * ms), 10'000.0, 1e-6);
  // The stream stops: the window's rate falls as time passes without datagrams.
  EXPECT_NEAR(m.bytes_per_second(2300 * ms), 200.0 * 1e3 / 400.0, 1e-6);
}

TEST(SessionBandwidthMeter, TheIntervalForAFreshPcmuStreamIsTheMinimum) {
  // The case that stretched RRs to several seconds: a report 0.3 s after a stream began.
  SessionBandwidthMeter m;
  constexpr std::int64_t ms = 1'000'000;
  for (int i = 0; i < 16; ++i) m.on_datagram(200, (1000 + 20 * i) * ms);
  RtcpIntervalInputs in;
  in.rtcp_bandwidth = 0.05 * m.bytes_per_second(1300 * ms);  // 500 B/s
  in.min_interval_s = 1.5;
  EXPECT_NEAR(rtcp_interval(in, 0.5), 1.5 / 1.21828, 1e-9);
}
