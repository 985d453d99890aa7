// A sender's RTP-to-NTP mapping from scripted Sender Reports.
#include <gtest/gtest.h>

#include "node/sender_clock.hpp"

using namespace rtpnode;

namespace {
constexpr std::int64_t kS = 1'000'000'000;
constexpr std::int64_t kNtp0 = 3'900'000'000 * kS;  // some NTP instant, ns since 1900
}  // namespace

TEST(SenderClock, MapsTimestampsAndMeasuresTheSendersRate) {
  SenderClock c(48000);
  EXPECT_FALSE(c.has_mapping());
  ASSERT_TRUE(c.on_sender_report(kNtp0, 1000));
  ASSERT_TRUE(c.has_mapping());
  EXPECT_EQ(c.ntp_of(1000 + 48000), kNtp0 + kS);  // nominal rate until measured
  EXPECT_EQ(c.ticks_per_ns(), 0.0);
  // 5 s later the sender's RTP clock ran 100 ppm fast: the rate is measured from the two SRs.
  const ext_ts_t ts5 = 1000 + 240000 + 24;
  ASSERT_TRUE(c.on_sender_report(kNtp0 + 5 * kS, ts5));
  EXPECT_NEAR(c.ticks_per_ns() / (48000 * 1e-9), 1.0001, 1e-7);
  // Extrapolating uses the measured rate: 48005 ticks at 48004.8 per second are 1.0000042 s
  // (at the nominal rate they would be 1.0001042 s).
  EXPECT_NEAR(static_cast<double>(c.ntp_of(ts5 + 48005) - (kNtp0 + 6 * kS)), 4166.0, 2.0);
}

TEST(SenderClock, AJumpIsTakenOnlyWhenTheNextReportConfirmsIt) {
  SenderClock c(8000);
  ASSERT_TRUE(c.on_sender_report(kNtp0, 0));
  ASSERT_TRUE(c.on_sender_report(kNtp0 + 5 * kS, 40000));
  // A forged SR: the mapping moves by 3 s.
  EXPECT_FALSE(c.on_sender_report(kNtp0 + 10 * kS, 80000 + 24000));
  EXPECT_EQ(c.ntp_of(80000), kNtp0 + 10 * kS);  // the old mapping still holds
  // The genuine next one agrees with the old mapping: the candidate is dropped.
  EXPECT_TRUE(c.on_sender_report(kNtp0 + 15 * kS, 120000));
  // A real restart: two SRs agreeing with each other, not with the old mapping.
  EXPECT_FALSE(c.on_sender_report(kNtp0 + 20 * kS, 500000));
  EXPECT_TRUE(c.on_sender_report(kNtp0 + 25 * kS, 540000));
  EXPECT_EQ(c.ntp_of(540000 + 8000), kNtp0 + 26 * kS);
  EXPECT_EQ(c.ticks_per_ns(), 0.0);  // a new mapping: its rate is measured afresh
}

TEST(SenderClock, DriftWithinTheBoundIsNotAJump) {
  SenderClock c(48000);
  ASSERT_TRUE(c.on_sender_report(kNtp0, 0));
  // 10 s at 1500 ppm fast: 720 ticks more than nominal, within 2000 ppm x 10 s + 5 ms.
  EXPECT_TRUE(c.on_sender_report(kNtp0 + 10 * kS, 480000 + 720));
  // 10 s later 3000 ppm off the measured rate: beyond the bound.
  EXPECT_FALSE(c.on_sender_report(kNtp0 + 20 * kS, 960000 + 720 + 720 + 1440));
}
