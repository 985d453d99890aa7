// rtpjbsim: the jitter-buffer trace harness (tools/trace_sim.hpp). Runs the adaptive jitter buffer
// over the synthetic traces (or a recorded one) for the speech (eps = 1 %) and music
// (eps = 0.1 %) operating points and prints late loss, delay and the ratios to the hindsight
// oracles.
#include <CLI/CLI.hpp>

#include <cstdio>
#include <iostream>

#include "tools/trace_sim.hpp"

using namespace rtpnode;

namespace {

struct Profile {
  const char* name;
  double epsilon;
  double quantile;
  double memory_s;
};

void print_row(const char* profile, const sim::Trace& t, const sim::SimResult& r) {
  std::printf("%-7s %-22s %6.3f %7.1f %7.1f %7.1f %7.1f %6.2f %7.1f %6.2f %6.2f %6llu", profile,
              t.name.c_str(), r.late_loss * 100, r.mean_delay_ms, r.p95_delay_ms, r.final_delay_ms,
              r.oracle_fixed_ms, r.ratio_fixed, r.oracle_window_ms, r.ratio_window,
              r.conceal_fraction * 100, static_cast<unsigned long long>(r.delay_changes));
  if (r.settle_after_step_s >= 0)
    std::printf("  last late %.2f s, settled %.1f s", r.last_late_after_step_s,
                r.settle_after_step_s);
  if (r.network_lost > 0)
    std::printf("  next packet there at the deadline for %.1f%% of lost packets",
                100.0 * static_cast<double>(r.fec_available) / static_cast<double>(r.network_lost));
  std::printf("\n");
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"rtpjbsim: adaptive jitter buffer against hindsight oracles on arrival traces"};
  std::string trace_file;
  unsigned clock_rate = 48000;
  double seconds = 120;
  std::uint64_t seed = 7;
  bool fec = false;
  int margin = -1;
  std::string drift = "on";
  double ki = -1, slew = -1, device_ppm = 0, drift_jitter_ms = 5;
  bool drift_sim = false;
  double speech_q = kSpeechProfile.quantile, music_q = kMusicProfile.quantile;
  double speech_mem = static_cast<double>(kSpeechProfile.memory_ns) / 1e9;
  double music_mem = static_cast<double>(kMusicProfile.memory_ns) / 1e9;
  app.add_option("--speech-memory", speech_mem, "Histogram memory, s (speech)");
  app.add_option("--music-memory", music_mem, "Histogram memory, s (music)");
  app.add_option(
      "--trace", trace_file,
      "Replay this trace file (rtpsend --trace-out format) instead of the synthetic set");
  app.add_option("--clock-rate", clock_rate, "RTP clock rate of --trace")
      ->check(CLI::Range(1000u, 192000u));
  app.add_option("--seconds", seconds, "Length of each synthetic trace")
      ->check(CLI::Range(10.0, 86400.0 * 7));
  app.add_option("--seed", seed, "Seed of the synthetic traces");
  app.add_option("--speech-quantile", speech_q, "Jitter quantile for the speech profile")
      ->check(CLI::Range(0.5, 0.99999));
  app.add_option("--music-quantile", music_q, "Jitter quantile for the music profile")
      ->check(CLI::Range(0.5, 0.99999));
  app.add_option("--drift", drift, "Drift compensation (feed-forward and integral): on|off")
      ->check(CLI::IsMember({"on", "off"}));
  app.add_option("--slew", slew, "Speed slew limit, 1/s (default: the playout default)");
  app.add_flag("--drift-sim", drift_sim,
               "Clock drift simulation at sender skews -1000..+1000 ppm instead of the traces");
  app.add_option("--device-ppm", device_ppm, "Drift simulation: device clock skew, ppm");
  app.add_option("--drift-jitter", drift_jitter_ms,
                 "Drift simulation: uniform network jitter 0..MS");
  app.add_option("--ki", ki,
                 "Integral gain of the speed loop, 1/s^2 (default: the playout default)");
  app.add_flag("--fec", fec, "Opus FEC: one more packet of margin");
  app.add_option("--margin", margin,
                 "Packets of margin above the quantile (default: the playout default)")
      ->check(CLI::Range(0, 4));
  CLI11_PARSE(app, argc, argv);

  std::vector<sim::Trace> traces;
  if (drift_sim) {
    // Clock drift (issue #5): one long run per skew.
    for (double ppm : {-1000.0, -500.0, -100.0, 0.0, 100.0, 500.0, 1000.0}) {
      sim::DriftSimOptions o;
      o.seconds = seconds;
      o.sender_skew = ppm * 1e-6;
      o.device_skew = device_ppm * 1e-6;
      o.jitter_ms = drift_jitter_ms;
      o.seed = seed;
      if (ki >= 0) o.playout.integral_gain_per_s2 = ki;
      if (slew >= 0) o.playout.max_speed_slew_per_s = slew;
      o.playout.drift_compensation = drift == "on";
      const sim::DriftSimResult r = sim::simulate_drift(o);
      std::printf(
          "skew %+7.0f ppm  underruns %llu  concealments %llu  late %llu  delay-target: mean %+.3f "
          "ms, max |1 s mean| %.3f ms"
          "  (true delay %.1f..%.1f ms)  converged %.1f s  drift %+.2f ppm (true %+.2f, max err "
          "%.2f)"
          "  max speed step %.0f ppm\n",
          ppm, static_cast<unsigned long long>(r.underruns),
          static_cast<unsigned long long>(r.concealments), static_cast<unsigned long long>(r.late),
          r.mean_delay_error_ms, r.max_delay_error_ms, r.min_delay_ms, r.max_delay_ms,
          r.converged_after_s, r.drift_ppm, r.true_drift_ppm, r.max_drift_error_ppm,
          r.max_speed_step * 1e6);
    }
    return 0;
  }
  if (!trace_file.empty()) {
    std::string error;
    auto t = sim::read_trace(trace_file, clock_rate, error);
    if (!t) {
      std::cerr << "rtpjbsim: " << error << "\n";
      return 1;
    }
    traces.push_back(std::move(*t));
  } else {
    traces = {sim::make_clean(seconds),
              sim::make_uniform(seconds, 40, seed),
              sim::make_uniform(seconds, 100, seed),
              sim::make_pareto(seconds, 5, 2.5, seed),
              sim::make_gilbert(seconds, 0.05, 3, seed),
              sim::make_loss(seconds, 0.05, seed),
              sim::make_wifi(seconds, seed),
              sim::make_reorder(seconds, 0.02, seed),
              sim::make_step(seconds, 100, seed),
              sim::make_step(seconds, -100, seed)};
  }
  const Profile profiles[] = {{"speech", 0.01, speech_q, speech_mem},
                              {"music", 0.001, music_q, music_mem}};
  std::printf("%-7s %-22s %6s %7s %7s %7s %7s %6s %7s %6s %6s %6s\n", "profile", "trace", "late%",
              "mean", "p95", "final", "fixed*", "ratio", "window*", "ratio", "conc%", "chg");
  for (const auto& prof : profiles) {
    for (const auto& t : traces) {
      sim::SimOptions o;
      o.epsilon = prof.epsilon;
      o.playout.estimator.quantile = prof.quantile;
      o.playout.estimator.memory_ns = static_cast<mono_ns_t>(prof.memory_s * 1e9);
      if (margin >= 0) o.playout.margin_packets = margin;
      o.playout.margin_packets += fec ? 1 : 0;
      o.playout.drift_compensation = drift == "on";
      if (ki >= 0) o.playout.integral_gain_per_s2 = ki;
      if (slew >= 0) o.playout.max_speed_slew_per_s = slew;
      print_row(prof.name, t, sim::simulate(t, o));
    }
  }
  std::printf(
      "delays in ms from the trace's minimum transit; fixed*/window*: hindsight oracles for the "
      "profile's late-loss budget (1%% speech, 0.1%% music)\n");
  return 0;
}
