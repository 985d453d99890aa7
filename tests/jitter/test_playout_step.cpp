// The playout step Source and the trace harness share (jitter/playout_step.hpp): the deadline
// rule on scripted packets, fixed and adaptive.
#include <gtest/gtest.h>

#include <vector>

#include "jitter/playout_step.hpp"

using namespace rtpnode;
using Kind = JitterBuffer::Action::Kind;

namespace {

constexpr ext_ts_t kPtime = 160;  // 20 ms at 8 kHz
constexpr mono_ns_t kPtimeNs = 20'000'000;
constexpr mono_ns_t kT0 = 1'000'000'000;  // arrival of packet 0

JitterBufferConfig jb_config() {
  JitterBufferConfig c;
  c.clock_rate = 8000;
  c.capacity_packets = 64;
  c.max_payload_bytes = 160;
  c.default_ptime_ticks = kPtime;
  return c;
}

PlayoutConfig pc_config(bool adaptive) {
  PlayoutConfig c;
  c.clock_rate = 8000;
  c.adaptive = adaptive;
  c.start_delay_ns = 40'000'000;
  c.drift_compensation = false;
  return c;
}

/// Packet `seq` arriving on time (seq x 20 ms after packet 0), inserted at the horizon for
/// `ahead` and fed to the controller.
void arrive(JitterBuffer& jb, PlayoutController& pc, ext_seq_t seq, mono_ns_t ahead) {
  const std::vector<std::uint8_t> payload(160, static_cast<std::uint8_t>(seq));
  const mono_ns_t at = kT0 + static_cast<mono_ns_t>(seq) * kPtimeNs;
  (void)jb.insert(seq, seq * kPtime, false, payload, at, playout_horizon(jb, pc, ahead));
  pc.on_packet(seq * kPtime, at, kPtime);
}

}  // namespace

TEST(PlayoutStep, DecodesWhatIsHereWaitsBeforeTheDeadlineAndConcealsALossAtIt) {
  for (bool adaptive : {false, true}) {
    JitterBuffer jb(jb_config());
    PlayoutController pc(pc_config(adaptive));
    arrive(jb, pc, 0, 40'000'000);
    PlayoutStep s = next_playout_step(jb, pc, kT0, 40'000'000);
    ASSERT_EQ(s.action.kind, Kind::decode) << adaptive;  // contiguous audio is decoded at once
    EXPECT_EQ(s.action.packet->seq, 0u);
    jb.played(s.action, kPtime);
    // Packet 1 is missing, packet 2 is here. Before the deadline of 1's audio: wait.
    arrive(jb, pc, 2, 20'000'000);
    s = next_playout_step(jb, pc, kT0 + 2 * kPtimeNs, 5'000'000);
    EXPECT_EQ(s.action.kind, Kind::wait) << adaptive;
    // At the deadline (nothing queued past it): 1 is lost, a later packet proves it: conceal
    // its span, and offer packet 2 for FEC.
    s = next_playout_step(jb, pc, kT0 + 2 * kPtimeNs, 0);
    ASSERT_EQ(s.action.kind, Kind::conceal) << adaptive;
    EXPECT_EQ(s.action.ticks, kPtime);
    ASSERT_NE(s.action.packet, nullptr);
    EXPECT_EQ(s.action.packet->seq, 2u);
  }
}

TEST(PlayoutStep, AMissingPacketWithNothingLaterExpandsOnlyInAdaptiveMode) {
  for (bool adaptive : {false, true}) {
    JitterBuffer jb(jb_config());
    PlayoutController pc(pc_config(adaptive));
    arrive(jb, pc, 0, 40'000'000);
    PlayoutStep s = next_playout_step(jb, pc, kT0, 40'000'000);
    jb.played(s.action, kPtime);
    // Packet 1 has not come and nothing later is stored: at the deadline an adaptive buffer
    // expands (a delay spike may be under way); a fixed one conceals.
    s = next_playout_step(jb, pc, kT0 + kPtimeNs + 40'000'000, 0);
    EXPECT_EQ(s.action.kind, adaptive ? Kind::expand : Kind::conceal) << adaptive;
    EXPECT_GT(s.action.ticks, 0u);
  }
}

TEST(PlayoutStep, TheDelayIsTheDeadlineMinusTheCursorsRtpTime) {
  JitterBuffer jb(jb_config());
  PlayoutController pc(pc_config(false));
  arrive(jb, pc, 0, 40'000'000);
  // The cursor's audio (RTP time 0, arrived at kT0: the fastest packet) is needed 40 ms after
  // its arrival: delay 40 ms; 10 ms more queued, 50 ms.
  EXPECT_EQ(next_playout_step(jb, pc, kT0, 40'000'000).delay_ns, 40'000'000);
  EXPECT_EQ(next_playout_step(jb, pc, kT0, 50'000'000).delay_ns, 50'000'000);
}
