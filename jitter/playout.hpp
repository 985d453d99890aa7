// Playout control for one source: the target delay (from DelayEstimator), the current playout
// delay, and how the difference is closed without audible jumps. Pure logic: the caller passes
// time and the amount of audio it has queued; rtpnode's Source and the trace harness (tools/
// rtpjbsim) drive the same code.
//
// Playout delay. The caller renders audio ahead of its output; `ahead_ns` is how much audio is
// queued beyond the point where new audio is needed (for Source: the ring's content past the
// render lead). The audio of the jitter buffer's cursor (RTP time `cursor_ts`) is therefore needed
// at H = now + ahead_ns, and
//   delay = H - ts_ns(cursor_ts) - floor
// is the largest relative delay a packet may have and still play (floor: DelayEstimator). It only
// changes when the output is stretched or squeezed, never by waiting.
//
// Closing delay - target (error e), in order of preference (why: no jump inside sound):
//  1. Gaps (DTX, comfort noise, sender pauses): the gap is shortened or lengthened by e at once,
//     up to its length. Silence absorbs any change inaudibly; talkspurt starts follow gaps.
//  2. Spikes: a packet missing at its deadline with nothing later stored may be late (a delay
//     spike, an outage) or lost. The jitter buffer then `expand`s in short steps: concealment is
//     inserted without consuming RTP time, so a late packet still plays and the delay has risen
//     by exactly the spike (the fast rise: no packet is lost to a spike, up to max_delay). If a
//     later packet comes instead, the expansion is credited to the lost span and the delay is
//     back where it was.
//  3. Otherwise the playback speed of the source is trimmed through the resampler (speed > 1
//     consumes RTP time faster than real time: the delay falls):
//       speed = 1 + drift + clamp(Kp * e + I, -max_speed_offset, +max_speed_offset)
//       I    += Ki * e * dt   (only while |e| < integrate_band and the clamp is not reached;
//                             |I| <= max_integral: anti-windup)
//     then slew-limited: |speed change| <= max_speed_slew_per_s * dt, so the ratio never steps.
//     `drift` is the feed-forward of clock drift (issue #5): the sender's clock rate against the
//     device's, (1 + s) / (1 + d) - 1, with s from DriftEstimator (arrival times, fed by
//     on_packet) and d the device clock's skew against the monotonic clock (set_device_skew, from
//     DeviceClock). It keeps the buffer level constant by itself; the PI loop on the delay error
//     closes target changes and whatever the estimate misses. Gains: Kp = 0.5/s: an error above
//     20 ms closes at the 1 % limit (10 ms per second), smaller ones with a 2 s time constant.
//     Ki = 0.02/s^2: with Kp a loop of natural frequency 0.14 rad/s, damping 1.8 (no overshoot);
//     before the drift estimate exists (first 5 s) it removes the P-only offset of
//     skew / Kp (2 ms at 1000 ppm) within ~30 s. max_integral 0.2 %: the integral only corrects,
//     the estimate carries the drift. 1 % of speed is 17 cents of pitch at most, heard only on
//     long pure tones, and only while a large change is being made; drift correction itself is
//     under 0.1 % (1000 ppm, 1.7 cents). Time-stretching (WSOLA) keeps pitch but adds 20-100 ms
//     of analysis latency and artefacts on music; rate trimming is transparent at the small
//     offsets steady state needs.
//
// Fixed mode (`adaptive` false): the target is the configured delay and nothing expands. With
// drift compensation (the default) the speed loop above holds the delay at that target (so
// frames land within a fraction of a frame of where the first packet's anchor put them, however
// the clocks drift); without it the speed stays 1 and frames land exactly where the anchor puts
// them (bit-exact passthrough when the sender shares the device's clock, e.g. PTP-locked).
//
// Thread: one owner (the loop thread). No allocation after construction.
#pragma once

#include <cstdint>

#include "jitter/delay_estimator.hpp"
#include "jitter/drift_estimator.hpp"

namespace rtpnode {

/// Operating points, chosen with the trace harness (tools/rtpjbsim; figures in the #3 note):
/// speech keeps late loss <= 1 %, music <= 0.1 %, on every synthetic trace at the default seed.
/// Music also trims the delay at most 0.1 % off the drift correction (1.7 cents, issue #18): a
/// 1 % trim (17 cents) is heard on sustained notes; delay changes then take 10x longer, and
/// gaps (silence) still absorb any change at once.
struct PlayoutProfile {
  double quantile;
  mono_ns_t memory_ns;
  double max_speed_offset = 0.01;  ///< PlayoutConfig::max_speed_offset
};
inline constexpr PlayoutProfile kSpeechProfile{0.99, 20'000'000'000, 0.01};
inline constexpr PlayoutProfile kMusicProfile{0.9993, 120'000'000'000, 0.001};

struct PlayoutConfig {
  std::uint32_t clock_rate = 8000;  ///< RTP ticks per second, > 0
  bool adaptive = true;             ///< false: fixed delay (`--latency DURATION`)
  /// Fixed mode: the delay. Adaptive: the delay used before the first estimate. ns, 0..10 s.
  /// Adaptive default 60 ms: NetEq starts at 80 ms; we start lower and let spikes expand.
  mono_ns_t start_delay_ns = 60'000'000;
  mono_ns_t min_delay_ns = 0;              ///< --min-latency: floor of the target, ns
  mono_ns_t max_delay_ns = 1'000'000'000;  ///< --max-latency: ceiling of target and expansion, ns
  /// Packets of margin above the quantile. 0 by default: a loss whose successor is not yet here
  /// at its deadline is expanded, and the expansion is credited to the lost span as soon as a
  /// later packet comes (JitterBuffer), so no margin is needed to tell loss from a spike; the
  /// trace harness measured +20 ms of mean delay for a margin of one 20 ms packet and no gain
  /// in late loss. 1 when the decoder recovers losses from the next packet (Opus in-band FEC
  /// needs packet n+1 at the deadline of n).
  int margin_packets = 0;
  double speed_gain_per_s = 0.5;  ///< Kp: speed offset per second of delay error (1/s)
  /// Kp of a source held on the NTP timeline (update_speed_on_timeline), 1/s. Its errors are
  /// small (beyond 20 ms the source is placed again), so a stiffer loop costs no audible speed
  /// change: 2/s closes an error with a 0.5 s time constant (issue #20; 1 ms of error is a
  /// 0.2 % trim, 3.5 cents) and leaves skew / 2 of error for a drift estimate off by `skew`
  /// (0.25 frame at 48 kHz for 10 ppm).
  double sync_gain_per_s = 2.0;
  double max_speed_offset = 0.01;  ///< |Kp e + I| limit: 1 % = 10 ms of delay per second
  /// Clock drift compensation (--drift on|off): drift feed-forward and the integral term, in
  /// adaptive and fixed mode. Off: adaptive mode trims with Kp only; fixed mode plays at speed 1.
  bool drift_compensation = true;
  double integral_gain_per_s2 = 0.005;  ///< Ki (1/s^2), see above
  double max_integral = 0.002;          ///< |I| limit (anti-windup): 2000 ppm
  /// I integrates only while |e| < 3 ms. Drift leaves at most skew / Kp of error (2 ms at
  /// 1000 ppm) before the estimate exists and microseconds after; larger errors are target moves
  /// and expansions (5 ms steps, credited back), which are Kp's job and would bias the integral.
  mono_ns_t integrate_band_ns = 1'000'000;
  double max_drift = 0.005;  ///< |drift feed-forward| limit: 5000 ppm (crystals are
                             ///< within +-100 ppm; more is a broken clock)
  /// |d speed / dt| limit: 5 %/s, i.e. at most 1000 ppm (1.7 cents) between 20 ms packets, and
  /// 0.2 s to reach the 1 % trim. Slower limits cost delay after every expansion (harness: 1 %/s
  /// raised the mean delay on the loss traces by 2 %, 5 %/s by 1 %).
  double max_speed_slew_per_s = 0.05;
  DelayEstimatorConfig estimator;  ///< its clock_rate is set from clock_rate
  DriftEstimatorConfig drift;      ///< its clock_rate is set from clock_rate
};

/// Counters of the delay adjustments made (monotonic).
struct PlayoutCounters {
  std::uint64_t expansions = 0;       ///< expand steps (delay raised by concealment)
  std::uint64_t gap_adjustments = 0;  ///< gaps shortened or lengthened
  mono_ns_t gap_adjusted_ns = 0;      ///< sum of |change| made in gaps
};

class PlayoutController {
 public:
  explicit PlayoutController(const PlayoutConfig& cfg);

  /// Thread: owner. Feeds one arrived packet (any order, duplicates excluded).
  void on_packet(ext_ts_t ts, mono_ns_t arrival_ns, ext_ts_t ptime_ticks);
  /// Thread: owner. Sender restart: forget the estimate.
  void reset();

  /// Target playout delay, ns: quantile + margin_packets * ptime, clamped to [min, max]
  /// (adaptive), or the fixed delay.
  [[nodiscard]] mono_ns_t target_ns(ext_ts_t ptime_ticks) const noexcept;
  /// Current playout delay, ns (header comment). `needed_at_ns` = now + ahead.
  [[nodiscard]] mono_ns_t delay_ns(mono_ns_t needed_at_ns, ext_ts_t cursor_ts) const noexcept;
  /// The jitter buffer's horizon (JitterBuffer::next) for a cursor with `ahead_ns` of audio
  /// queued past the point where new audio is needed: the cursor's deadline has come exactly
  /// when ahead_ns <= 0.
  [[nodiscard]] ext_ts_t horizon_ts(ext_ts_t cursor_ts, mono_ns_t ahead_ns) const noexcept;
  /// Whether the jitter buffer may expand now (adaptive and the delay stays <= max_delay).
  [[nodiscard]] bool may_expand(mono_ns_t delay_ns, ext_ts_t ptime_ticks) const noexcept;
  /// Thread: owner. The speed loop (header comment) at loop time `now_ns` with the current
  /// playout delay: updates the integral and returns the playback speed for audio decoded now
  /// (1 = real time; within 1 +- (max_drift + max_speed_offset)).
  double update_speed(mono_ns_t now_ns, mono_ns_t delay_ns, ext_ts_t ptime_ticks) noexcept;
  /// Thread: owner. The speed loop of a source held on the NTP timeline: the same loop on the
  /// placement error `late_ns` (how much later than the timeline says the source plays; > 0:
  /// speed up) with Kp = sync_gain_per_s.
  double update_speed_on_timeline(mono_ns_t now_ns, mono_ns_t late_ns) noexcept;
  /// The speed update_speed last returned (1 before the first call).
  [[nodiscard]] double speed() const noexcept { return speed_; }
  /// Thread: owner. The device clock's skew d against the monotonic clock (device rate /
  /// nominal - 1), from DeviceClock::skew(). 0 = the device runs at the monotonic clock's pace.
  void set_device_skew(double d) noexcept { device_skew_ = d; }
  /// Clock drift feed-forward: sender clock against the device clock, (1 + s) / (1 + d) - 1
  /// (1e-6 = 1 ppm; > 0: the sender is fast and the buffer would fill), clamped to
  /// +-max_drift. 0 until the drift estimate is valid or with drift compensation off.
  [[nodiscard]] double drift() const noexcept;
  /// The same sender/device drift before the clamp: what the clocks do, also beyond what is
  /// corrected. 0 until the estimate is valid or with drift compensation off.
  [[nodiscard]] double measured_drift() const noexcept;
  /// True while drift compensation is at one of its limits: the drift feed-forward clamped at
  /// max_drift (a sender skew beyond what it corrects) or the integral at max_integral.
  [[nodiscard]] bool at_limit() const noexcept;
  /// The integral term I (fraction, 1e-6 = 1 ppm).
  [[nodiscard]] double integral() const noexcept { return integral_; }
  [[nodiscard]] const DriftEstimator& drift_estimator() const noexcept { return drift_; }
  /// Length to play for a gap of `gap_ns`: gap - error, within [0, 2 * gap]. Counts it.
  [[nodiscard]] mono_ns_t adjust_gap(mono_ns_t gap_ns, mono_ns_t delay_ns, ext_ts_t ptime_ticks);
  void count_expansion() noexcept { ++counters_.expansions; }
  /// Thread: owner. New bounds of the target delay (--min-latency, --max-latency), ns.
  void set_bounds(mono_ns_t min_ns, mono_ns_t max_ns) noexcept {
    cfg_.min_delay_ns = min_ns;
    cfg_.max_delay_ns = max_ns;
  }
  /// Thread: owner. Changes the margin (e.g. once the stream turns out to carry Opus FEC).
  void set_margin_packets(int packets) noexcept { cfg_.margin_packets = packets; }
  /// Thread: owner. The sender's timeline jumped (restart): forget the floor, keep the
  /// histogram, which describes the network, not the sender.
  void rebase() {
    est_.rebase();
    drift_.rebase();
  }

  [[nodiscard]] const DelayEstimator& estimator() const noexcept { return est_; }

 private:
  double close_error(mono_ns_t now_ns, mono_ns_t error_ns, double gain) noexcept;

 public:
  [[nodiscard]] const PlayoutCounters& counters() const noexcept { return counters_; }
  [[nodiscard]] const PlayoutConfig& config() const noexcept { return cfg_; }
  [[nodiscard]] mono_ns_t ts_to_ns(ext_ts_t ts) const noexcept { return est_.ts_to_ns(ts); }

 private:
  PlayoutConfig cfg_;
  DelayEstimator est_;
  DriftEstimator drift_;
  PlayoutCounters counters_;
  double device_skew_ = 0;
  double integral_ = 0;
  double speed_ = 1.0;
  bool have_speed_time_ = false;
  mono_ns_t last_speed_ns_ = 0;
};

}  // namespace rtpnode
