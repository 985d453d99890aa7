// Cost of the adaptive jitter buffer per packet: insert (with the delay estimate) plus the
// playout steps that packet causes, as Source runs them (no codec: that is the decoder's cost).
// Run: build/tests/bench_jitter
#include <benchmark/benchmark.h>

#include <vector>

#include "jitter/jitter_buffer.hpp"
#include "jitter/playout.hpp"

using namespace rtpnode;

namespace {

void BM_InsertAndPlayout(benchmark::State& state) {
  constexpr ext_ts_t kPtime = 960;
  constexpr mono_ns_t kPtimeNs = 20'000'000;
  JitterBufferConfig jc;
  jc.clock_rate = 48000;
  jc.capacity_packets = 256;
  jc.max_payload_bytes = 1500;
  jc.expand_ticks = 240;
  JitterBuffer jb(jc);
  PlayoutConfig pc_cfg;
  pc_cfg.clock_rate = 48000;
  PlayoutController pc(pc_cfg);
  const std::vector<std::uint8_t> payload(160, 0x55);
  // Deterministic jitter 0..30 ms and one loss in 50, so every kind of step happens.
  std::uint64_t rng = 1;
  ext_seq_t seq = 0;
  mono_ns_t written = 60'000'000;
  for (auto _ : state) {
    rng = rng * 6364136223846793005ull + 1442695040888963407ull;
    const mono_ns_t arrival = seq * kPtimeNs + static_cast<mono_ns_t>((rng >> 33) % 30'000'000);
    if (seq % 50 != 17) {
      const auto r = jb.insert(seq, seq * kPtime, false, payload, arrival, jb.cursor_ts());
      if (r == InsertResult::stored) pc.on_packet(seq * kPtime, arrival, kPtime);
      benchmark::DoNotOptimize(r);
    }
    const mono_ns_t now = arrival;
    for (;;) {
      const mono_ns_t ahead = written - now;
      const mono_ns_t delay = pc.delay_ns(now + ahead, jb.cursor_ts());
      const ext_ts_t horizon =
          ahead > 0 ? jb.cursor_ts() - ahead * 48 / 1'000'000 - 1 : jb.cursor_ts() + 1;
      const auto a = jb.next(horizon, pc.may_expand(delay, kPtime));
      if (a.kind == JitterBuffer::Action::Kind::wait) break;
      const ext_ts_t ticks = a.kind == JitterBuffer::Action::Kind::decode ? kPtime : a.ticks;
      benchmark::DoNotOptimize(pc.update_speed(now, delay, kPtime));
      written += ticks * 1'000'000 / 48;
      jb.played(a, ticks);
    }
    ++seq;
  }
  state.SetItemsProcessed(state.iterations());
  state.counters["late"] = static_cast<double>(jb.counters().late);
}
BENCHMARK(BM_InsertAndPlayout);

}  // namespace

BENCHMARK_MAIN();
