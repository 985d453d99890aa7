#include "node/device_monitor.hpp"

#include <algorithm>

namespace rtpnode {

std::optional<DeviceMonitor::Change> DeviceMonitor::update(std::uint64_t callbacks,
                                                           bool stream_active,
                                                           mono_ns_t now) noexcept {
  State state = State::running;
  if (callbacks != seen_ || progress_ns_ == 0) {
    seen_ = callbacks;
    progress_ns_ = now;
  } else if (now - progress_ns_ >= kStallNs) {
    state = stream_active ? State::stalled : State::stopped;
    if (now < grace_until_ns_) state = state_;  // a reopened stream that has not called yet
  }
  if (state == state_) return std::nullopt;
  state_ = state;
  if (state == State::running) {
    attempts_ = 0;
    backoff_ns_ = 0;
    next_retry_ns_ = 0;
    grace_until_ns_ = 0;
  }
  return Change{state, static_cast<double>(now - progress_ns_) / 1e6, callbacks};
}

bool DeviceMonitor::reopen_due(mono_ns_t now) const noexcept {
  if (state_ == State::running || now < grace_until_ns_ || now < next_retry_ns_) return false;
  // Once an attempt was made, the outage is ours to end: only the backoff paces the next.
  return state_ == State::stopped || attempts_ > 0 || now - progress_ns_ >= kReopenStalledNs;
}

void DeviceMonitor::reopen_failed(mono_ns_t now) noexcept {
  ++attempts_;
  backoff_ns_ = backoff_ns_ == 0 ? kRetryFirstNs : std::min(backoff_ns_ * 2, kRetryMaxNs);
  next_retry_ns_ = now + backoff_ns_;
}

void DeviceMonitor::reopened(mono_ns_t now) noexcept {
  ++attempts_;
  grace_until_ns_ = now + kStallNs;
  // If this stream never calls back, the next attempt follows the backoff as a failure would.
  backoff_ns_ = backoff_ns_ == 0 ? kRetryFirstNs : std::min(backoff_ns_ * 2, kRetryMaxNs);
  next_retry_ns_ = grace_until_ns_ + backoff_ns_;
}

std::string describe(const DeviceMonitor::Change& c) {
  if (c.state == DeviceMonitor::State::running) return "audio device running again";
  return std::string("audio device ") + to_string(c.state) + ": no callback for " +
         std::to_string(static_cast<int>(c.since_ms)) + " ms (" +
         (c.state == DeviceMonitor::State::stopped
              ? "the backend stopped the stream; is the JACK server gone?"
              : "the stream is active but silent") +
         ")";
}

const char* to_string(DeviceMonitor::State s) noexcept {
  switch (s) {
    case DeviceMonitor::State::running:
      return "running";
    case DeviceMonitor::State::stalled:
      return "stalled";
    case DeviceMonitor::State::stopped:
      return "stopped";
  }
  return "?";
}

}  // namespace rtpnode
