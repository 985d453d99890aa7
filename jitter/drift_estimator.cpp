#include "jitter/drift_estimator.hpp"

#include <cmath>

namespace rtpnode {

DriftEstimator::DriftEstimator(const DriftEstimatorConfig& cfg) : cfg_(cfg), fit_(cfg.memory_s) {
  if (cfg_.bin_ns <= 0) cfg_.bin_ns = 1'000'000'000;
}

void DriftEstimator::reset() noexcept {
  rebase();
  valid_ = false;
  skew_ = 0;
}

void DriftEstimator::rebase() noexcept {
  fit_.reset();
  have_base_ = false;
  bin_open_ = false;
  held_ = 0;
  held_side_ = 0;
}

void DriftEstimator::update(ext_ts_t ts, mono_ns_t arrival_ns) noexcept {
  const mono_ns_t ts_ns = frames_to_ns(ts, cfg_.clock_rate);
  const mono_ns_t transit = arrival_ns - ts_ns;
  if (!have_base_) {
    have_base_ = true;
    base_ts_ns_ = ts_ns;
    base_transit_ = transit;
    bin_ = 0;
  }
  const mono_ns_t rel = ts_ns - base_ts_ns_;
  const std::int64_t bin = rel >= 0 ? rel / cfg_.bin_ns : -1;
  if (bin < bin_) return;  // a reordered packet of a closed bin: never its minimum
  if (bin > bin_ && bin_open_) close_bin();
  if (bin > bin_) {
    bin_ = bin;
    bin_open_ = false;
  }
  if (!bin_open_ || transit < bin_min_transit_) {
    bin_open_ = true;
    bin_min_transit_ = transit;
    bin_min_ts_ns_ = ts_ns;
  }
}

void DriftEstimator::close_bin() noexcept {
  const double x = static_cast<double>(bin_min_ts_ns_ - base_ts_ns_) * 1e-9;
  const double y = static_cast<double>(bin_min_transit_ - base_transit_) * 1e-9;
  const double outlier = static_cast<double>(cfg_.outlier_ns) * 1e-9;
  if (fit_.count() >= 3 && fit_.has_slope()) {
    const double r = y - fit_.at(x);
    if (std::fabs(r) > outlier) {
      const int side = r > 0 ? 1 : -1;
      if (held_side_ != side) held_ = 0;
      held_side_ = side;
      held_x_[held_] = x;
      held_y_[held_] = y;
      if (++held_ < 3) return;
      // Three in a row on one side: the delay stepped. Refit from the new level.
      ++steps_;
      fit_.reset();
      for (int i = 0; i < 3; ++i) fit_.add(held_x_[i], held_y_[i]);
      held_ = 0;
      held_side_ = 0;
      return;
    }
  }
  held_ = 0;
  held_side_ = 0;
  fit_.add(x, y);
  if (fit_.span() * 1e9 >= static_cast<double>(cfg_.min_span_ns) && fit_.has_slope()) {
    const double b = fit_.slope();
    const double s = -b / (1.0 + b);
    if (std::fabs(s) <= cfg_.max_abs_skew) {
      skew_ = s;
      valid_ = true;
    }
  }
}

}  // namespace rtpnode
