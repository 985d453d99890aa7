// SourceTable on scripted packets and a fake clock, with real Sources feeding a real Mixer that a
// ManualBackend pulls (the way Roc Toolkit tests its session router): admission by RFC 3550
// A.1 probation, --max-sources refusal, timeout, BYE drain, departed statistics. No sockets,
// no device.
#include <gtest/gtest.h>

#include <arpa/inet.h>
#include <netinet/in.h>

#include <sstream>
#include <stdexcept>

#include "node/file_backend.hpp"
#include "node/source_table.hpp"
#include "support/net.hpp"
#include "support/packet_builder.hpp"

using namespace rtpnode;
using rtpnode::test::v4;

namespace {

constexpr mono_ns_t kT0 = 1'000'000'000'000;  // monotonic time of device frame 0
constexpr mono_ns_t kPtime = 20'000'000;
const PayloadFormat kPcmu{Codec::pcmu, 8000, 8000, 1};

/// A node's worth of parts around one SourceTable: clock, mixer, manual device, event log off.
struct TableHarness {
  DeviceClock clock{48000};
  Mixer mixer{2, 32, 240};
  ManualBackend device{48000, 2, 256};
  EventWatcher events{""};
  std::ostringstream log;
  int made = 0;
  bool factory_throws = false;
  SourceTable table;

  explicit TableHarness(int max_sources, std::chrono::nanoseconds timeout = std::chrono::seconds(5),
                        int max_per_host = 0)
      : table(
            {max_sources, timeout, true, max_per_host},
            [this](const SourceTable::NewSource& n) { return make(n); }, events, log) {
    clock.update(DevicePosition{0, 256, 0.0, 0.0, 1}, 0.0, kT0);
    device.open(mixer);
    device.start();
  }
  std::unique_ptr<Source> make(const SourceTable::NewSource& n) {
    if (factory_throws) throw std::runtime_error("no codec");
    ++made;
    Source::Params p;
    p.id = static_cast<std::uint32_t>(made);
    p.ssrc = n.ssrc;
    p.port = n.port;
    p.remote = address_text(n.from);
    p.format = *n.format;
    p.raw = n.raw;
    p.device_rate = 48000;
    p.lead_frames = 256;
    p.playout.adaptive = false;
    p.playout.start_delay_ns = 40'000'000;
    p.mixer = &mixer;
    p.ramp_frames = 240;
    return std::make_unique<Source>(p, n.first_arrival, clock);
  }
  /// Sends packet `seq` of `ssrc` from `from` at `t`: to its source, or as a candidate. Returns
  /// the source it reached (new or known), or null.
  Source* send(std::uint32_t ssrc, std::uint16_t seq, const sockaddr_storage& from, mono_ns_t t) {
    test::PacketBuilder b;
    b.ssrc = ssrc;
    const auto pkt =
        b.build(seq, static_cast<rtp_ts_t>(seq) * 160, std::vector<std::uint8_t>(160, 0x55));
    RtpHeaderView h;
    EXPECT_EQ(rtp_parse(pkt, h), RtpParseStatus::ok);
    const auto key = source_key(5004, ssrc);
    if (Source* s = table.find(key)) {
      s->on_rtp(h, t, clock);
      s->render(clock, t);
      return s;
    }
    auto a =
        table.on_candidate(key, 5004, h, pkt, reinterpret_cast<const sockaddr*>(&from), kPcmu, t);
    if (!a) return nullptr;
    RtpHeaderView first;
    EXPECT_EQ(rtp_parse(a->first, first), RtpParseStatus::ok);
    a->source->on_rtp(first, a->first_arrival, clock);
    a->source->on_rtp(h, t, clock);
    a->source->render(clock, t);
    return a->source;
  }
  /// Plays `ms` of device time in 256-frame blocks, letting the table expire sources as the node
  /// does each tick.
  void play(int ms, mono_ns_t& t) {
    const int blocks = ms * 48 / 256;
    for (int i = 0; i < blocks; ++i) {
      device.pull();
      mixer.flush_deferred();
      while (mixer.take_retired() != nullptr) {
      }
      t += 256'000'000'000 / 48000;
      for (Source* s : table.active()) s->render(clock, t);
      table.expire(t, clock.frame_at(t));
    }
  }
};

}  // namespace

TEST(SourceTable, TwoPacketsInSequenceAdmitASourceThatPlaysTheHeldOneToo) {
  TableHarness h(4);
  const auto a = v4("10.0.0.1", 4000);
  EXPECT_EQ(h.send(0xA, 100, a, kT0), nullptr);
  EXPECT_EQ(h.table.on_probation(), 1u);
  Source* s = h.send(0xA, 101, a, kT0 + kPtime);
  ASSERT_NE(s, nullptr);
  EXPECT_EQ(h.table.on_probation(), 0u);
  EXPECT_EQ(h.table.active().size(), 1u);
  EXPECT_EQ(s->stats().packets_received, 2u);  // the held packet was played too
  EXPECT_NE(h.log.str().find("new source ssrc 0x0000000a from 10.0.0.1:4000 on port 5004"),
            std::string::npos)
      << h.log.str();
}

TEST(SourceTable, OutOfSequenceRestartsProbationAndAnotherHostsPacketDoesNot) {
  TableHarness h(4);
  const auto a = v4("10.0.0.1", 4000), spoof = v4("10.6.6.6", 4000);
  EXPECT_EQ(h.send(0xB, 100, a, kT0), nullptr);
  EXPECT_EQ(h.send(0xB, 300, spoof, kT0 + 1), nullptr);   // out of sequence from another host:
  EXPECT_NE(h.send(0xB, 101, a, kT0 + kPtime), nullptr);  // ignored, 100 still held
  EXPECT_EQ(h.made, 1);
  // The same host out of sequence starts over: the old packet no longer counts.
  EXPECT_EQ(h.send(0xF, 100, a, kT0), nullptr);
  EXPECT_EQ(h.send(0xF, 500, a, kT0 + kPtime), nullptr);
  EXPECT_EQ(h.send(0xF, 101, a, kT0 + 2 * kPtime), nullptr);  // follows 100, not 500: over again
  EXPECT_NE(h.send(0xF, 102, a, kT0 + 3 * kPtime), nullptr);
  EXPECT_EQ(h.made, 2);
}

TEST(SourceTable, MaxSourcesRefusesEachExtraStreamOnceUntilASlotFrees) {
  TableHarness h(2, std::chrono::milliseconds(200));
  const auto a = v4("10.0.0.1", 4000);
  mono_ns_t t = kT0;
  for (std::uint32_t ssrc : {1u, 2u}) {
    h.send(ssrc, 10, a, t);
    ASSERT_NE(h.send(ssrc, 11, a, t + 1), nullptr);
  }
  // A third stream: admitted by probation, then refused by the limit -- counted once however
  // many packets it sends, and one warning.
  for (std::uint16_t seq = 10; seq < 20; ++seq) EXPECT_EQ(h.send(3, seq, a, t + seq), nullptr);
  EXPECT_EQ(h.table.counters().sources_refused, 1u);
  EXPECT_EQ(h.table.active().size(), 2u);
  EXPECT_NE(h.log.str().find("--max-sources 2 reached"), std::string::npos);
  // Source 1 and 2 stop; they time out, drain through the mixer, and free their slots. The
  // refused stream, still sending, is admitted then without a second count.
  for (int k = 0; k < 30; ++k) {
    h.send(3, static_cast<std::uint16_t>(20 + k), a, t);
    h.play(20, t);
  }
  EXPECT_EQ(h.table.counters().sources_refused, 1u);
  ASSERT_NE(h.table.find(source_key(5004, 3)), nullptr);
  const auto reports = h.table.reports(true);
  int departed = 0;
  for (const auto& r : reports) departed += r.state == std::string("departed") ? 1 : 0;
  EXPECT_EQ(departed, 2);
  EXPECT_NE(h.log.str().find("timed out after 0.2 s without packets"), std::string::npos)
      << h.log.str();
}

TEST(SourceTable, ByeDrainsQueuedAudioBeforeTheSourceDeparts) {
  TableHarness h(4);
  const auto a = v4("10.0.0.1", 4000);
  mono_ns_t t = kT0;
  Source* s = nullptr;
  for (std::uint16_t seq = 0; seq < 10; ++seq) s = h.send(0xC, seq, a, t + seq * kPtime);
  ASSERT_NE(s, nullptr);
  s->on_bye();
  // Its 200 ms are queued behind a 40 ms playout delay. After BYE it stays active while what
  // its ring has no room for (the ring holds 170 ms) waits in the jitter buffer, leaves the
  // active list once everything is in the ring, stays "leaving" while the mixer plays it out,
  // then departs with every frame played.
  h.play(20, t);
  EXPECT_EQ(h.table.active().size(), 1u);
  h.play(80, t);
  EXPECT_TRUE(h.table.active().empty());
  ASSERT_EQ(h.table.draining(), 1u);
  h.play(400, t);
  EXPECT_EQ(h.table.draining(), 0u);
  const auto reports = h.table.reports(true);
  ASSERT_EQ(reports.size(), 1u);
  EXPECT_EQ(reports[0].state, std::string("departed"));
  // 10 packets of 20 ms at 48 kHz, less the resampler's tail (it holds a few ms at the end).
  EXPECT_GE(reports[0].stats.frames_played, 10u * 960u - 256u);
  EXPECT_NE(h.log.str().find("drained after BYE"), std::string::npos);
}

TEST(SourceTable, OneHostCannotFillTheProbationTable) {
  TableHarness h(8);  // table of 4 x 8 + 16 = 48 entries, 8 per host at most... max(8, 48 / 8)
  const auto flood = v4("10.6.6.6", 1), honest = v4("10.0.0.2", 2);
  for (std::uint32_t ssrc = 1000; ssrc < 1100; ++ssrc) h.send(ssrc, 1, flood, kT0);
  EXPECT_EQ(h.table.on_probation(), 8u);
  EXPECT_EQ(h.table.counters().probation_dropped, 92u);
  h.send(7, 1, honest, kT0 + 1);
  EXPECT_NE(h.send(7, 2, honest, kT0 + 2), nullptr);
  // A second later the flood's stale candidates are forgotten when room is needed.
  h.send(2000, 1, flood, kT0 + 2'000'000'000);
  EXPECT_EQ(h.table.on_probation(), 1u);
}

TEST(SourceTable, AFactoryErrorRefusesTheStreamAndCountsIt) {
  TableHarness h(4);
  h.factory_throws = true;
  const auto a = v4("10.0.0.1", 4000);
  h.send(0xD, 1, a, kT0);
  EXPECT_EQ(h.send(0xD, 2, a, kT0 + 1), nullptr);
  EXPECT_EQ(h.table.counters().sources_refused, 1u);
  EXPECT_NE(h.log.str().find("cannot create source: no codec"), std::string::npos);
}

TEST(SourceTable, ByeEndsProbationOnlyFromTheCandidatesHost) {
  TableHarness h(4);
  const auto a = v4("10.0.0.1", 4000), other = v4("10.0.0.9", 4001);
  h.send(0xE, 1, a, kT0);
  h.table.on_bye(source_key(5004, 0xE), reinterpret_cast<const sockaddr*>(&other));
  EXPECT_EQ(h.table.on_probation(), 1u);
  h.table.on_bye(source_key(5004, 0xE), reinterpret_cast<const sockaddr*>(&a));
  EXPECT_EQ(h.table.on_probation(), 0u);
}

// Issue #16 finding 4: a flood of one-packet SSRCs from many addresses fills the probation
// table; the oldest candidates make room, so a new stream whose second packet follows within
// its packet time is admitted while the flood goes on (before: every new SSRC was dropped until
// the flood's candidates were a second old).
TEST(SourceTable, AFloodFromManyAddressesCannotKeepANewStreamOut) {
  TableHarness h(8);  // 48 entries; each flooding address holds one
  const auto honest = v4("10.0.0.2", 2);
  std::uint32_t ssrc = 5000;
  auto flood = [&](int n, mono_ns_t t) {
    for (int i = 0; i < n; ++i, ++ssrc) {
      const auto from =
          v4(("10.7." + std::to_string(ssrc / 250 % 250) + "." + std::to_string(ssrc % 250 + 1))
                 .c_str(),
             1);
      h.send(ssrc, 1, from, t);
    }
  };
  flood(100, kT0);  // the table is full of the flood
  EXPECT_EQ(h.table.on_probation(), 48u);
  h.send(7, 1, honest, kT0 + 1);
  flood(40, kT0 + 10'000'000);  // 40 more within the stream's 20 ms: fewer than the table holds
  EXPECT_NE(h.send(7, 2, honest, kT0 + 20'000'000), nullptr);
  EXPECT_EQ(h.table.counters().probation_dropped, 0u);
  EXPECT_EQ(h.table.counters().probation_evicted, 100u + 1 + 40 - 48);
  EXPECT_LE(h.table.on_probation(), 48u);
}

// Issue #16 finding 4: one host (any port) holds at most --max-sources-per-host sources, so a
// flood of valid-looking streams from one address cannot take every slot. Its extra stream is
// refused once however many packets it sends; another host's stream is admitted meanwhile; and
// once one of the host's sources has timed out and drained, the refused stream is admitted.
TEST(SourceTable, OneHostHoldsAtMostItsShareOfSources) {
  TableHarness h(8, std::chrono::milliseconds(200), 2);
  const auto a1 = v4("10.0.0.1", 4000), a2 = v4("10.0.0.1", 4002), a3 = v4("10.0.0.1", 4004);
  const auto b = v4("10.0.0.2", 4000);
  mono_ns_t t = kT0;
  h.send(1, 10, a1, t);
  ASSERT_NE(h.send(1, 11, a1, t + 1), nullptr);
  h.send(2, 10, a2, t);
  ASSERT_NE(h.send(2, 11, a2, t + 1), nullptr);
  for (std::uint16_t seq = 10; seq < 20; ++seq) EXPECT_EQ(h.send(3, seq, a3, t + seq), nullptr);
  EXPECT_EQ(h.table.counters().host_limit_refused, 1u);
  EXPECT_EQ(h.table.counters().sources_refused, 1u);
  EXPECT_NE(h.log.str().find("new stream from 10.0.0.1:4004 refused: --max-sources-per-host 2"),
            std::string::npos)
      << h.log.str();
  h.send(4, 10, b, t);
  EXPECT_NE(h.send(4, 11, b, t + 1), nullptr) << "another host is not held back";
  EXPECT_EQ(h.table.active().size(), 3u);
  // Stream 1 stops: it times out and drains; 2 and 4 keep sending, and so does the refused 3.
  for (int k = 0; k < 30; ++k) {
    const auto seq = static_cast<std::uint16_t>(20 + k);
    h.send(2, seq, a2, t);
    h.send(4, seq, b, t);
    h.send(3, seq, a3, t);
    h.play(20, t);
  }
  EXPECT_EQ(h.table.find(source_key(5004, 1)), nullptr);
  EXPECT_NE(h.table.find(source_key(5004, 3)), nullptr);
  EXPECT_EQ(h.table.counters().host_limit_refused, 1u);
  EXPECT_EQ(h.table.counters().sources_refused, 1u);
  // Senders on this host are not limited.
  for (std::uint32_t ssrc = 10; ssrc < 13; ++ssrc) {
    const auto local = v4("127.0.0.1", static_cast<std::uint16_t>(ssrc));
    h.send(ssrc, 10, local, t);
    EXPECT_NE(h.send(ssrc, 11, local, t + 1), nullptr);
  }
}
