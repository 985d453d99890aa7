// Device health from the loop thread's side (issue #16 finding 3, and the base of #15's device
// reopening): the callback count must keep moving. No progress for kStallNs makes the device
// stalled (the backend says its stream is active: a frozen server or driver) or stopped (the
// backend stopped it: JACK server gone, USB DAC unplugged, a file that could not be written).
// Thread: loop only. Pure logic over readings: tests drive it with a fake clock.
#pragma once

#include <cstdint>
#include <optional>
#include <string>

#include "rtp/units.hpp"

namespace rtpnode {

class DeviceMonitor {
 public:
  enum class State : std::uint8_t {
    running,  ///< callbacks keep coming
    stalled,  ///< no callback for kStallNs while the backend says the stream is active
    stopped,  ///< the backend stopped the stream
  };
  /// Time without a callback before the device counts as lost (ten 48-kHz periods of 2400).
  static constexpr mono_ns_t kStallNs = 500'000'000;
  /// A change of state.
  struct Change {
    State state = State::running;
    double since_ms = 0;          ///< time since the callback count last moved
    std::uint64_t callbacks = 0;  ///< the count then
  };
  /// One reading, every loop tick: the callbacks processed so far, whether the backend says its
  /// stream is active, and the monotonic time now. Returns the new state when it changed.
  std::optional<Change> update(std::uint64_t callbacks, bool stream_active, mono_ns_t now) noexcept;
  [[nodiscard]] State state() const noexcept { return state_; }
  [[nodiscard]] bool up() const noexcept { return state_ == State::running; }

 private:
  State state_ = State::running;
  std::uint64_t seen_ = 0;
  mono_ns_t progress_ns_ = 0;  ///< when the callback count last moved (0: no reading yet)
};

/// The stderr line of a change: "audio device running again", or "audio device stalled: no
/// callback for 512 ms (the stream is active but silent)".
std::string describe(const DeviceMonitor::Change& c);
/// "running", "stalled", "stopped".
const char* to_string(DeviceMonitor::State s) noexcept;

}  // namespace rtpnode
