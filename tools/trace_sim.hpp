// Trace harness for the adaptive jitter buffer: feeds the real JitterBuffer and
// PlayoutController an arrival trace under a fake clock, plays it out as rtpnode's Source does
// (render every 5 ms, decode as soon as contiguous, decisions at the deadline), and measures
// late loss, playout delay and concealment against two hindsight oracles:
//  - fixed: the smallest constant delay D*(eps) giving <= eps late loss over the whole trace
//    (Moon, Kurose, Towsley, Multimedia Systems 6 (1998): the per-trace optimum for a constant);
//  - windowed: per 10 s window the smallest delay giving <= eps late loss in that window, the
//    sequence then raised to change by at most 1 ms per second (the least envelope that is).
// Delays are measured from the trace's minimum transit (arrival - RTP time): 0 is the fastest
// packet, for the oracles and for us alike.
//
// Trace file format (rtpsend --trace-out): one line per packet, "seq rtp_ts time_ns [fate]"; seq
// and rtp_ts as on the wire (16/32 bits, unwrapped here), time_ns the arrival time (rtpsend writes
// its send time including the injected delay: the arrival time over loopback). Fates "lost",
// "paused" and "dtx" mean nothing arrived; any other fate (or none) is an arrival.
//
// Thread: any; everything is local to the call.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "jitter/playout.hpp"

namespace rtpnode::sim {

struct TracePacket {
  ext_seq_t seq = 0;
  ext_ts_t ts = 0;
  mono_ns_t arrival_ns = 0;
  bool lost = false;  ///< lost in the network: never arrives
};

struct Trace {
  std::string name;
  std::uint32_t clock_rate = 48000;
  ext_ts_t ptime_ticks = 960;
  std::vector<TracePacket> packets;  ///< in sending order
  mono_ns_t step_at_ns = -1;         ///< delay-step traces: when the step happens (RTP time)
};

/// Synthetic traces: 20 ms packets at 48 kHz, `seconds` long, deterministic for a seed.
/// A base network delay of 5 ms is added to every packet.
Trace make_clean(double seconds);
Trace make_uniform(double seconds, double max_jitter_ms, std::uint64_t seed);
/// Pareto heavy tail: extra delay x_m / U^(1/alpha), capped at 1 s.
Trace make_pareto(double seconds, double scale_ms, double shape, std::uint64_t seed);
/// Gilbert-Elliott burst loss (simple Gilbert: Bad loses all) plus uniform 0-10 ms jitter.
Trace make_gilbert(double seconds, double loss, double mean_burst, std::uint64_t seed);
/// Wi-Fi-like: 2-4 ms of exponential jitter, and every 2-5 s a stall of 100-300 ms during which
/// packets queue and are then delivered in a clump 0.2 ms apart.
Trace make_wifi(double seconds, std::uint64_t seed);
/// Reordering: a fraction of packets held back 1.5 packet durations (as rtpsend --reorder),
/// plus uniform 0-5 ms jitter.
Trace make_reorder(double seconds, double fraction, std::uint64_t seed);
/// A network delay step of `step_ms` (+100 or -100) at half time, plus uniform 0-5 ms jitter.
Trace make_step(double seconds, double step_ms, std::uint64_t seed);
/// Random independent loss plus uniform 0-10 ms jitter.
Trace make_loss(double seconds, double loss, std::uint64_t seed);
/// Reads a trace file (format above). Errors: nullopt with `error` set.
std::optional<Trace> read_trace(const std::string& path, std::uint32_t clock_rate,
                                std::string& error);

struct SimOptions {
  PlayoutConfig playout;                     ///< clock_rate is taken from the trace
  mono_ns_t render_interval_ns = 5'000'000;  ///< the loop thread's render timer
  double epsilon = 0.01;                     ///< late-loss budget the oracles are computed for
};

struct SimResult {
  std::uint64_t packets = 0;       ///< packets in the trace
  std::uint64_t network_lost = 0;  ///< never arrived
  std::uint64_t late = 0;          ///< arrived after their deadline (late loss)
  std::uint64_t resyncs = 0;       ///< re-anchors after a run of late packets (as Source does)
  double late_loss = 0;            ///< late / arrived
  double mean_delay_ms = 0;        ///< mean playout delay of played packets (from min transit)
  double p95_delay_ms = 0;
  double final_delay_ms = 0;        ///< mean over the last 10 s
  double conceal_fraction = 0;      ///< concealed (incl. expanded) / played duration
  std::uint64_t delay_changes = 0;  ///< expansions + gap adjustments + speed excursions > 0.1 %
  std::uint64_t losses_at_deadline = 0;  ///< spans concealed as lost
  std::uint64_t fec_available = 0;       ///< of those, how many had the next packet (FEC source)
  double oracle_fixed_ms = 0;            ///< D*(eps)
  double oracle_window_ms = 0;           ///< mean of the windowed oracle
  double ratio_fixed = 0;                ///< mean_delay / oracle_fixed
  double ratio_window = 0;               ///< mean_delay / oracle_window
  double last_late_after_step_s = -1;    ///< step traces: last late packet after the step (s)
  double settle_after_step_s = -1;  ///< step traces: time until the delay stays within 10 ms of
                                    ///< its final value
};

SimResult simulate(const Trace& trace, const SimOptions& opt);

/// Clock drift simulation (issue #5): a sender whose clock runs (1 + sender_skew) times nominal
/// sends 20 ms packets at 48 kHz (RTP time advancing nominally per packet, so packets leave every
/// 20 ms / (1 + skew) of real time), the network adds 5 ms plus uniform jitter, and a device whose
/// clock runs (1 + device_skew) times nominal consumes the output. The real JitterBuffer and
/// PlayoutController run under a fake clock exactly as Source drives them (render every 5 ms;
/// speed applied to the audio produced). Streams packets: O(1) memory, so 24 h run in seconds.
struct DriftSimOptions {
  PlayoutConfig playout;   ///< clock_rate is set to 48000
  double seconds = 600;    ///< simulated playback
  double sender_skew = 0;  ///< e.g. 1000e-6
  double device_skew = 0;  ///< the device's true skew, also given to the controller
                           ///< (as DeviceClock::skew() would measure it)
  double jitter_ms = 5;    ///< uniform 0..jitter_ms network jitter
  std::uint64_t seed = 7;
  double settle_s = 30;  ///< statistics below start after this long
};

struct DriftSimResult {
  std::uint64_t packets = 0;
  std::uint64_t underruns = 0;     ///< render ticks after settle at which the audio
                                   ///< produced ended more than one render interval (the
                                   ///< render lead) in the past: the device would run dry
  std::uint64_t concealments = 0;  ///< concealment/expansion steps after settle (nothing is
                                   ///< lost: a packet past its deadline, i.e. jitter beyond
                                   ///< the target, which #3 expands over)
  std::uint64_t late = 0;          ///< packets dropped late (whole run)
  double max_delay_error_ms = 0;   ///< after settle: max |mean over 1 s of (true delay -
                                   ///< target)|; true delay = play time - (send time + 5 ms)
  double mean_delay_error_ms = 0;  ///< after settle: mean of (true delay - target)
  double min_delay_ms = 0, max_delay_ms = 0;  ///< true delay range after settle
  double converged_after_s = 0;               ///< first time after which every 1 s mean error stays
                                              ///< within 1 ms
  double drift_ppm = 0;                       ///< the controller's final drift estimate
  double true_drift_ppm = 0;                  ///< (1 + sender_skew) / (1 + device_skew) - 1
  double max_drift_error_ppm = 0;  ///< after settle: max |estimate - truth|, sampled each 1 s
  double max_speed_step = 0;       ///< largest change of speed between two packets
};

DriftSimResult simulate_drift(const DriftSimOptions& opt);

}  // namespace rtpnode::sim
