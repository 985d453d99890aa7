#include "jitter/playout.hpp"

#include <algorithm>
#include <cstdlib>

namespace rtpnode {

namespace {
DelayEstimatorConfig with_rate(DelayEstimatorConfig c, std::uint32_t rate) {
  c.clock_rate = rate;
  return c;
}
}  // namespace

PlayoutController::PlayoutController(const PlayoutConfig& cfg)
    : cfg_(cfg), est_(with_rate(cfg.estimator, cfg.clock_rate)) {}

void PlayoutController::on_packet(ext_ts_t ts, mono_ns_t arrival_ns, ext_ts_t ptime_ticks) {
  est_.update(ts, arrival_ns, ptime_ticks);
}

void PlayoutController::reset() { est_.reset(); }

mono_ns_t PlayoutController::target_ns(ext_ts_t ptime_ticks) const noexcept {
  if (!cfg_.adaptive) return cfg_.start_delay_ns;
  if (!est_.valid()) return std::clamp(cfg_.start_delay_ns, cfg_.min_delay_ns, cfg_.max_delay_ns);
  const mono_ns_t t = est_.quantile_ns() + cfg_.margin_packets * ts_to_ns(ptime_ticks);
  return std::clamp(t, cfg_.min_delay_ns, cfg_.max_delay_ns);
}

mono_ns_t PlayoutController::delay_ns(mono_ns_t needed_at_ns, ext_ts_t cursor_ts) const noexcept {
  return needed_at_ns - ts_to_ns(cursor_ts) - est_.floor_ns();
}

ext_ts_t PlayoutController::horizon_ts(ext_ts_t cursor_ts, mono_ns_t ahead_ns) const noexcept {
  if (ahead_ns > 0) return cursor_ts - rescale_floor(ahead_ns, 1'000'000'000, cfg_.clock_rate) - 1;
  return cursor_ts + std::max<ext_ts_t>(1, rescale_floor(-ahead_ns, 1'000'000'000, cfg_.clock_rate));
}

bool PlayoutController::may_expand(mono_ns_t delay_ns, ext_ts_t ptime_ticks) const noexcept {
  return cfg_.adaptive && est_.valid() && delay_ns + ts_to_ns(ptime_ticks) <= cfg_.max_delay_ns;
}

double PlayoutController::speed(mono_ns_t delay_ns, ext_ts_t ptime_ticks) const noexcept {
  if (!cfg_.adaptive || !est_.valid()) return 1.0;
  const double error_s = static_cast<double>(delay_ns - target_ns(ptime_ticks)) * 1e-9;
  return 1.0 + std::clamp(cfg_.speed_gain_per_s * error_s, -cfg_.max_speed_offset, cfg_.max_speed_offset);
}

mono_ns_t PlayoutController::adjust_gap(mono_ns_t gap_ns, mono_ns_t delay_ns, ext_ts_t ptime_ticks) {
  if (!cfg_.adaptive || !est_.valid() || gap_ns <= 0) return gap_ns;
  const mono_ns_t error = delay_ns - target_ns(ptime_ticks);
  const mono_ns_t change = std::clamp(error, -gap_ns, gap_ns);
  if (change != 0) {
    ++counters_.gap_adjustments;
    counters_.gap_adjusted_ns += std::abs(change);
  }
  return gap_ns - change;
}

}  // namespace rtpnode
