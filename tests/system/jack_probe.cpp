#include "system/jack_probe.hpp"

#include <algorithm>
#include <cstring>
#include <ctime>
#include <stdexcept>

namespace rtpnode::systest {

namespace {
std::int64_t monotonic_ns() {
  timespec ts{};
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<std::int64_t>(ts.tv_sec) * 1'000'000'000 + ts.tv_nsec;
}
}  // namespace

JackProbe::JackProbe(const std::string& source_port, double max_seconds) {
  jack_status_t status{};
  client_ = jack_client_open("probe", JackNoStartServer, &status);
  if (client_ == nullptr) throw std::runtime_error("JackProbe: cannot open a JACK client");
  rate_ = static_cast<int>(jack_get_sample_rate(client_));
  samples_.assign(static_cast<std::size_t>(max_seconds * rate_), 0.0f);
  cycles_.resize(samples_.size() / 16 + 16);
  in_ = jack_port_register(client_, "in", JACK_DEFAULT_AUDIO_TYPE, JackPortIsInput, 0);
  if (in_ == nullptr) throw std::runtime_error("JackProbe: cannot register a port");
  jack_set_process_callback(client_, &JackProbe::process, this);
  jack_set_xrun_callback(
      client_,
      [](void* self) {
        ++static_cast<JackProbe*>(self)->xruns_;
        return 0;
      },
      this);
  // The offset between JACK's clock and CLOCK_MONOTONIC: the smallest of a few bracketed reads.
  std::int64_t best_span = INT64_MAX;
  for (int i = 0; i < 50; ++i) {
    const std::int64_t a = monotonic_ns();
    const auto j = static_cast<std::int64_t>(jack_get_time()) * 1000;
    const std::int64_t b = monotonic_ns();
    if (b - a < best_span) {
      best_span = b - a;
      jack_minus_monotonic_ns_ = j - (a + b) / 2;
    }
  }
  if (jack_activate(client_) != 0) throw std::runtime_error("JackProbe: cannot activate");
  if (jack_connect(client_, source_port.c_str(), jack_port_name(in_)) != 0)
    throw std::runtime_error("JackProbe: cannot connect " + source_port);
  jack_latency_range_t range{};
  jack_port_get_latency_range(jack_port_by_name(client_, source_port.c_str()), JackPlaybackLatency,
                              &range);
  latency_frames_ = range.max;
}

JackProbe::~JackProbe() {
  if (client_ != nullptr) {
    jack_deactivate(client_);
    jack_client_close(client_);
  }
}

void JackProbe::stop() {
  recording_ = false;
}

int JackProbe::process(jack_nframes_t n, void* arg) {
  auto* self = static_cast<JackProbe*>(arg);
  if (!self->recording_.load(std::memory_order_relaxed)) return 0;
  jack_nframes_t current_frames = 0;
  jack_time_t current_usecs = 0, next_usecs = 0;
  float period_usecs = 0;
  jack_get_cycle_times(self->client_, &current_frames, &current_usecs, &next_usecs, &period_usecs);
  const std::size_t first = self->frames_.load(std::memory_order_relaxed);
  const std::size_t c = self->ncycles_.load(std::memory_order_relaxed);
  if (first + n > self->samples_.size() || c >= self->cycles_.size()) return 0;
  const auto* in = static_cast<const float*>(jack_port_get_buffer(self->in_, n));
  std::memcpy(self->samples_.data() + first, in, n * sizeof(float));
  self->cycles_[c] = {first, current_usecs};
  self->ncycles_.store(c + 1, std::memory_order_release);
  self->frames_.store(first + n, std::memory_order_release);
  return 0;
}

std::int64_t JackProbe::dac_ns(std::size_t i) const {
  return dac_and_lateness_ns(i).first;
}

std::int64_t JackProbe::wake_lateness_ns(std::size_t i) const {
  return dac_and_lateness_ns(i).second;
}

std::pair<std::int64_t, std::int64_t> JackProbe::dac_and_lateness_ns(std::size_t i) const {
  const std::size_t n = ncycles_.load();
  const auto it =
      std::upper_bound(cycles_.begin(), cycles_.begin() + static_cast<std::ptrdiff_t>(n), i,
                       [](std::size_t v, const Cycle& c) { return v < c.first; });
  if (it == cycles_.begin()) return {0, 0};
  const auto c = static_cast<std::size_t>(it - cycles_.begin()) - 1;
  // A cycle's wake-up time is its ideal start plus the scheduler's lateness (tens of µs, a few
  // ms on a loaded VM); the dummy driver paces from an anchor, so lateness does not accumulate.
  // The ideal start is the earliest any neighbour implies at the nominal rate: the lower
  // envelope over kWindow cycles either side, stopping at a gap that is not one period (an xrun
  // re-anchors the driver). Rate error over the window: the driver's whole-µs period, 16 ppm.
  constexpr std::size_t kWindow = 24;
  const double ns_per_frame = 1e9 / rate_;
  auto implied = [&](std::size_t j) {
    return static_cast<double>(cycles_[j].usecs) * 1000.0 -
           (static_cast<double>(cycles_[j].first) - static_cast<double>(cycles_[c].first)) *
               ns_per_frame;
  };
  auto regular = [&](std::size_t j) {  // the gap from cycle j-1 to j is one period (±50 %)
    const double period =
        static_cast<double>(cycles_[j].first - cycles_[j - 1].first) * ns_per_frame;
    const double gap = static_cast<double>(cycles_[j].usecs - cycles_[j - 1].usecs) * 1000.0;
    return gap > 0.5 * period && gap < 1.5 * period;
  };
  double start = implied(c);
  for (std::size_t j = c; j > 0 && c - j < kWindow && regular(j); --j)
    start = std::min(start, implied(j - 1));
  for (std::size_t j = c + 1; j < n && j - c <= kWindow && regular(j); ++j)
    start = std::min(start, implied(j));
  const double offset_ns =
      static_cast<double>(i - cycles_[c].first + latency_frames_) * ns_per_frame;
  return {static_cast<std::int64_t>(start + offset_ns) - jack_minus_monotonic_ns_,
          static_cast<std::int64_t>(implied(c) - start)};
}

}  // namespace rtpnode::systest
