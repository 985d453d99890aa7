#include "tools/fault_injector.hpp"

#include <cctype>
#include <charconv>
#include <cmath>

#include "node/config.hpp"

namespace rtpnode {

std::uint64_t FaultInjector::next_u64() {
  // splitmix64 (Steele, Lea, Flood 2014): fully specified, so runs reproduce everywhere.
  std::uint64_t z = (state_ += 0x9e3779b97f4a7c15ull);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}

double FaultInjector::uniform() {
  return static_cast<double>(next_u64() >> 11) * 0x1.0p-53;
}

PacketFate FaultInjector::next() {
  PacketFate f;
  ++counters_.packets;
  // Draw every decision for every packet, so that enabling one fault does not shift the random
  // stream of the others (a trace with --loss and one with --loss --duplicate lose the same
  // packets).
  const double u_loss = uniform(), u_burst = uniform(), u_dup = uniform(), u_reorder = uniform(),
               u_jitter = uniform();
  if (cfg_.burst_p && cfg_.burst_r) {
    bad_ = bad_ ? u_burst >= *cfg_.burst_r : u_burst < *cfg_.burst_p;
    f.lost = bad_;
  }
  f.lost = f.lost || u_loss < cfg_.loss;
  if (f.lost) {
    ++counters_.lost;
    return f;
  }
  f.duplicated = u_dup < cfg_.duplicate;
  f.reordered = u_reorder < cfg_.reorder;
  switch (cfg_.jitter.kind) {
    case JitterModel::Kind::uniform:
      f.delay_ns = cfg_.jitter.min_ns +
                   static_cast<mono_ns_t>(
                       u_jitter * static_cast<double>(cfg_.jitter.max_ns - cfg_.jitter.min_ns));
      break;
    case JitterModel::Kind::pareto:
      // Inverse CDF: x = x_m / U^(1/alpha), U in (0, 1].
      f.delay_ns = static_cast<mono_ns_t>(static_cast<double>(cfg_.jitter.scale_ns) /
                                          std::pow(1.0 - u_jitter, 1.0 / cfg_.jitter.shape));
      break;
    case JitterModel::Kind::none:
      break;
  }
  if (f.reordered) f.delay_ns += cfg_.reorder_delay_ns;
  counters_.duplicated += f.duplicated;
  counters_.reordered += f.reordered;
  counters_.delayed += f.delay_ns > 0;
  return f;
}

std::optional<double> parse_probability(std::string_view text, std::string& error) {
  const bool percent = !text.empty() && text.back() == '%';
  const std::string num(percent ? text.substr(0, text.size() - 1) : text);
  double v = 0;
  auto r = std::from_chars(num.data(), num.data() + num.size(), v);
  if (num.empty() || r.ec != std::errc{} || r.ptr != num.data() + num.size()) {
    error = "bad probability '" + std::string(text) + "' (e.g. 5% or 0.05)";
    return std::nullopt;
  }
  if (percent) v /= 100.0;
  if (v < 0 || v > 1) {
    error = "probability '" + std::string(text) + "' is outside 0..100%";
    return std::nullopt;
  }
  return v;
}

std::optional<JitterModel> parse_jitter(std::string_view text, std::string& error) {
  JitterModel m;
  if (text.rfind("uniform:", 0) == 0) {
    const std::string_view range = text.substr(8);
    const auto dash = range.find('-');
    if (dash == std::string_view::npos) {
      error = "expected uniform:MIN-MAX, e.g. uniform:0-40ms";
      return std::nullopt;
    }
    std::string hi(range.substr(dash + 1));
    std::string lo(range.substr(0, dash));
    // "0-40ms": the unit may be given once, at the end.
    if (!lo.empty() && std::isdigit(static_cast<unsigned char>(lo.back()))) {
      std::size_t u = hi.size();
      while (u > 0 && !std::isdigit(static_cast<unsigned char>(hi[u - 1]))) --u;
      lo += hi.substr(u);
    }
    auto a = parse_duration(lo, error), b = parse_duration(hi, error);
    if (!a || !b || *b < *a) {
      if (a && b) error = "uniform jitter needs MIN <= MAX";
      return std::nullopt;
    }
    m.kind = JitterModel::Kind::uniform;
    m.min_ns = a->count();
    m.max_ns = b->count();
    return m;
  }
  if (text.rfind("pareto:", 0) == 0) {
    const std::string_view args = text.substr(7);
    const auto comma = args.find(',');
    if (comma == std::string_view::npos) {
      error = "expected pareto:SCALE,SHAPE, e.g. pareto:5ms,2.5";
      return std::nullopt;
    }
    auto scale = parse_duration(args.substr(0, comma), error);
    if (!scale) return std::nullopt;
    const std::string shape(args.substr(comma + 1));
    double a = 0;
    auto r = std::from_chars(shape.data(), shape.data() + shape.size(), a);
    if (r.ec != std::errc{} || r.ptr != shape.data() + shape.size() || a <= 0) {
      error = "bad Pareto shape '" + shape + "' (a number > 0)";
      return std::nullopt;
    }
    m.kind = JitterModel::Kind::pareto;
    m.scale_ns = scale->count();
    m.shape = a;
    return m;
  }
  error =
      "unknown jitter model '" + std::string(text) + "' (uniform:MIN-MAX or pareto:SCALE,SHAPE)";
  return std::nullopt;
}

}  // namespace rtpnode
