// RFC 4733 telephone-events: block parsing, DTMF characters, and one report per event --
// retransmitted ends ignored, lost ends reported by the next event or at flush.
#include <gtest/gtest.h>

#include <algorithm>
#include <cstdint>
#include <vector>

#include "rtp/telephone_event.hpp"

namespace rtpnode {
namespace {

std::vector<std::uint8_t> block(std::uint8_t event, bool end, std::uint8_t volume,
                                std::uint16_t duration) {
  return {event, static_cast<std::uint8_t>((end ? 0x80 : 0) | volume),
          static_cast<std::uint8_t>(duration >> 8), static_cast<std::uint8_t>(duration)};
}

TEST(TelephoneEvent, BlockFieldsAndDtmfCharacters) {
  const auto b = parse_telephone_event(block(11, true, 10, 1600));
  ASSERT_TRUE(b);
  EXPECT_EQ(b->event, 11);
  EXPECT_TRUE(b->end);
  EXPECT_EQ(b->volume, 10);
  EXPECT_EQ(b->duration, 1600);
  EXPECT_FALSE(parse_telephone_event(std::vector<std::uint8_t>{1, 2, 3}));
  const std::string expected = "0123456789*#ABCD!";
  for (std::uint8_t e = 0; e <= 16; ++e) EXPECT_EQ(dtmf_char(e), expected[e]) << int(e);
  EXPECT_EQ(dtmf_char(17), '?');
  EXPECT_EQ(dtmf_char(255), '?');
}

TEST(TelephoneEvent, AnEventIsReportedOnceAtItsFirstEndPacket) {
  TelephoneEventReceiver r;
  for (std::uint16_t d = 160; d <= 960; d += 160)
    EXPECT_EQ(r.on_packet(8000, block(5, false, 10, d), d * 1000).count, 0);
  const auto done = r.on_packet(8000, block(5, true, 10, 1120), 9'000'000);
  ASSERT_EQ(done.count, 1);
  EXPECT_EQ(done.events[0].digit, '5');
  EXPECT_EQ(done.events[0].rtp_timestamp, 8000u);
  EXPECT_EQ(done.events[0].duration_ticks, 1120u);
  EXPECT_EQ(done.events[0].first_arrival, 160'000);
  EXPECT_TRUE(done.events[0].end_seen);
  // RFC 4733 §2.5.1.4: the end is sent three times; a late middle packet too.
  EXPECT_EQ(r.on_packet(8000, block(5, true, 10, 1120), 0).count, 0);
  EXPECT_EQ(r.on_packet(8000, block(5, true, 10, 1120), 0).count, 0);
  EXPECT_EQ(r.on_packet(8000, block(5, false, 10, 800), 0).count, 0);
  EXPECT_FALSE(r.flush());
}

TEST(TelephoneEvent, LostEndPacketsAreReportedByTheNextEventOrAtFlush) {
  TelephoneEventReceiver r;
  EXPECT_EQ(r.on_packet(1000, block(1, false, 10, 400), 1).count, 0);
  EXPECT_EQ(r.on_packet(1000, block(1, false, 10, 800), 2).count, 0);
  // Digit 2 starts: digit 1 ends as it stood.
  auto done = r.on_packet(5000, block(2, false, 10, 160), 3);
  ASSERT_EQ(done.count, 1);
  EXPECT_EQ(done.events[0].digit, '1');
  EXPECT_EQ(done.events[0].duration_ticks, 800u);
  EXPECT_FALSE(done.events[0].end_seen);
  // Digit 3 seen only by its end, while digit 2 had no end: both, in order.
  done = r.on_packet(9000, block(3, true, 10, 640), 4);
  ASSERT_EQ(done.count, 2);
  EXPECT_EQ(done.events[0].digit, '2');
  EXPECT_EQ(done.events[1].digit, '3');
  EXPECT_TRUE(done.events[1].end_seen);
  EXPECT_EQ(r.on_packet(12000, block(10, false, 10, 160), 5).count, 0);
  const auto last = r.flush();
  ASSERT_TRUE(last);
  EXPECT_EQ(last->digit, '*');
  EXPECT_FALSE(r.flush());
  EXPECT_EQ(r.on_packet(13000, std::vector<std::uint8_t>{1}, 6).count, 0);  // too short
}

TEST(TelephoneEvent, ALongEventSentInSegmentsIsReportedOnceWithItsWholeDuration) {
  // RFC 4733 §2.5.1.3: 20 s of '#' at 8 kHz = 160 000 ticks, more than the 16-bit duration
  // holds: segments of 65535 ticks, each starting where the previous one's duration ends, the
  // E bit only on the last.
  TelephoneEventReceiver r;
  const std::uint32_t start = 0xFFFF0000u;  // the segments' timestamps wrap around 2^32
  std::uint32_t ts = start;
  std::uint32_t left = 160'000;
  mono_ns_t t = 0;
  int reports = 0;
  TelephoneEventReceiver::Event got;
  while (left > 0) {
    const std::uint16_t seg = static_cast<std::uint16_t>(std::min<std::uint32_t>(left, 0xFFFF));
    for (std::uint32_t d = 160; d <= seg; d += 160) {
      const bool last_packet = d + 160 > seg;
      const bool end = last_packet && left == seg;
      const auto done = r.on_packet(ts, block(11, end, 10, last_packet ? seg : d), t += 20);
      for (int i = 0; i < done.count; ++i) got = done.events[static_cast<std::size_t>(i)];
      reports += done.count;
      // A late packet of the previous segment changes nothing.
      if (d == 320 && ts != start) {
        EXPECT_EQ(r.on_packet(ts - 0xFFFF, block(11, false, 10, 800), t).count, 0);
      }
    }
    ts += seg;
    left -= seg;
  }
  ASSERT_EQ(reports, 1);
  EXPECT_EQ(got.digit, '#');
  EXPECT_EQ(got.rtp_timestamp, start);
  EXPECT_EQ(got.duration_ticks, 160'000u);
  EXPECT_TRUE(got.end_seen);
  EXPECT_EQ(got.first_arrival, 20);
  // Its retransmitted end is ignored.
  EXPECT_EQ(r.on_packet(ts - (160'000u - 2u * 0xFFFFu), block(11, true, 10, 28'930), t).count, 0);
  EXPECT_FALSE(r.flush());
}

TEST(TelephoneEvent, SegmentsThatDoNotJoinAreSeparateEvents) {
  TelephoneEventReceiver r;
  // A segment whose last packets were lost ends short of the next one's start: two reports.
  EXPECT_EQ(r.on_packet(1000, block(4, false, 10, 60'000), 1).count, 0);
  auto done = r.on_packet(1000 + 0xFFFF, block(4, false, 10, 160), 2);
  ASSERT_EQ(done.count, 1);
  EXPECT_EQ(done.events[0].duration_ticks, 60'000u);
  EXPECT_FALSE(done.events[0].end_seen);
  // Another digit where the segment would continue is a new event.
  done = r.on_packet(1000 + 0xFFFF + 160, block(5, true, 10, 800), 3);
  ASSERT_EQ(done.count, 2);
  EXPECT_EQ(done.events[0].digit, '4');
  EXPECT_EQ(done.events[0].duration_ticks, 160u);
  EXPECT_EQ(done.events[1].digit, '5');
  // After an event's end, the same digit starting where it ended is a new press.
  done = r.on_packet(1000 + 0xFFFF + 160 + 800, block(5, true, 10, 400), 4);
  ASSERT_EQ(done.count, 1);
  EXPECT_EQ(done.events[0].duration_ticks, 400u);
  EXPECT_EQ(done.events[0].rtp_timestamp, 1000u + 0xFFFF + 160 + 800);
}

}  // namespace
}  // namespace rtpnode
