// RFC 7273 direct media clocks (rtp/media_clock.hpp): the SDP's description and the timestamp
// arithmetic, with numbers worked by hand.
#include <gtest/gtest.h>

#include "rtp/media_clock.hpp"
#include "rtp/sdp.hpp"

using namespace rtpnode;

namespace {

SdpMedia with(const std::string& refclk, const std::string& mediaclk) {
  SdpMedia m;
  m.ts_refclk = refclk;
  m.mediaclk = mediaclk;
  return m;
}

}  // namespace

TEST(MediaClock, SdpNamesNtpOrPtpWithADirectOffset) {
  auto ntp = media_clock_of(with("ntp=/traceable/", "direct=1234567"));
  ASSERT_TRUE(ntp);
  EXPECT_EQ(ntp->reference, MediaClock::Reference::ntp);
  EXPECT_EQ(ntp->offset, 1234567u);
  auto ptp = media_clock_of(with("ptp=IEEE1588-2008:00-11-22-FF-FE-33-44-55:0", "direct=0"));
  ASSERT_TRUE(ptp);
  EXPECT_EQ(ptp->reference, MediaClock::Reference::ptp);
  EXPECT_EQ(ptp->offset, 0u);
  EXPECT_EQ(media_clock_of(with("ptp=IEEE1588-2008:traceable", "direct=4294967295"))->offset,
            4294967295u);
  std::string why;
  EXPECT_FALSE(media_clock_of(with("", ""), &why));
  EXPECT_EQ(why, "") << "no media clock named is no error";
  EXPECT_FALSE(media_clock_of(with("local", "direct=0"), &why));
  EXPECT_NE(why.find("names no clock this node reads"), std::string::npos) << why;
  EXPECT_FALSE(media_clock_of(with("ntp=/traceable/", "sender"), &why));
  EXPECT_NE(why.find("not direct="), std::string::npos) << why;
  EXPECT_FALSE(media_clock_of(with("ntp=/traceable/", "direct=5 rate=1000/1001"), &why));
  EXPECT_NE(why.find("rate="), std::string::npos) << why;
  EXPECT_FALSE(media_clock_of(with("ntp=/traceable/", "direct=4294967296"), &why));
}

TEST(MediaClock, TimestampIsTheReferenceTimeInTicksPlusTheOffsetModulo2To32) {
  // 1 s after the epoch at 48 kHz: 48000 ticks; + offset 10.
  EXPECT_EQ(media_clock_timestamp(1'000'000'000, 48000, 10), 48010u);
  // 2026-12-01 00:00:00 UTC on the NTP timescale: 4'005'072'000 s since 1900. At 48 kHz that is
  // 192'243'456'000'000 ticks; mod 2^32: minus 44'760 x 4'294'967'296 = 192'242'736'168'960,
  // leaves 719'831'040.
  const std::int64_t t = 4'005'072'000LL * 1'000'000'000;
  EXPECT_EQ(media_clock_timestamp(t, 48000, 0), 719'831'040u);
  // Half a tick rounds to the nearest (10417 ns is 0.500016 ticks at 48 kHz).
  EXPECT_EQ(media_clock_timestamp(t + 10'417, 48000, 0), 719'831'041u);
  EXPECT_EQ(media_clock_timestamp(t + 10'416, 48000, 0), 719'831'040u);
}

TEST(MediaClock, InstantOfATimestampIsTheOneNearestTheArrival) {
  const std::int64_t t = 4'005'072'000LL * 1'000'000'000;  // a whole second: exact at any rate
  for (std::int64_t rate : {8000, 16000, 44100, 48000, 90000}) {
    for (std::uint32_t offset : {0u, 123'456'789u, 4'294'967'295u}) {
      const rtp_ts_t ts = media_clock_timestamp(t, rate, offset);
      // Arriving 80 ms after capture, or (a clock off) 200 ms before it: the same instant.
      EXPECT_EQ(media_clock_instant(ts, rate, offset, t + 80'000'000), t) << rate << " " << offset;
      EXPECT_EQ(media_clock_instant(ts, rate, offset, t - 200'000'000), t) << rate << " " << offset;
      // One tick later is 1/rate s later.
      EXPECT_EQ(media_clock_instant(ts + 1, rate, offset, t), t + 1'000'000'000 / rate) << rate;
    }
  }
  // Across the 2^32 wrap of the timestamp (offset chosen so that t is just before it).
  const std::uint32_t offset = 0xffffffffu - 719'831'040u;
  const rtp_ts_t before = media_clock_timestamp(t, 48000, offset);
  EXPECT_EQ(before, 0xffffffffu);
  EXPECT_EQ(media_clock_instant(before + 480, 48000, offset, t), t + 10'000'000);
  EXPECT_EQ(media_clock_instant(before, 48000, offset, t + 10'000'000), t);
}

TEST(MediaClock, PtpEpochIsTaiFrom1970) {
  // An NTP instant (UTC, from 1900) is on the PTP timescale (TAI, from 1970) at
  // ntp - (2'208'988'800 - 37) s.
  EXPECT_EQ(ptp_minus_ntp_epoch_ns(37), 2'208'988'763LL * 1'000'000'000);
}
