// Exponentially weighted least-squares fit of a line y = a + b x, for clock-rate estimation
// (jitter/drift_estimator.hpp: sender vs monotonic clock; node/device_clock.hpp: device vs
// monotonic clock). Points are weighted exp(-(x_newest - x_i) / memory), so the fit follows slow
// changes (temperature moves a crystal by a few ppm over hours) and the noise of the slope falls
// as the window fills: with N points of noise sigma spread over a span T the slope's standard
// deviation is about sigma * sqrt(12 / N) / T.
//
// Numerics: sums are kept relative to an origin that moves along with the data (re-centred when
// x passes 4 memories from it), so days of input at nanosecond-scale y keep full precision.
//
// Thread: one owner. No allocation.
#pragma once

#include <cmath>

namespace rtpnode {

class LineFit {
 public:
  /// `memory`: forgetting distance in units of x (> 0).
  explicit LineFit(double memory) : memory_(memory > 0 ? memory : 1.0) {}

  /// Adds a point. `x` must not decrease (a smaller x is taken as equal to the newest).
  void add(double x, double y) noexcept {
    if (n_ == 0) {
      x0_ = x;
      y0_ = y;
      first_x_ = x;
      last_x_ = x;
    }
    if (x > last_x_) {
      const double f = std::exp(-(x - last_x_) / memory_);
      w_ *= f;
      sx_ *= f;
      sy_ *= f;
      sxx_ *= f;
      sxy_ *= f;
      last_x_ = x;
    }
    if (last_x_ - x0_ > 4 * memory_) recentre(last_x_);
    const double u = (x < last_x_ ? last_x_ : x) - x0_;
    const double v = y - y0_;
    w_ += 1;
    sx_ += u;
    sy_ += v;
    sxx_ += u * u;
    sxy_ += u * v;
    ++n_;
  }

  void reset() noexcept { *this = LineFit(memory_); }

  /// Points added since the last reset.
  [[nodiscard]] long count() const noexcept { return n_; }
  /// x distance covered since the last reset (newest - first).
  [[nodiscard]] double span() const noexcept { return n_ ? last_x_ - first_x_ : 0.0; }
  /// True when a slope can be computed (two distinct x values).
  [[nodiscard]] bool has_slope() const noexcept { return n_ >= 2 && variance() > 0; }
  /// Slope b (units of y per unit of x). 0 when !has_slope().
  [[nodiscard]] double slope() const noexcept {
    const double var = variance();
    if (n_ < 2 || var <= 0) return 0;
    return (sxy_ / w_ - (sx_ / w_) * (sy_ / w_)) / var;
  }
  /// The fitted line at `x`. With one point: that point's y.
  [[nodiscard]] double at(double x) const noexcept {
    if (n_ == 0) return 0;
    const double mx = sx_ / w_, my = sy_ / w_;
    return y0_ + my + slope() * (x - x0_ - mx);
  }

 private:
  [[nodiscard]] double variance() const noexcept {
    if (w_ <= 0) return 0;
    const double mx = sx_ / w_;
    return sxx_ / w_ - mx * mx;
  }
  void recentre(double x) noexcept {
    const double dx = x - x0_;
    // Sums over (u - dx): sxx - 2 dx sx + dx^2 w; sxy - dx sy.
    sxx_ += -2 * dx * sx_ + dx * dx * w_;
    sxy_ -= dx * sy_;
    sx_ -= dx * w_;
    x0_ = x;
  }

  double memory_;
  double x0_ = 0, y0_ = 0;  ///< origin of the sums
  double first_x_ = 0, last_x_ = 0;
  double w_ = 0, sx_ = 0, sy_ = 0, sxx_ = 0, sxy_ = 0;
  long n_ = 0;
};

}  // namespace rtpnode
