#include "tools/trace_sim.hpp"

#include <algorithm>
#include <cmath>
#include <fstream>
#include <queue>
#include <sstream>

#include "jitter/jitter_buffer.hpp"
#include "jitter/playout_step.hpp"
#include "rtp/rtp_header.hpp"
#include "tools/fault_injector.hpp"

namespace rtpnode::sim {

namespace {

constexpr mono_ns_t kMs = 1'000'000;
constexpr mono_ns_t kPtimeNs = 20 * kMs;
constexpr mono_ns_t kBaseDelayNs = 5 * kMs;

Trace skeleton(const std::string& name, double seconds) {
  Trace t;
  t.name = name;
  const auto n = static_cast<std::size_t>(seconds * 1e9 / static_cast<double>(kPtimeNs));
  t.packets.resize(n);
  for (std::size_t i = 0; i < n; ++i) {
    auto& p = t.packets[i];
    p.seq = static_cast<ext_seq_t>(i);
    p.ts = static_cast<ext_ts_t>(i) * t.ptime_ticks;
    p.arrival_ns = static_cast<mono_ns_t>(i) * kPtimeNs + kBaseDelayNs;
  }
  return t;
}

Trace with_faults(const std::string& name, double seconds, const FaultConfig& fc) {
  Trace t = skeleton(name, seconds);
  FaultInjector inj(fc);
  for (auto& p : t.packets) {
    const PacketFate f = inj.next();
    p.lost = f.lost;
    p.arrival_ns += std::min<mono_ns_t>(f.delay_ns, 1000 * kMs);
  }
  return t;
}

/// The jitter buffer both simulations drive: as Source configures it (5 ms expansion steps),
/// with 1-byte stand-in payloads.
JitterBufferConfig sim_jitter_buffer_config(std::uint32_t rate, ext_ts_t ptime_ticks) {
  JitterBufferConfig c;
  c.clock_rate = rate;
  c.capacity_packets = 512;
  c.max_payload_bytes = 1;
  c.default_ptime_ticks = ptime_ticks;
  c.expand_ticks = std::max<ext_ts_t>(1, rate / 200);
  return c;
}

JitterModel uniform_ms(double max_ms) {
  JitterModel j;
  j.kind = JitterModel::Kind::uniform;
  j.max_ns = static_cast<mono_ns_t>(max_ms * 1e6);
  return j;
}

}  // namespace

Trace make_clean(double seconds) {
  return skeleton("clean", seconds);
}

Trace make_uniform(double seconds, double max_jitter_ms, std::uint64_t seed) {
  FaultConfig fc;
  fc.seed = seed;
  fc.jitter = uniform_ms(max_jitter_ms);
  std::ostringstream name;
  name << "uniform 0-" << max_jitter_ms << "ms";
  return with_faults(name.str(), seconds, fc);
}

Trace make_pareto(double seconds, double scale_ms, double shape, std::uint64_t seed) {
  FaultConfig fc;
  fc.seed = seed;
  fc.jitter.kind = JitterModel::Kind::pareto;
  fc.jitter.scale_ns = static_cast<mono_ns_t>(scale_ms * 1e6);
  fc.jitter.shape = shape;
  std::ostringstream name;
  name << "pareto " << scale_ms << "ms a=" << shape;
  return with_faults(name.str(), seconds, fc);
}

Trace make_gilbert(double seconds, double loss, double mean_burst, std::uint64_t seed) {
  FaultConfig fc;
  fc.seed = seed;
  fc.burst_r = 1.0 / mean_burst;
  fc.burst_p = loss * *fc.burst_r / (1.0 - loss);  // loss = p / (p + r)
  fc.jitter = uniform_ms(10);
  std::ostringstream name;
  name << "gilbert " << loss * 100 << "% burst " << mean_burst;
  return with_faults(name.str(), seconds, fc);
}

Trace make_loss(double seconds, double loss, std::uint64_t seed) {
  FaultConfig fc;
  fc.seed = seed;
  fc.loss = loss;
  fc.jitter = uniform_ms(10);
  std::ostringstream name;
  name << "random loss " << loss * 100 << "%";
  return with_faults(name.str(), seconds, fc);
}

Trace make_reorder(double seconds, double fraction, std::uint64_t seed) {
  FaultConfig fc;
  fc.seed = seed;
  fc.reorder = fraction;
  fc.reorder_delay_ns = kPtimeNs * 3 / 2;
  fc.jitter = uniform_ms(5);
  std::ostringstream name;
  name << "reorder " << fraction * 100 << "%";
  return with_faults(name.str(), seconds, fc);
}

Trace make_wifi(double seconds, std::uint64_t seed) {
  Trace t = skeleton("wifi stalls", seconds);
  FaultConfig fc;
  fc.seed = seed;
  FaultInjector rng(fc);
  mono_ns_t next_stall = static_cast<mono_ns_t>((2.0 + 3.0 * rng.uniform()) * 1e9);
  mono_ns_t stall_end = -1, stall_start = -1, last_arrival = 0;
  for (auto& p : t.packets) {
    const mono_ns_t send = p.arrival_ns - kBaseDelayNs;
    if (send >= next_stall && stall_end < send) {
      stall_start = send;
      stall_end = send + static_cast<mono_ns_t>((100.0 + 200.0 * rng.uniform()) * 1e6);
      next_stall = send + static_cast<mono_ns_t>((2.0 + 3.0 * rng.uniform()) * 1e9);
    }
    // Exponential jitter with a mean of 2 ms on top of 2 ms.
    mono_ns_t arrival =
        p.arrival_ns + 2 * kMs + static_cast<mono_ns_t>(-2e6 * std::log(1.0 - rng.uniform()));
    if (send >= stall_start && send < stall_end)
      arrival = std::max(arrival, stall_end + kBaseDelayNs);
    // The link delivers in order: a queued packet leaves 0.2 ms after the one before it.
    arrival = std::max(arrival, last_arrival + kMs / 5);
    last_arrival = arrival;
    p.arrival_ns = arrival;
  }
  return t;
}

Trace make_step(double seconds, double step_ms, std::uint64_t seed) {
  FaultConfig fc;
  fc.seed = seed;
  fc.jitter = uniform_ms(5);
  std::ostringstream name;
  name << "step " << (step_ms > 0 ? "+" : "") << step_ms << "ms";
  Trace t = with_faults(name.str(), seconds, fc);
  t.step_at_ns = static_cast<mono_ns_t>(seconds / 2 * 1e9);
  // Before the step the path is 100 ms long for a -100 ms step, so delays stay positive.
  const auto step = static_cast<mono_ns_t>(step_ms * 1e6);
  for (std::size_t i = 0; i < t.packets.size(); ++i) {
    const mono_ns_t send = static_cast<mono_ns_t>(i) * kPtimeNs;
    if (step < 0 && send < t.step_at_ns) t.packets[i].arrival_ns -= step;
    if (step > 0 && send >= t.step_at_ns) t.packets[i].arrival_ns += step;
  }
  return t;
}

std::optional<Trace> read_trace(const std::string& path, std::uint32_t clock_rate,
                                std::string& error) {
  std::ifstream in(path);
  if (!in) {
    error = "cannot read " + path;
    return std::nullopt;
  }
  Trace t;
  t.name = path;
  t.clock_rate = clock_rate;
  SeqUnwrapper seqs;
  TsUnwrapper tss;
  std::string line;
  int line_no = 0;
  while (std::getline(in, line)) {
    ++line_no;
    if (line.empty() || line[0] == '#') continue;
    std::istringstream ls(line);
    long long seq = 0, ts = 0, when = 0;
    std::string fate;
    if (!(ls >> seq >> ts >> when) || seq < 0 || seq > 65535 || ts < 0 || ts > 0xffffffffLL) {
      error = path + ":" + std::to_string(line_no) + ": expected \"seq rtp_ts time_ns [fate]\"";
      return std::nullopt;
    }
    ls >> fate;
    if (fate == "paused" || fate == "dtx") continue;  // never sent
    TracePacket p;
    p.seq = seqs.unwrap(static_cast<seq_t>(seq));
    p.ts = tss.unwrap(static_cast<rtp_ts_t>(ts));
    p.arrival_ns = when;
    p.lost = fate == "lost";
    t.packets.push_back(p);
  }
  if (t.packets.size() < 2) {
    error = path + ": fewer than 2 packets";
    return std::nullopt;
  }
  // Packet duration: the most common timestamp step.
  std::vector<ext_ts_t> steps;
  for (std::size_t i = 1; i < t.packets.size(); ++i)
    if (t.packets[i].seq == t.packets[i - 1].seq + 1 && t.packets[i].ts > t.packets[i - 1].ts)
      steps.push_back(t.packets[i].ts - t.packets[i - 1].ts);
  if (steps.empty()) {
    error = path + ": no consecutive packets to tell the packet duration";
    return std::nullopt;
  }
  std::nth_element(steps.begin(), steps.begin() + static_cast<std::ptrdiff_t>(steps.size() / 2),
                   steps.end());
  t.ptime_ticks = steps[steps.size() / 2];
  return t;
}

namespace {

double quantile_with_budget(std::vector<mono_ns_t> v, double epsilon) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  const auto allowed =
      static_cast<std::size_t>(std::floor(epsilon * static_cast<double>(v.size())));
  return static_cast<double>(v[v.size() - 1 - std::min(allowed, v.size() - 1)]);
}

}  // namespace

SimResult simulate(const Trace& trace, const SimOptions& opt) {
  SimResult r;
  const std::uint32_t rate = trace.clock_rate;
  auto ts_ns = [&](ext_ts_t ts) { return frames_to_ns(ts, rate); };

  // Arrival events in time order (stable: equal times keep sending order).
  std::vector<const TracePacket*> arrivals;
  mono_ns_t c_ref = INT64_MAX;
  for (const auto& p : trace.packets) {
    ++r.packets;
    if (p.lost) {
      ++r.network_lost;
      continue;
    }
    arrivals.push_back(&p);
    c_ref = std::min(c_ref, p.arrival_ns - ts_ns(p.ts));
  }
  if (arrivals.empty()) return r;
  std::stable_sort(
      arrivals.begin(), arrivals.end(),
      [](const TracePacket* a, const TracePacket* b) { return a->arrival_ns < b->arrival_ns; });

  PlayoutConfig pc_cfg = opt.playout;
  pc_cfg.clock_rate = rate;
  PlayoutController pc(pc_cfg);
  JitterBuffer jb(sim_jitter_buffer_config(rate, trace.ptime_ticks));

  // Output model: audio starts at t0 (first arrival + the start delay) and is consumed in real
  // time; `written` ns of audio have been produced, so new audio is needed at t0 + written.
  const mono_ns_t t0 = arrivals.front()->arrival_ns + pc.target_ns(trace.ptime_ticks);
  double written = 0;
  double concealed = 0;
  bool slewing = false;
  std::vector<std::pair<mono_ns_t, mono_ns_t>> played;  // (play time, delay) per packet
  const std::uint8_t byte = 0;

  // Source's playout step (jitter/playout_step.hpp): the cursor's audio is needed at t0 + written.
  auto ahead_at = [&](mono_ns_t now) {
    return static_cast<mono_ns_t>(static_cast<double>(t0) + written) - now;
  };
  auto horizon = [&](mono_ns_t now) { return playout_horizon(jb, pc, ahead_at(now)); };

  auto render = [&](mono_ns_t now) {
    for (;;) {
      const auto needed_at = static_cast<mono_ns_t>(static_cast<double>(t0) + written);
      const PlayoutStep step = next_playout_step(jb, pc, now, ahead_at(now));
      const mono_ns_t d = step.delay_ns;
      const auto& a = step.action;
      using K = JitterBuffer::Action::Kind;
      if (a.kind == K::wait) return;
      const mono_ns_t span = ts_ns(a.kind == K::decode ? trace.ptime_ticks : a.ticks);
      switch (a.kind) {
        case K::decode: {
          played.emplace_back(needed_at, needed_at - ts_ns(a.packet->ts) - c_ref);
          const double s = pc.update_speed(now, d, jb.ptime_ticks());
          const bool now_slewing = std::abs(s - 1.0) > 1e-3;
          if (now_slewing && !slewing) ++r.delay_changes;
          slewing = now_slewing;
          written += static_cast<double>(span) / s;
          jb.played(a, trace.ptime_ticks);
          break;
        }
        case K::conceal:
          ++r.losses_at_deadline;
          if (a.packet) ++r.fec_available;
          written += static_cast<double>(span);
          concealed += static_cast<double>(span);
          jb.played(a, a.ticks);
          break;
        case K::expand:
          pc.count_expansion();
          written += static_cast<double>(span);
          concealed += static_cast<double>(span);
          jb.played(a, a.ticks);
          break;
        case K::gap:
          written += static_cast<double>(pc.adjust_gap(span, d, jb.ptime_ticks()));
          jb.played(a, a.ticks);
          break;
        case K::wait:
          return;
      }
    }
  };

  mono_ns_t next_render = arrivals.front()->arrival_ns;
  const mono_ns_t end = arrivals.back()->arrival_ns + 2'000 * kMs;
  std::size_t i = 0;
  std::uint64_t late_before = 0;
  mono_ns_t last_late_arrival = -1;
  while (next_render <= end) {
    // Packets arriving before the next render tick; each is rendered on arrival as Source does.
    while (i < arrivals.size() && arrivals[i]->arrival_ns <= next_render) {
      const TracePacket& p = *arrivals[i++];
      InsertResult res =
          jb.insert(p.seq, p.ts, false, {&byte, 1}, p.arrival_ns, horizon(p.arrival_ns));
      if (res == InsertResult::resync) {
        // As Source does: start over from this packet, played at its arrival + the target
        // (silence up to there; the output cannot go back).
        ++r.resyncs;
        jb.reset();
        pc.rebase();
        const double want =
            static_cast<double>(p.arrival_ns + pc.target_ns(trace.ptime_ticks) - t0);
        written = std::max(written, want);
        res = jb.insert(p.seq, p.ts, false, {&byte, 1}, p.arrival_ns, p.ts);
      }
      if (res == InsertResult::stored || res == InsertResult::late)
        pc.on_packet(p.ts, p.arrival_ns, trace.ptime_ticks);
      render(p.arrival_ns);
      if (jb.counters().late != late_before) {
        late_before = jb.counters().late;
        last_late_arrival = p.arrival_ns;
      }
    }
    render(next_render);
    if (i == arrivals.size() && jb.size() == 0) break;  // the end of the trace is played
    if (jb.counters().late != late_before) {
      late_before = jb.counters().late;
      last_late_arrival = next_render;
    }
    next_render += opt.render_interval_ns;
  }

  r.late = jb.counters().late;
  r.late_loss = static_cast<double>(r.late) / static_cast<double>(arrivals.size());
  r.conceal_fraction = written > 0 ? concealed / written : 0;
  r.delay_changes += pc.counters().expansions + pc.counters().gap_adjustments;
  if (!played.empty()) {
    std::vector<mono_ns_t> d;
    double sum = 0;
    for (const auto& [when, delay] : played) {
      d.push_back(delay);
      sum += static_cast<double>(delay);
    }
    r.mean_delay_ms = sum / static_cast<double>(d.size()) / 1e6;
    r.p95_delay_ms = quantile_with_budget(d, 0.05) / 1e6;
    const mono_ns_t last = played.back().first;
    double fsum = 0;
    int fn = 0;
    for (const auto& [when, delay] : played)
      if (when >= last - 10'000 * kMs) {
        fsum += static_cast<double>(delay);
        ++fn;
      }
    r.final_delay_ms = fsum / fn / 1e6;
    if (trace.step_at_ns >= 0) {
      const mono_ns_t step_time = trace.step_at_ns + (t0 - ts_ns(trace.packets.front().ts));
      mono_ns_t settled = step_time;
      for (const auto& [when, delay] : played)
        if (when > step_time &&
            std::abs(static_cast<double>(delay) / 1e6 - r.final_delay_ms) > 10.0)
          settled = when;
      r.settle_after_step_s = static_cast<double>(settled - step_time) / 1e9;
      const mono_ns_t step_arrival =
          trace.step_at_ns + arrivals.front()->arrival_ns - ts_ns(arrivals.front()->ts);
      r.last_late_after_step_s = last_late_arrival > step_arrival
                                     ? static_cast<double>(last_late_arrival - step_arrival) / 1e9
                                     : 0.0;
    }
  }

  // Oracles over the arrived packets' relative delays.
  std::vector<mono_ns_t> rel;
  rel.reserve(arrivals.size());
  for (const auto* p : arrivals) rel.push_back(p->arrival_ns - ts_ns(p->ts) - c_ref);
  r.oracle_fixed_ms = quantile_with_budget(rel, opt.epsilon) / 1e6;
  // Windowed: windows of 10 s by RTP time; the least envelope above the per-window quantiles
  // changing by at most 1 ms/s (10 ms per window).
  constexpr mono_ns_t kWindow = 10'000 * kMs;
  constexpr double kSlewMsPerWindow = 10.0;
  const ext_ts_t ts0 = trace.packets.front().ts;
  std::vector<std::vector<mono_ns_t>> windows;
  for (const auto* p : arrivals) {
    const auto w = static_cast<std::size_t>(std::max<mono_ns_t>(0, ts_ns(p->ts - ts0)) / kWindow);
    if (windows.size() <= w) windows.resize(w + 1);
    windows[w].push_back(p->arrival_ns - ts_ns(p->ts) - c_ref);
  }
  std::vector<double> q(windows.size());
  for (std::size_t w = 0; w < windows.size(); ++w)
    q[w] = quantile_with_budget(windows[w], opt.epsilon) / 1e6;
  double wsum = 0;
  std::size_t wn = 0;
  for (std::size_t w = 0; w < windows.size(); ++w) {
    double dw = 0;
    for (std::size_t k = 0; k < windows.size(); ++k)
      dw = std::max(
          dw, q[k] - kSlewMsPerWindow * std::abs(static_cast<double>(w) - static_cast<double>(k)));
    wsum += dw * static_cast<double>(windows[w].size());
    wn += windows[w].size();
  }
  r.oracle_window_ms = wn ? wsum / static_cast<double>(wn) : 0;
  r.ratio_fixed = r.oracle_fixed_ms > 0 ? r.mean_delay_ms / r.oracle_fixed_ms : 0;
  r.ratio_window = r.oracle_window_ms > 0 ? r.mean_delay_ms / r.oracle_window_ms : 0;
  return r;
}

DriftSimResult simulate_drift(const DriftSimOptions& opt) {
  DriftSimResult r;
  constexpr std::uint32_t kRate = 48000;
  constexpr ext_ts_t kPtime = 960;
  constexpr mono_ns_t kRender = 5 * kMs;
  PlayoutConfig pc_cfg = opt.playout;
  pc_cfg.clock_rate = kRate;
  PlayoutController pc(pc_cfg);
  pc.set_device_skew(opt.device_skew);
  JitterBuffer jb(sim_jitter_buffer_config(kRate, kPtime));
  FaultConfig fc;
  fc.seed = opt.seed;
  fc.jitter = uniform_ms(opt.jitter_ms);
  FaultInjector inj(fc);
  r.true_drift_ppm = ((1.0 + opt.sender_skew) / (1.0 + opt.device_skew) - 1.0) * 1e6;

  const double send_interval = static_cast<double>(kPtimeNs) / (1.0 + opt.sender_skew);
  auto send_time = [&](ext_ts_t ts) { return static_cast<double>(ts / kPtime) * send_interval; };
  const auto end_ns = static_cast<mono_ns_t>(opt.seconds * 1e9);
  const auto settle_ns = static_cast<mono_ns_t>(opt.settle_s * 1e9);

  // Pending arrivals (jitter reorders them): min-heap on arrival time.
  struct Arrival {
    mono_ns_t at;
    ext_seq_t seq;
    bool operator>(const Arrival& o) const { return at > o.at; }
  };
  std::priority_queue<Arrival, std::vector<Arrival>, std::greater<>> heap;
  ext_seq_t next_send = 0;
  auto schedule_until = [&](mono_ns_t t) {
    while (static_cast<mono_ns_t>(static_cast<double>(next_send) * send_interval) <= t) {
      const auto sent = static_cast<mono_ns_t>(static_cast<double>(next_send) * send_interval);
      heap.push({sent + kBaseDelayNs + inj.next().delay_ns, next_send});
      ++next_send;
    }
  };

  // Output: the device consumes (1 + device_skew) s of audio per real second from t0.
  const mono_ns_t t0 = kBaseDelayNs + pc.target_ns(kPtime);
  double written = 0;  // ns of device time produced
  auto needed_at = [&]() { return t0 + static_cast<mono_ns_t>(written / (1.0 + opt.device_skew)); };
  auto horizon = [&](mono_ns_t now) { return playout_horizon(jb, pc, needed_at() - now); };

  double win_sum = 0, err_sum = 0;
  long win_n = 0, err_n = 0;
  mono_ns_t win_end = 1'000 * kMs;
  mono_ns_t last_bad_s = 0;
  double last_speed = 1.0;
  bool have_delay = false;
  const std::uint8_t byte = 0;

  auto close_window = [&](mono_ns_t now) {
    if (win_n > 0) {
      const double m = win_sum / static_cast<double>(win_n) / 1e6;
      if (std::abs(m) > 1.0) last_bad_s = now;
      if (now > settle_ns) {
        r.max_delay_error_ms = std::max(r.max_delay_error_ms, std::abs(m));
        const double de = std::abs(pc.drift() * 1e6 - r.true_drift_ppm);
        r.max_drift_error_ppm = std::max(r.max_drift_error_ppm, de);
      }
    }
    win_sum = 0;
    win_n = 0;
  };

  auto render = [&](mono_ns_t now) {
    for (;;) {
      const mono_ns_t need = needed_at();
      const PlayoutStep step = next_playout_step(jb, pc, now, need - now);  // Source's step
      const mono_ns_t d = step.delay_ns;
      const auto& a = step.action;
      using K = JitterBuffer::Action::Kind;
      if (a.kind == K::wait) return;
      if (a.kind == K::decode) {
        const double s = pc.update_speed(now, d, kPtime);
        r.max_speed_step = std::max(r.max_speed_step, std::abs(s - last_speed));
        last_speed = s;
        // True delay: when this packet's audio plays against when it could have arrived at best.
        const double true_delay = static_cast<double>(need) -
                                  (send_time(a.packet->ts) + static_cast<double>(kBaseDelayNs));
        const double e = true_delay - static_cast<double>(pc.target_ns(kPtime));
        win_sum += e;
        ++win_n;
        if (need >= settle_ns) {
          err_sum += e;
          ++err_n;
          const double ms = true_delay / 1e6;
          if (!have_delay) r.min_delay_ms = r.max_delay_ms = ms;
          have_delay = true;
          r.min_delay_ms = std::min(r.min_delay_ms, ms);
          r.max_delay_ms = std::max(r.max_delay_ms, ms);
        }
        written += static_cast<double>(frames_to_ns(kPtime, kRate)) / s;
        jb.played(a, kPtime);
        continue;
      }
      const mono_ns_t span = frames_to_ns(a.ticks, kRate);
      if (a.kind == K::conceal || a.kind == K::expand) {
        if (a.kind == K::expand) pc.count_expansion();
        if (need >= settle_ns) ++r.concealments;
        written += static_cast<double>(span);
      } else {  // gap: none here (nothing is lost), but keep the model complete
        written += static_cast<double>(pc.adjust_gap(span, d, kPtime));
      }
      jb.played(a, a.ticks);
    }
  };

  for (mono_ns_t now = 0; now <= end_ns; now += kRender) {
    // The device would run dry: the audio produced ends more than one render interval (the
    // render lead Source keeps) before now.
    if (now >= settle_ns && needed_at() < now - kRender) ++r.underruns;
    schedule_until(now);
    while (!heap.empty() && heap.top().at <= now) {
      const Arrival ar = heap.top();
      heap.pop();
      ++r.packets;
      const ext_ts_t ts = ar.seq * kPtime;
      const InsertResult res = jb.insert(ar.seq, ts, false, {&byte, 1}, ar.at, horizon(ar.at));
      if (res == InsertResult::stored || res == InsertResult::late) pc.on_packet(ts, ar.at, kPtime);
      render(ar.at);
    }
    render(now);
    if (now >= win_end) {
      close_window(now);
      win_end += 1'000 * kMs;
    }
  }
  r.late = jb.counters().late;
  r.mean_delay_error_ms = err_n ? err_sum / static_cast<double>(err_n) / 1e6 : 0;
  r.converged_after_s = static_cast<double>(last_bad_s) / 1e9;
  r.drift_ppm = pc.drift() * 1e6;
  return r;
}

}  // namespace rtpnode::sim
