// Sender clock drift from arrival times: how fast the sender's RTP clock runs against this
// machine's monotonic clock. Choice (issue #5): arrival times, not the buffer level, because the
// estimate is then independent of everything the playout does (expansion, gap changes, target
// moves) and can feed the playout speed forward; the buffer-level PI loop in PlayoutController
// only trims what this misses.
//
// Model. A sender whose clock runs (1 + s) times the nominal rate stamps a packet sent at t with
// RTP time ts_ns = (1 + s) t + c (ns at the nominal clock rate). Its transit
//   transit = arrival - ts_ns = t + network_delay - (1 + s) t - c
// therefore falls by s ns per ns of send time, i.e. its slope against RTP time is
//   b = d transit / d ts_ns = -s / (1 + s)   =>   s = -b / (1 + b).
// Network delay only adds to the transit, so the lower edge of the transit cloud is the clock
// line (Fober, Orlarey, Letz: "Real time clock skew estimation over network delays", 2005; the
// windowed minimum GStreamer's rtpjitterbuffer uses). Per `bin` of RTP time the minimum transit is
// taken and a line is fitted through those minima (LineFit, exponential forgetting `memory`).
//
// Robustness. A bin minimum more than `outlier` from the line is left out (a whole bin inside a
// stall). Three in a row on the same side are a route change (a delay step): the fit restarts
// from them, and the previous estimate stays published until the new fit spans `min_span`.
// Reordered packets never lower a bin's minimum wrongly (they arrive late), and loss only removes
// points. A sender restart (rebase) restarts the fit and keeps the estimate: the sender's clock
// usually is the same crystal.
//
// Precision (LineFit): bin minima on a LAN scatter by ~0.1 ms, giving about 1 ppm at a 60 s
// window; the uniform 0-30 ms jitter of the tests scatters them by ~0.6 ms (6 ppm at 120 s). The
// PI loop absorbs what is left: 10 ppm of error costs 20 us of delay (playout.hpp).
//
// Thread: one owner (the loop thread). No allocation.
#pragma once

#include <cstdint>

#include "jitter/line_fit.hpp"
#include "rtp/units.hpp"

namespace rtpnode {

struct DriftEstimatorConfig {
  std::uint32_t clock_rate = 8000;   ///< RTP ticks per second, > 0
  mono_ns_t bin_ns = 1'000'000'000;  ///< RTP time per minimum-transit point: 1 s (50 packets
                                     ///< of 20 ms: the minimum is the clock line within ~0.1 ms
                                     ///< on a LAN)
  double memory_s = 120.0;           ///< forgetting distance of the fit, s of RTP time. 120 s:
                                     ///< ~1 ppm on a LAN; crystals move over hours, not minutes
  mono_ns_t min_span_ns = 5'000'000'000;  ///< fit span before an estimate is published: 5 s
  mono_ns_t outlier_ns = 20'000'000;  ///< bin minima further from the line: outliers (20 ms, the
                                      ///< route-change threshold of DelayEstimator)
  double max_abs_skew = 0.01;         ///< estimates beyond +-1 % are not clocks: not published
};

class DriftEstimator {
 public:
  explicit DriftEstimator(const DriftEstimatorConfig& cfg);

  /// Thread: owner. Records one arrived packet (any order, duplicates excluded).
  void update(ext_ts_t ts, mono_ns_t arrival_ns) noexcept;
  /// Thread: owner. The sender's timeline jumped: restart the fit, keep the published estimate.
  void rebase() noexcept;
  /// Thread: owner. Forgets everything.
  void reset() noexcept;

  /// True once an estimate has been published.
  [[nodiscard]] bool valid() const noexcept { return valid_; }
  /// Sender clock skew s against the monotonic clock (sender rate / nominal - 1; 1e-6 = 1 ppm).
  /// 0 until valid().
  [[nodiscard]] double skew() const noexcept { return skew_; }
  /// d transit / d RTP time of the clock line (-s / (1 + s)): how the transit floor moves.
  [[nodiscard]] double transit_slope() const noexcept { return -skew_ / (1.0 + skew_); }
  /// Route changes (delay steps) detected.
  [[nodiscard]] std::uint64_t steps() const noexcept { return steps_; }

 private:
  void close_bin() noexcept;

  DriftEstimatorConfig cfg_;
  LineFit fit_;
  bool have_base_ = false;
  mono_ns_t base_ts_ns_ = 0;    ///< RTP time origin of x (s since it)
  mono_ns_t base_transit_ = 0;  ///< transit origin of y
  std::int64_t bin_ = 0;        ///< index of the bin being filled
  bool bin_open_ = false;
  mono_ns_t bin_min_transit_ = 0;
  mono_ns_t bin_min_ts_ns_ = 0;
  // Outliers held back: a run of three on one side is a step.
  double held_x_[3] = {}, held_y_[3] = {};
  int held_ = 0;
  int held_side_ = 0;
  bool valid_ = false;
  double skew_ = 0;
  std::uint64_t steps_ = 0;
};

}  // namespace rtpnode
