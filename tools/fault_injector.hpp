// Seeded network-fault model for rtpsend (reproducible bit for bit for a given seed and
// configuration, on any platform: the generator is splitmix64 and every distribution is derived
// here, not by the standard library's implementation-defined distributions).
//
// Per packet it decides: lost (independent loss, or the simple Gilbert model of burst loss:
// state Bad loses every packet, state Good none; P(G->B) = p, P(B->G) = r, so the mean loss is
// p / (p + r) and the mean burst length 1 / r; Hasslinger & Hohlfeld, MMB 2008), extra network
// delay (jitter: uniform or Pareto), reordered (held back by a fixed extra delay so that the next
// packet overtakes it), duplicated (sent twice).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "rtp/units.hpp"

namespace rtpnode {

struct JitterModel {
  enum class Kind : std::uint8_t { none, uniform, pareto } kind = Kind::none;
  mono_ns_t min_ns = 0;    ///< uniform: lower bound
  mono_ns_t max_ns = 0;    ///< uniform: upper bound
  mono_ns_t scale_ns = 0;  ///< pareto: scale x_m (the minimum delay)
  double shape = 0;        ///< pareto: shape alpha > 0
};

struct FaultConfig {
  std::uint64_t seed = 1;
  double loss = 0;                ///< independent loss probability, 0..1
  std::optional<double> burst_p;  ///< Gilbert P(Good -> Bad), 0..1 (with burst_r)
  std::optional<double> burst_r;  ///< Gilbert P(Bad -> Good), 0 < r <= 1
  JitterModel jitter;
  double reorder = 0;              ///< probability a packet is held back, 0..1
  mono_ns_t reorder_delay_ns = 0;  ///< how long it is held back (rtpsend: 1.5 ptime)
  double duplicate = 0;            ///< probability a packet is sent twice, 0..1
  [[nodiscard]] bool any() const {
    return loss > 0 || burst_p || jitter.kind != JitterModel::Kind::none || reorder > 0 ||
           duplicate > 0;
  }
};

struct PacketFate {
  bool lost = false;
  bool duplicated = false;
  bool reordered = false;
  mono_ns_t delay_ns = 0;  ///< extra delay before sending (jitter + reorder hold-back)
};

struct FaultCounters {
  std::uint64_t packets = 0, lost = 0, duplicated = 0, reordered = 0, delayed = 0;
};

class FaultInjector {
 public:
  explicit FaultInjector(const FaultConfig& cfg) : cfg_(cfg), state_(cfg.seed) {}
  /// The fate of the next packet. Thread: one owner.
  PacketFate next();
  [[nodiscard]] const FaultCounters& counters() const { return counters_; }

  /// Uniform double in [0, 1) from the seeded generator (53 random bits).
  double uniform();

 private:
  std::uint64_t next_u64();
  FaultConfig cfg_;
  std::uint64_t state_;
  bool bad_ = false;  ///< Gilbert state
  FaultCounters counters_;
};

/// Parses a probability: "5%" or "0.05". Errors: nullopt with `error` set.
std::optional<double> parse_probability(std::string_view text, std::string& error);
/// Parses "uniform:MIN-MAX" (durations, e.g. uniform:0-40ms) or "pareto:SCALE,SHAPE"
/// (e.g. pareto:5ms,2.5). Errors: nullopt with `error` set.
std::optional<JitterModel> parse_jitter(std::string_view text, std::string& error);

}  // namespace rtpnode
