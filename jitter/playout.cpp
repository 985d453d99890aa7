#include "jitter/playout.hpp"

#include <algorithm>
#include <cmath>
#include <cstdlib>

namespace rtpnode {

namespace {
DelayEstimatorConfig with_rate(DelayEstimatorConfig c, std::uint32_t rate) {
  c.clock_rate = rate;
  return c;
}
DriftEstimatorConfig with_rate(DriftEstimatorConfig c, std::uint32_t rate) {
  c.clock_rate = rate;
  return c;
}
}  // namespace

PlayoutController::PlayoutController(const PlayoutConfig& cfg)
    : cfg_(cfg),
      est_(with_rate(cfg.estimator, cfg.clock_rate)),
      drift_(with_rate(cfg.drift, cfg.clock_rate)) {}

void PlayoutController::on_packet(ext_ts_t ts, mono_ns_t arrival_ns, ext_ts_t ptime_ticks) {
  drift_.update(ts, arrival_ns);
  if (cfg_.drift_compensation && drift_.valid()) est_.set_transit_slope(drift_.transit_slope());
  est_.update(ts, arrival_ns, ptime_ticks);
}

void PlayoutController::reset() {
  est_.reset();
  drift_.reset();
  integral_ = 0;
}

double PlayoutController::measured_drift() const noexcept {
  if (!cfg_.drift_compensation || !drift_.valid()) return 0;
  return (1.0 + drift_.skew()) / (1.0 + device_skew_) - 1.0;
}

double PlayoutController::drift() const noexcept {
  return std::clamp(measured_drift(), -cfg_.max_drift, cfg_.max_drift);
}

bool PlayoutController::at_limit() const noexcept {
  return cfg_.drift_compensation &&
         (std::abs(integral_) >= cfg_.max_integral || std::abs(drift()) >= cfg_.max_drift);
}

double PlayoutController::update_speed(mono_ns_t now_ns, mono_ns_t delay_ns,
                                       ext_ts_t ptime_ticks) noexcept {
  return close_error(now_ns, delay_ns - target_ns(ptime_ticks), cfg_.speed_gain_per_s);
}

double PlayoutController::update_speed_on_timeline(mono_ns_t now_ns, mono_ns_t late_ns) noexcept {
  return close_error(now_ns, late_ns, cfg_.sync_gain_per_s);
}

double PlayoutController::close_error(mono_ns_t now_ns, mono_ns_t error_ns, double gain) noexcept {
  double dt = 0;
  if (have_speed_time_)
    dt = std::clamp(static_cast<double>(now_ns - last_speed_ns_) * 1e-9, 0.0, 1.0);
  have_speed_time_ = true;
  last_speed_ns_ = now_ns;
  double want = 1.0;
  if (est_.valid() && (cfg_.adaptive || cfg_.drift_compensation)) {
    const double e = static_cast<double>(error_ns) * 1e-9;
    const double p = gain * e;
    if (cfg_.drift_compensation && std::abs(error_ns) < cfg_.integrate_band_ns &&
        std::fabs(p + integral_) < cfg_.max_speed_offset)
      integral_ = std::clamp(integral_ + cfg_.integral_gain_per_s2 * e * dt, -cfg_.max_integral,
                             cfg_.max_integral);
    const double u = p + (cfg_.drift_compensation ? integral_ : 0.0);
    want = 1.0 + drift() + std::clamp(u, -cfg_.max_speed_offset, cfg_.max_speed_offset);
  }
  const double step = cfg_.max_speed_slew_per_s * dt;
  speed_ = std::clamp(want, speed_ - step, speed_ + step);
  return speed_;
}

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
  return cursor_ts +
         std::max<ext_ts_t>(1, rescale_floor(-ahead_ns, 1'000'000'000, cfg_.clock_rate));
}

bool PlayoutController::may_expand(mono_ns_t delay_ns, ext_ts_t ptime_ticks) const noexcept {
  return cfg_.adaptive && est_.valid() && delay_ns + ts_to_ns(ptime_ticks) <= cfg_.max_delay_ns;
}

mono_ns_t PlayoutController::adjust_gap(mono_ns_t gap_ns, mono_ns_t delay_ns,
                                        ext_ts_t ptime_ticks) {
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
