#include "node/device_monitor.hpp"

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
  }
  if (state == state_) return std::nullopt;
  state_ = state;
  return Change{state, static_cast<double>(now - progress_ns_) / 1e6, callbacks};
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
