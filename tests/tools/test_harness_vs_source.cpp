// Issue #13: the trace harness must measure the code that ships. Source and the harness share the
// playout step (jitter/playout_step.hpp); here both run one recorded trace (written and read back
// in rtpsend's --trace-out format) and must make the same decisions: the same late packets and
// the same concealed spans. Fixed playout, no drift compensation, L16 at the device rate, so the
// audio passes through Source untouched and both output models are exact; arrival times fall on
// 125 us (6 frames at 48 kHz), so the device clock maps them to whole frames.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <vector>

#include "node/source.hpp"
#include "support/packet_builder.hpp"
#include "tools/trace_sim.hpp"

using namespace rtpnode;

namespace {

constexpr mono_ns_t kT0 = 1'000'000'000'000;  // monotonic time of device frame 0
constexpr mono_ns_t kGrid = 125'000;          // 6 frames at 48 kHz
constexpr mono_ns_t kRenderNs = 5'000'000;

/// Writes `t` in rtpsend --trace-out format (arrival times on the grid), reads it back.
sim::Trace record(const sim::Trace& t, const std::string& path) {
  {
    std::ofstream out(path);
    for (const auto& p : t.packets)
      out << (p.seq & 0xffff) << ' ' << (p.ts & 0xffffffff) << ' '
          << (p.arrival_ns / kGrid * kGrid + kGrid) << ' ' << (p.lost ? "lost" : "sent") << '\n';
  }
  std::string err;
  auto back = sim::read_trace(path, 48000, err);
  EXPECT_TRUE(back) << err;
  std::filesystem::remove(path);
  return back ? *back : sim::Trace{};
}

struct SourceRun {
  std::uint64_t late = 0;
  std::uint64_t concealed_frames = 0;  ///< concealed and silent (after 100 ms of concealment)
};

/// Plays `t` through a Source as the node does: each packet rendered on arrival, and a render
/// every 5 ms from the first arrival; the device consumes the ring (it is drained each step).
SourceRun run_source(const sim::Trace& t, mono_ns_t delay_ns) {
  DeviceClock clock(48000);
  clock.update(DevicePosition{0, 256, 0.0, 0.0, 1}, 0.0, kT0);
  std::vector<const sim::TracePacket*> arrivals;
  for (const auto& p : t.packets)
    if (!p.lost) arrivals.push_back(&p);
  std::stable_sort(arrivals.begin(), arrivals.end(),
                   [](const auto* a, const auto* b) { return a->arrival_ns < b->arrival_ns; });
  Source::Params p;
  p.id = 1;
  p.ssrc = 0x5eed;
  p.payload_type = 96;
  p.format = {Codec::l16, 48000, 48000, 1};
  p.device_rate = 48000;
  p.lead_frames = 0;
  p.playout.adaptive = false;
  p.playout.drift_compensation = false;
  p.playout.start_delay_ns = delay_ns;
  test::PacketBuilder b;
  b.pt = 96;
  b.ssrc = p.ssrc;
  const std::vector<std::uint8_t> payload(2 * 960, 0x11);
  std::unique_ptr<Source> s;
  std::vector<float> sink(1 << 16);
  auto drain = [&] {
    while (s->stream()->ring.size() > 0) s->stream()->ring.pop(sink.data(), sink.size());
  };
  const mono_ns_t first = kT0 + arrivals.front()->arrival_ns;
  mono_ns_t next_render = first;
  const mono_ns_t end = kT0 + arrivals.back()->arrival_ns + 2'000'000'000;
  std::size_t i = 0;
  while (next_render <= end) {
    while (i < arrivals.size() && kT0 + arrivals[i]->arrival_ns <= next_render) {
      const sim::TracePacket& a = *arrivals[i++];
      const mono_ns_t at = kT0 + a.arrival_ns;
      if (!s) s = std::make_unique<Source>(p, at, clock);
      const auto pkt =
          b.build(static_cast<seq_t>(a.seq & 0xffff), static_cast<rtp_ts_t>(a.ts), payload);
      RtpHeaderView h;
      EXPECT_EQ(rtp_parse(pkt, h), RtpParseStatus::ok);
      s->on_rtp(h, at, clock);
      s->render(clock, at);
      drain();
    }
    s->render(clock, next_render);
    drain();
    if (i == arrivals.size() && s->packets_buffered() == 0) break;  // as the harness stops
    next_render += kRenderNs;
  }
  const SourceStats st = s->stats();
  return {st.packets_late, st.frames_concealed + st.frames_silent};
}

}  // namespace

TEST(HarnessAndSource, MakeTheSameDecisionsOnARecordedTrace) {
  const std::string dir = std::filesystem::temp_directory_path().string();
  int k = 0;
  for (const sim::Trace& made :
       {sim::make_wifi(60, 7), sim::make_uniform(60, 40, 7), sim::make_gilbert(60, 0.05, 3, 7)}) {
    const sim::Trace t = record(made, dir + "/rtpnode-harness-" + std::to_string(k++) + ".trace");
    ASSERT_FALSE(t.packets.empty());
    sim::SimOptions o;
    o.playout.adaptive = false;
    o.playout.drift_compensation = false;
    o.playout.start_delay_ns = 20'000'000;
    o.render_interval_ns = kRenderNs;
    const sim::SimResult h = sim::simulate(t, o);
    const SourceRun s = run_source(t, 20'000'000);
    // The traces are chosen so that both happen: packets late at a 20 ms delay (wifi stalls,
    // uniform jitter; the Gilbert trace's jitter stays below 20 ms) and losses.
    if (k <= 2) {
      EXPECT_GT(h.late, 10u) << made.name;
    }
    EXPECT_GT(h.losses_at_deadline, 10u) << made.name;
    EXPECT_EQ(s.late, h.late) << made.name;
    EXPECT_EQ(s.concealed_frames, h.losses_at_deadline * 960) << made.name;
  }
}
