// Delay estimation for the adaptive jitter buffer, in the spirit of WebRTC NetEq's delay manager
// (modules/audio_coding/neteq/{packet_arrival_history,delay_manager,histogram}.cc), made
// music-grade: 1 ms buckets instead of 20 ms, a per-packet late-loss budget, and a floor that
// follows route changes at once.
//
// Per packet i with extended RTP timestamp ts_i (clock rate R) arriving at a_i:
//   transit_i  = a_i - ts_i / R                         (ns; sender and receiver clocks unrelated)
//   floor      = min transit over the packets whose RTP time lies in the last `floor_window`,
//                each projected to the newest packet's RTP time along the sender's clock drift
//                (set_transit_slope, from DriftEstimator): a sliding minimum of drift-corrected
//                transit. Without the projection a sender slower than us (transit rising) would
//                leave the floor `floor_window * drift` behind (2 ms at 1000 ppm) and raise every
//                relative delay by that much.
//   relative_i = transit_i - floor                      (>= 0: how much later than the fastest)
// A packet is in time iff relative_i <= the playout delay d (see playout.hpp): d is measured from
// the same floor. The histogram of relative_i, with exponential forgetting of time constant
// `memory`, gives the target delay:
//   target = Q(quantile) + margin,  clamped to [min_delay, max_delay]
// where Q is the smallest bucket upper edge with at most (1 - quantile) of the mass above it and
// the margin is the caller's (playout.hpp: none, or one packet with Opus FEC, which needs the next
// packet at the deadline).
//
// Why these choices:
//  - Per-packet entries, not NetEq's max per 500 ms interval: the late-loss budget is per packet
//    (1 % speech, 0.1 % music), so the quantile is taken over packets directly.
//  - Loss does not enter (only arrivals are measured), and a reordered packet enters with its true
//    lateness only (never by sequence distance), so neither inflates the estimate.
//  - When the floor moves by a small amount the histogram is shifted by the same amount so its
//    entries keep their meaning (transit above the new floor). When the floor falls by more than
//    `route_change` it is a route change (e.g. a -100 ms step): the histogram keeps its shape
//    relative to the new floor, so the absolute target falls with the floor at once.
//  - When the floor rises (a +100 ms step seen for `floor_window`), the histogram shifts down too,
//    so the transition packets that were 100 ms above the old floor do not keep the target 100 ms
//    too high afterwards.
//  - RFC 3550 §6.4.1 interarrival jitter is computed alongside, for reporting only.
//
// Thread: one owner (the loop thread). No allocation after construction.
#pragma once

#include <cstdint>
#include <limits>
#include <vector>

#include "rtp/units.hpp"

namespace rtpnode {

struct DelayEstimatorConfig {
  std::uint32_t clock_rate = 8000;  ///< RTP ticks per second, > 0
  /// Fraction of packets that may arrive after the target (minus margin): 1 - late-loss budget.
  /// 0.5 .. 0.9999. Default 0.99 (speech, 1 % late loss budget; music profile uses 0.999).
  double quantile = 0.99;
  /// Histogram bucket width, ns. 1 ms: the delay resolution (NetEq uses 20 ms, too coarse for a
  /// LAN node that wants 10-30 ms).
  mono_ns_t bucket_ns = 1'000'000;
  /// Number of buckets: relative delays above buckets * bucket_ns fall in the last one. 2000 = 2 s.
  int buckets = 2000;
  /// Forgetting time constant of the histogram, ns of RTP time. 20 s: long enough that the 1 %
  /// tail rests on ~10 packets of 20 ms, short enough that the target falls within a minute
  /// after the jitter drops (NetEq's 0.983 per 500 ms is ~29 s).
  mono_ns_t memory_ns = 20'000'000'000;
  /// Window of the sliding minimum of transit (the floor), ns of RTP time. 2 s as NetEq's
  /// packet arrival history: drift of 1000 ppm moves the floor 2 ms within it.
  mono_ns_t floor_window_ns = 2'000'000'000;
  /// A fall of the floor larger than this is a route change (see above). 20 ms.
  mono_ns_t route_change_ns = 20'000'000;
};

class DelayEstimator {
 public:
  explicit DelayEstimator(const DelayEstimatorConfig& cfg);

  /// Thread: owner. Records one packet (any order). `weight_ticks` is the packet duration in RTP
  /// ticks: it sets how much of the histogram this packet replaces (forgetting per RTP time, so
  /// the memory does not depend on the packet duration).
  void update(ext_ts_t ts, mono_ns_t arrival_ns, ext_ts_t weight_ticks);

  /// Thread: owner. Forgets everything.
  void reset();
  /// Thread: owner. Slope of the transit floor against RTP time (DriftEstimator::transit_slope,
  /// -s / (1 + s) for a sender clock skew s; |slope| <= 0.01). 0 until a drift estimate exists.
  void set_transit_slope(double slope) noexcept { slope_ = slope; }
  /// Thread: owner. Forgets the floor and the transit history but keeps the histogram (the
  /// sender's timeline jumped; the network did not change).
  void rebase();

  [[nodiscard]] bool valid() const noexcept { return have_floor_; }
  /// Current floor (minimum transit), ns. Valid after the first update().
  [[nodiscard]] mono_ns_t floor_ns() const noexcept { return floor_; }
  /// Delay quantile over the floor, ns (bucket upper edge). 0 before any packet.
  [[nodiscard]] mono_ns_t quantile_ns() const noexcept { return quantile_ns_; }
  /// Relative delay of the last packet recorded, ns.
  [[nodiscard]] mono_ns_t last_relative_ns() const noexcept { return last_relative_; }
  /// RFC 3550 §6.4.1 interarrival jitter, ns.
  [[nodiscard]] double jitter_ns() const noexcept { return jitter_ns_; }
  /// ns of RTP time for `ts` ticks.
  [[nodiscard]] mono_ns_t ts_to_ns(ext_ts_t ts) const noexcept {
    return frames_to_ns(ts, cfg_.clock_rate);
  }

 private:
  void shift_histogram(std::int64_t buckets_up);
  void recompute_quantile();
  struct Entry;
  [[nodiscard]] mono_ns_t projected(const Entry& e, mono_ns_t ts_ns) const noexcept;

  struct Entry {
    mono_ns_t ts_ns;
    mono_ns_t transit;
  };

  DelayEstimatorConfig cfg_;
  std::vector<double> hist_;  ///< un-normalised: the newest entry has weight scale_
  double scale_ = 1.0;        ///< weight of the next entry (grows instead of decaying the rest)
  double mass_ = 0.0;         ///< sum of hist_
  /// hist_[top_..] are all zero (an upper bound: one past the highest bucket ever filled since,
  /// moved with the shifts).
  std::size_t top_ = 0;
  // Sliding minimum: monotonic queue (increasing transit) in a fixed ring.
  std::vector<Entry> window_;
  std::size_t head_ = 0, count_ = 0;
  mono_ns_t newest_ts_ns_ = 0;
  mono_ns_t route_change_ts_ns_ =
      std::numeric_limits<mono_ns_t>::min();  ///< packets sent before this are not recorded
  bool have_floor_ = false;
  mono_ns_t floor_ = 0;
  mono_ns_t quantile_ns_ = 0;
  mono_ns_t last_relative_ = 0;
  bool have_transit_ = false;
  mono_ns_t last_transit_ = 0;
  double jitter_ns_ = 0;
  double slope_ = 0;  ///< d floor / d RTP time (drift)
};

}  // namespace rtpnode
