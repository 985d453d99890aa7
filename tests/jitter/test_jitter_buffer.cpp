#include <gtest/gtest.h>

#include <vector>

#include "jitter/jitter_buffer.hpp"
#include "rtp/rtp_header.hpp"

using namespace rtpnode;
using Kind = JitterBuffer::Action::Kind;

namespace {

constexpr ext_ts_t kPtime = 160;  // 20 ms at 8 kHz

JitterBufferConfig config(std::size_t capacity = 64) {
  JitterBufferConfig c;
  c.clock_rate = 8000;
  c.capacity_packets = capacity;
  c.max_payload_bytes = 160;
  return c;
}

std::vector<std::uint8_t> payload_for(ext_seq_t seq) {
  return std::vector<std::uint8_t>(160, static_cast<std::uint8_t>(seq));
}

InsertResult put(JitterBuffer& jb, ext_seq_t seq, ext_ts_t horizon = 0) {
  return jb.insert(seq, seq * kPtime, false, payload_for(seq), seq * 20'000'000, horizon);
}

/// Drains every step due for `horizon`; records decoded seqs and concealed ticks (-ticks).
std::vector<ext_seq_t> play(JitterBuffer& jb, ext_ts_t horizon) {
  std::vector<ext_seq_t> out;
  for (;;) {
    auto a = jb.next(horizon);
    if (a.kind == Kind::wait) return out;
    if (a.kind == Kind::decode) {
      EXPECT_EQ(a.packet->payload()[0], static_cast<std::uint8_t>(a.packet->seq));
      out.push_back(a.packet->seq);
      jb.played(a, kPtime);
    } else {
      out.push_back(-a.ticks);
      jb.played(a, a.ticks);
    }
  }
}

}  // namespace

TEST(JitterBuffer, ReleasesContiguousPacketsAtOnce) {
  JitterBuffer jb(config());
  for (int s = 0; s < 3; ++s) ASSERT_EQ(put(jb, s), InsertResult::stored);
  EXPECT_EQ(play(jb, 0), (std::vector<ext_seq_t>{0, 1, 2}));
  EXPECT_EQ(jb.cursor_ts(), 3 * kPtime);
  EXPECT_EQ(jb.size(), 0u);
}

TEST(JitterBuffer, AbsorbsReorderingWithinTheDelay) {
  JitterBuffer jb(config());
  ASSERT_EQ(put(jb, 0), InsertResult::stored);
  ASSERT_EQ(put(jb, 2), InsertResult::stored);
  EXPECT_EQ(play(jb, kPtime), (std::vector<ext_seq_t>{0}));  // 1 is not due yet: wait
  ASSERT_EQ(put(jb, 1), InsertResult::stored);
  EXPECT_EQ(play(jb, kPtime), (std::vector<ext_seq_t>{1, 2}));
  EXPECT_EQ(jb.counters().late, 0u);
}

TEST(JitterBuffer, ConcealsSingleLostPacketAtItsDeadline) {
  JitterBuffer jb(config());
  put(jb, 0);
  put(jb, 2);
  EXPECT_EQ(play(jb, kPtime), (std::vector<ext_seq_t>{0}));
  // The deadline of packet 1 (ts 160) passes: conceal exactly its 160 ticks, then play 2.
  EXPECT_EQ(play(jb, kPtime + 1), (std::vector<ext_seq_t>{-kPtime, 2}));
  EXPECT_EQ(jb.next_seq(), 3);
}

TEST(JitterBuffer, ConcealsBurstLossPacketByPacket) {
  JitterBuffer jb(config());
  put(jb, 0);
  put(jb, 4);
  EXPECT_EQ(play(jb, 4 * kPtime + 1), (std::vector<ext_seq_t>{0, -kPtime, -kPtime, -kPtime, 4}));
}

TEST(JitterBuffer, DropsDuplicatesBeforeAndAfterPlayout) {
  JitterBuffer jb(config());
  put(jb, 0);
  put(jb, 1);
  EXPECT_EQ(put(jb, 1), InsertResult::duplicate);  // still stored
  play(jb, 0);
  EXPECT_EQ(put(jb, 0), InsertResult::duplicate);  // already played
  EXPECT_EQ(jb.counters().duplicate, 2u);
  EXPECT_EQ(jb.counters().late, 0u);
}

TEST(JitterBuffer, CountsAndDropsLatePacket) {
  JitterBuffer jb(config());
  put(jb, 0);
  put(jb, 2);
  EXPECT_EQ(play(jb, 2 * kPtime), (std::vector<ext_seq_t>{0, -kPtime, 2}));  // 1 concealed
  EXPECT_EQ(put(jb, 1), InsertResult::late);
  EXPECT_EQ(jb.counters().late, 1u);
  EXPECT_EQ(play(jb, 3 * kPtime), std::vector<ext_seq_t>{});
}

TEST(JitterBuffer, HandlesSequenceAndTimestampWrap) {
  JitterBuffer jb(config());
  SeqUnwrapper su;
  TsUnwrapper tu;
  std::vector<ext_seq_t> decoded;
  rtp_ts_t ts = 0xffffffffu - 2 * 160 + 1;
  for (std::uint32_t i = 0; i < 6; ++i) {
    const seq_t seq = static_cast<seq_t>(65533 + i);  // 65533, 65534, 65535, 0, 1, 2
    const ext_seq_t es = su.unwrap(seq);
    const ext_ts_t et = tu.unwrap(ts);
    ASSERT_EQ(jb.insert(es, et, false, payload_for(es), 0, 0), InsertResult::stored) << i;
    ts += 160;
  }
  for (;;) {
    auto a = jb.next(0);
    if (a.kind != Kind::decode) {
      EXPECT_EQ(a.kind, Kind::wait);
      break;
    }
    decoded.push_back(a.packet->seq);
    jb.played(a, 160);
  }
  EXPECT_EQ(decoded, (std::vector<ext_seq_t>{65533, 65534, 65535, 65536, 65537, 65538}));
}

TEST(JitterBuffer, ReportsGapWhenSenderSkipsTime) {
  JitterBuffer jb(config());
  ASSERT_EQ(jb.insert(0, 0, false, payload_for(0), 0, 0), InsertResult::stored);
  // DTX: the next sequence number carries a timestamp 1 s later, with the marker bit.
  ASSERT_EQ(jb.insert(1, 8000 + kPtime, true, payload_for(1), 0, 0), InsertResult::stored);
  auto a = jb.next(0);
  ASSERT_EQ(a.kind, Kind::decode);
  jb.played(a, kPtime);
  a = jb.next(0);
  ASSERT_EQ(a.kind, Kind::gap);
  EXPECT_EQ(a.ticks, 8000);
  jb.played(a, a.ticks);
  a = jb.next(0);
  ASSERT_EQ(a.kind, Kind::decode);
  EXPECT_EQ(a.packet->seq, 1);
}

TEST(JitterBuffer, ResyncsAfterConsecutiveLatePackets) {
  JitterBuffer jb(config());
  put(jb, 100);
  play(jb, 100 * kPtime);
  // A sender restart: sequence numbers from far behind.
  EXPECT_EQ(jb.insert(10, 10 * kPtime, false, payload_for(10), 0, 101 * kPtime),
            InsertResult::late);
  EXPECT_EQ(jb.insert(11, 11 * kPtime, false, payload_for(11), 0, 101 * kPtime),
            InsertResult::late);
  EXPECT_EQ(jb.insert(12, 12 * kPtime, false, payload_for(12), 0, 101 * kPtime),
            InsertResult::resync);
  jb.reset();
  EXPECT_FALSE(jb.started());
  EXPECT_EQ(jb.insert(12, 12 * kPtime, false, payload_for(12), 0, 12 * kPtime),
            InsertResult::stored);
  EXPECT_EQ(play(jb, 0), (std::vector<ext_seq_t>{12}));
  EXPECT_EQ(jb.counters().resyncs, 1u);
}

TEST(JitterBuffer, ResyncsAtOnceWhenLatePacketFollowsAStall) {
  JitterBuffer jb(config());
  put(jb, 0);
  play(jb, 0);
  // Nothing arrives for 15 packets (300 ms): concealment with an empty buffer, a stall.
  play(jb, 15 * kPtime);
  EXPECT_EQ(jb.cursor_ts(), 15 * kPtime);
  // The sender resumes where it paused (its clock stopped too): late, and a resync.
  EXPECT_EQ(put(jb, 1, 15 * kPtime), InsertResult::resync);
}

TEST(JitterBuffer, ShortLossIsNotAStall) {
  JitterBuffer jb(config());
  put(jb, 0);
  play(jb, 0);
  play(jb, 3 * kPtime);  // 60 ms of concealment with nothing buffered: ordinary loss
  EXPECT_EQ(put(jb, 1, 3 * kPtime), InsertResult::late);  // counted late, no resync
}

TEST(JitterBuffer, ResyncsOnTimestampJumpFarAhead) {
  JitterBuffer jb(config());
  put(jb, 0);
  play(jb, 0);
  EXPECT_EQ(jb.insert(1, kPtime + 8000 * 60, false, payload_for(1), 0, kPtime),
            InsertResult::resync);
}

TEST(JitterBuffer, OverflowEvictsTheOldestPackets) {
  JitterBuffer jb(config(8));
  put(jb, 0);
  play(jb, 0);  // next = 1, which never arrives
  for (int s = 2; s <= 9; ++s) ASSERT_EQ(put(jb, s), InsertResult::stored);
  EXPECT_EQ(jb.counters().overflow, 0u);
  ASSERT_EQ(put(jb, 10), InsertResult::stored);  // window [3, 10]: packet 2 is evicted
  EXPECT_EQ(jb.counters().overflow, 1u);
  EXPECT_EQ(jb.size(), 8u);
  // Packets 1 and 2 are concealed at their deadline, then 3.. play.
  const auto played = play(jb, 3 * kPtime + 1);
  ASSERT_GE(played.size(), 3u);
  EXPECT_EQ(played[0], -kPtime);
  EXPECT_EQ(played[1], -kPtime);
  EXPECT_EQ(played[2], 3);
}

/// 8 slots that may grow to `max_slots` for packets up to `grow_packets` ahead, with packet 0
/// played: the next one due is 1.
JitterBuffer growing_after_packet_0(std::size_t max_slots, int grow_packets) {
  JitterBufferConfig c = config(8);
  c.max_capacity_packets = max_slots;
  c.grow_ticks = grow_packets * kPtime;
  JitterBuffer jb(c);
  put(jb, 0);
  play(jb, 0);
  return jb;
}

// Issue #16 finding 4: the buffer starts small and grows to hold what is due within the playout
// delay, so a 1 ms sender behind a lost packet keeps every packet; a packet beyond grow_ticks
// still slides the window (rule 4 as before), and growth stops at its ceiling.
TEST(JitterBuffer, GrowsForPacketsDueWithinTheDelayAndEvictsBeyondIt) {
  JitterBuffer jb = growing_after_packet_0(64, 40);  // packet 1 never arrives
  for (int s = 2; s <= 40; ++s) ASSERT_EQ(put(jb, s), InsertResult::stored) << s;
  EXPECT_EQ(jb.counters().overflow, 0u);
  EXPECT_EQ(jb.capacity(), 64u);
  EXPECT_EQ(jb.counters().grown, 3u);  // 8 -> 16 -> 32 -> 64
  EXPECT_EQ(jb.size(), 39u);
  // Everything plays in order once packet 1's deadline passes.
  const auto played = play(jb, 2 * kPtime + 1);
  ASSERT_EQ(played.size(), 40u);
  EXPECT_EQ(played[0], -kPtime);
  for (int i = 1; i < 40; ++i) EXPECT_EQ(played[static_cast<std::size_t>(i)], i + 1);
  // At the ceiling, or beyond grow_ticks, rule 4 evicts as before.
  ASSERT_EQ(put(jb, 41 + 64), InsertResult::stored);
  EXPECT_EQ(jb.capacity(), 64u);
  EXPECT_EQ(jb.size(), 1u);
}

TEST(JitterBuffer, APacketFarAheadDoesNotGrowTheBuffer) {
  JitterBuffer jb = growing_after_packet_0(1024, 10);
  ASSERT_EQ(put(jb, 2), InsertResult::stored);
  ASSERT_EQ(put(jb, 20), InsertResult::stored);  // 20 packets ahead: beyond grow_ticks
  EXPECT_EQ(jb.capacity(), 8u);
  EXPECT_EQ(jb.counters().overflow, 1u);  // packet 2 fell out of the window
}

// Payload memory is what the packets need, within max_stored_bytes: a payload past it is
// refused as `full` (counted as overflow), and buffers of slots that hold nothing are given
// back before refusing (a buffer grown during an outage must not block later packets).
TEST(JitterBuffer, PayloadMemoryIsBoundedAndReclaimed) {
  JitterBufferConfig c = config(8);
  c.max_stored_bytes = 4 * 160;
  JitterBuffer jb(c);
  put(jb, 0);
  play(jb, 0);  // packet 0's slot keeps a 160-byte buffer
  EXPECT_EQ(jb.stored_bytes(), 160u);
  for (int s = 2; s <= 4; ++s) ASSERT_EQ(put(jb, s), InsertResult::stored);
  EXPECT_EQ(jb.stored_bytes(), 4u * 160);
  // A fifth buffer passes the ceiling: slot 0's idle buffer is given back first.
  ASSERT_EQ(put(jb, 5), InsertResult::stored);
  EXPECT_EQ(jb.stored_bytes(), 4u * 160);
  EXPECT_EQ(put(jb, 6), InsertResult::full);
  EXPECT_EQ(jb.counters().overflow, 1u);
  EXPECT_EQ(jb.size(), 4u);
  // Played out, the slots' buffers serve the next packets without growing.
  play(jb, 7 * kPtime);
  for (int s = 9; s <= 12; ++s) EXPECT_EQ(put(jb, s), InsertResult::stored) << s;
  EXPECT_LE(jb.stored_bytes(), 4u * 160);
}

TEST(JitterBuffer, RefusesOversizedPayload) {
  JitterBuffer jb(config());
  EXPECT_EQ(jb.insert(0, 0, false, std::vector<std::uint8_t>(161), 0, 0), InsertResult::too_large);
  EXPECT_EQ(jb.counters().too_large, 1u);
  EXPECT_FALSE(jb.started());
}

TEST(JitterBuffer, DiscardedPacketIsConcealed) {
  JitterBuffer jb(config());
  put(jb, 0);
  put(jb, 1);
  auto a = jb.next(0);
  ASSERT_EQ(a.kind, Kind::decode);
  jb.discard(a);  // corrupt payload
  EXPECT_EQ(play(jb, 0), std::vector<ext_seq_t>{});
  EXPECT_EQ(play(jb, 1), (std::vector<ext_seq_t>{-kPtime, 1}));
}

// ---- Adaptive playout additions (issue #3) --------------------------------------------------

TEST(JitterBuffer, ExpandsInsteadOfConcealingWhenNothingLaterIsStored) {
  JitterBuffer jb(config());
  ASSERT_EQ(put(jb, 0), InsertResult::stored);
  EXPECT_EQ(play(jb, kPtime), (std::vector<ext_seq_t>{0}));
  auto a = jb.next(kPtime + 1, /*allow_expand=*/true);
  ASSERT_EQ(a.kind, Kind::expand);
  jb.played(a, a.ticks);
  EXPECT_EQ(jb.cursor_ts(), kPtime);  // the cursor stays: the delay grew instead
  // The late packet still plays, at the cursor.
  ASSERT_EQ(put(jb, 1, kPtime + 1), InsertResult::stored);
  a = jb.next(kPtime + 1, true);
  ASSERT_EQ(a.kind, Kind::decode);
  EXPECT_EQ(a.packet->seq, 1);
  EXPECT_EQ(jb.counters().late, 0u);
}

TEST(JitterBuffer, CreditsExpansionToTheLostSpanWhenALaterPacketComes) {
  JitterBuffer jb(config());
  ASSERT_EQ(put(jb, 0), InsertResult::stored);
  EXPECT_EQ(play(jb, kPtime), (std::vector<ext_seq_t>{0}));
  // Packet 1 is lost; two expand steps of one packet each happen before packet 2 arrives.
  for (int i = 0; i < 2; ++i) {
    auto a = jb.next(kPtime + 1, true);
    ASSERT_EQ(a.kind, Kind::expand);
    jb.played(a, a.ticks);
  }
  ASSERT_EQ(put(jb, 2, kPtime + 1), InsertResult::stored);
  // One packet of expansion covered the lost packet 1: packet 2 decodes next, no concealment.
  auto a = jb.next(kPtime + 1, true);
  ASSERT_EQ(a.kind, Kind::decode);
  EXPECT_EQ(a.packet->seq, 2);
  EXPECT_EQ(jb.counters().expand_credited_ticks, kPtime);
  jb.played(a, kPtime);
  // Packet 1 arriving now is late.
  EXPECT_EQ(put(jb, 1, 3 * kPtime), InsertResult::late);
}

TEST(JitterBuffer, ConcealStepPointsAtTheNextPacketForFec) {
  JitterBuffer jb(config());
  ASSERT_EQ(put(jb, 0), InsertResult::stored);
  ASSERT_EQ(put(jb, 3), InsertResult::stored);
  EXPECT_EQ(play(jb, kPtime), (std::vector<ext_seq_t>{0}));
  auto a = jb.next(3 * kPtime + 1, true);  // 1 and 2 lost; 3 is here: conceal, not expand
  ASSERT_EQ(a.kind, Kind::conceal);
  EXPECT_EQ(a.packet, nullptr);  // the span of 1 does not end where 3 begins
  jb.played(a, a.ticks);
  a = jb.next(3 * kPtime + 1, true);
  ASSERT_EQ(a.kind, Kind::conceal);
  ASSERT_NE(a.packet, nullptr);  // the span of 2 ends where 3 begins: FEC can rebuild it
  EXPECT_EQ(a.packet->seq, 3);
}

TEST(JitterBuffer, ComfortNoisePacketTurnsTheFollowingSpanIntoAGap) {
  JitterBuffer jb(config());
  ASSERT_EQ(put(jb, 0), InsertResult::stored);
  // CN at the end of the talkspurt (zero payload), next speech 10 packets later in time.
  ASSERT_EQ(jb.insert(1, kPtime, false, {}, 0, 0, true), InsertResult::stored);
  ASSERT_EQ(jb.insert(2, 10 * kPtime, true, payload_for(2), 0, 0), InsertResult::stored);
  auto a = jb.next(0);
  ASSERT_EQ(a.kind, Kind::decode);
  jb.played(a, kPtime);
  a = jb.next(0);
  ASSERT_EQ(a.kind, Kind::decode);
  EXPECT_TRUE(a.packet->comfort_noise);
  jb.played(a, 0);
  a = jb.next(0);  // no deadline needed: nothing is missing
  ASSERT_EQ(a.kind, Kind::gap);
  EXPECT_EQ(a.ticks, 9 * kPtime);
}

// Issue #13: a packet whose span was concealed arrives late (rejected at insert); the next one,
// already stored, is at the cursor. It must be decoded at once, not "concealed" for 0 ticks
// (which made Source's render loop stop without producing audio at the deadline).
TEST(JitterBuffer, ThePacketAtTheCursorPlaysAfterItsPredecessorCameLate) {
  JitterBuffer jb(config());
  ASSERT_EQ(put(jb, 0), InsertResult::stored);
  auto a = jb.next(0);
  ASSERT_EQ(a.kind, Kind::decode);
  jb.played(a, kPtime);
  ASSERT_EQ(put(jb, 2, kPtime), InsertResult::stored);  // 1 is missing
  a = jb.next(2 * kPtime);                              // its deadline: conceal 1
  ASSERT_EQ(a.kind, Kind::conceal);
  EXPECT_EQ(a.ticks, kPtime);
  jb.played(a, a.ticks);
  EXPECT_EQ(put(jb, 1, 2 * kPtime), InsertResult::late);
  a = jb.next(2 * kPtime + 1);
  ASSERT_EQ(a.kind, Kind::decode);
  EXPECT_EQ(a.packet->seq, 2u);
}
