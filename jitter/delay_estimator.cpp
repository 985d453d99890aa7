#include "jitter/delay_estimator.hpp"

#include <algorithm>
#include <cmath>
#include <cstdlib>

namespace rtpnode {

namespace {
// Sliding-minimum ring: enough for 2 s of 2.5 ms packets with room to spare; if it is ever full the
// oldest candidate is dropped (the floor then rises a little early, which the histogram shift
// absorbs).
constexpr std::size_t kWindowCapacity = 2048;
// The histogram stores weights relative to a growing scale; rescale before doubles lose range.
constexpr double kRescaleAbove = 1e150;
}  // namespace

mono_ns_t DelayEstimator::projected(const Entry& e, mono_ns_t ts_ns) const noexcept {
  return e.transit +
         static_cast<mono_ns_t>(std::llround(slope_ * static_cast<double>(ts_ns - e.ts_ns)));
}

DelayEstimator::DelayEstimator(const DelayEstimatorConfig& cfg) : cfg_(cfg) {
  cfg_.buckets = std::max(cfg_.buckets, 2);
  cfg_.bucket_ns = std::max<mono_ns_t>(cfg_.bucket_ns, 1000);
  hist_.assign(static_cast<std::size_t>(cfg_.buckets), 0.0);
  window_.resize(kWindowCapacity);
}

void DelayEstimator::reset() {
  std::fill(hist_.begin(), hist_.end(), 0.0);
  top_ = 0;
  scale_ = 1.0;
  mass_ = 0.0;
  head_ = count_ = 0;
  newest_ts_ns_ = 0;
  route_change_ts_ns_ = std::numeric_limits<mono_ns_t>::min();
  have_floor_ = false;
  floor_ = 0;
  quantile_ns_ = 0;
  last_relative_ = 0;
  have_transit_ = false;
  jitter_ns_ = 0;
}

void DelayEstimator::rebase() {
  head_ = count_ = 0;
  newest_ts_ns_ = 0;
  route_change_ts_ns_ = std::numeric_limits<mono_ns_t>::min();
  have_floor_ = false;
  have_transit_ = false;
}

void DelayEstimator::shift_histogram(std::int64_t buckets_up) {
  if (buckets_up == 0 || mass_ <= 0) return;
  const auto n = static_cast<std::int64_t>(hist_.size());
  if (buckets_up > 0) {
    // Entries move up; what passes the last bucket piles up there.
    const std::int64_t s = std::min(buckets_up, n - 1);
    double top = 0;
    for (std::int64_t i = n - s; i < n; ++i) top += hist_[static_cast<std::size_t>(i)];
    std::move_backward(hist_.begin(), hist_.end() - s, hist_.end());
    std::fill(hist_.begin(), hist_.begin() + s, 0.0);
    hist_.back() += top;
    if (top_ > 0) top_ = std::min(hist_.size(), top_ + static_cast<std::size_t>(s));
  } else {
    // Entries move down; what passes bucket 0 piles up there (relative delay cannot be < 0).
    const std::int64_t s = std::min(-buckets_up, n - 1);
    double bottom = 0;
    for (std::int64_t i = 0; i < s; ++i) bottom += hist_[static_cast<std::size_t>(i)];
    std::move(hist_.begin() + s, hist_.end(), hist_.begin());
    std::fill(hist_.end() - s, hist_.end(), 0.0);
    hist_.front() += bottom;
    if (top_ > 0)
      top_ = std::max<std::size_t>(1, top_ - std::min(top_, static_cast<std::size_t>(s)));
  }
}

void DelayEstimator::recompute_quantile() {
  const double allowed_above = (1.0 - cfg_.quantile) * mass_;
  double above = 0;
  // Buckets from top_ up are empty: they add nothing above any bucket, so the scan starts below
  // them (a clean stream keeps its mass in the first few of 2000 buckets).
  for (std::size_t b = top_; b-- > 0;) {
    if (above + hist_[b] > allowed_above) {
      quantile_ns_ = static_cast<mono_ns_t>(b + 1) * cfg_.bucket_ns;
      return;
    }
    above += hist_[b];
  }
  quantile_ns_ = cfg_.bucket_ns;
}

void DelayEstimator::update(ext_ts_t ts, mono_ns_t arrival_ns, ext_ts_t weight_ticks) {
  const mono_ns_t ts_ns = ts_to_ns(ts);
  const mono_ns_t transit = arrival_ns - ts_ns;

  // RFC 3550 §6.4.1 / A.8, in arrival order.
  if (have_transit_) {
    const double d = std::fabs(static_cast<double>(transit - last_transit_));
    jitter_ns_ += (d - jitter_ns_) / 16.0;
  }
  have_transit_ = true;
  last_transit_ = transit;

  // Sliding minimum over RTP time. Packets older than the newest (reordered) are not candidates:
  // they arrived after a later packet, so they are never the fastest.
  if (count_ == 0 || ts_ns > newest_ts_ns_) {
    newest_ts_ns_ = ts_ns;
    // Entries compare by their transit projected to this packet's RTP time along the drift.
    while (count_ > 0 &&
           projected(window_[(head_ + count_ - 1) % kWindowCapacity], ts_ns) >= transit)
      --count_;
    if (count_ == kWindowCapacity) {
      head_ = (head_ + 1) % kWindowCapacity;
      --count_;
    }
    window_[(head_ + count_) % kWindowCapacity] = {ts_ns, transit};
    ++count_;
    while (count_ > 1 && window_[head_].ts_ns < newest_ts_ns_ - cfg_.floor_window_ns) {
      head_ = (head_ + 1) % kWindowCapacity;
      --count_;
    }
  }
  const mono_ns_t new_floor = projected(window_[head_], newest_ts_ns_);
  if (!have_floor_) {
    floor_ = new_floor;
    have_floor_ = true;
  } else if (new_floor != floor_) {
    const mono_ns_t moved = new_floor - floor_;
    if (moved >= -cfg_.route_change_ns) {
      // Keep entries meaning "transit above the floor": a rise of the floor lowers them.
      // Rounded to whole buckets; the remainder is below the histogram's resolution.
      shift_histogram(-(moved / cfg_.bucket_ns));
    } else {
      // Route change: packets sent before it are still in flight on the old, longer path and
      // arrive after newer ones. Their lateness is a one-off, not jitter: keep them out.
      route_change_ts_ns_ = ts_ns;
    }
    floor_ = new_floor;
  }

  const mono_ns_t relative = std::max<mono_ns_t>(0, transit - floor_);
  last_relative_ = relative;
  if (ts_ns < route_change_ts_ns_) return;
  const auto bucket = std::min<std::int64_t>(relative / cfg_.bucket_ns, cfg_.buckets - 1);

  // Exponential forgetting per RTP time: the whole histogram decays by exp(-w / memory) per
  // packet of duration w. Stored lazily: the new entry's weight grows instead.
  const double w_ns = static_cast<double>(ts_to_ns(std::max<ext_ts_t>(weight_ticks, 1)));
  scale_ *= std::exp(w_ns / static_cast<double>(cfg_.memory_ns));
  hist_[static_cast<std::size_t>(bucket)] += scale_;
  top_ = std::max(top_, static_cast<std::size_t>(bucket) + 1);
  mass_ += scale_;
  if (scale_ > kRescaleAbove) {
    for (double& h : hist_) h /= scale_;
    mass_ /= scale_;
    scale_ = 1.0;
  }
  recompute_quantile();
}

}  // namespace rtpnode
