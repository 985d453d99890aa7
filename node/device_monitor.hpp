// Device health from the loop thread's side (issue #16 finding 3) and when to reopen a lost
// device (issue #15): the callback count must keep moving. No progress for kStallNs makes the
// device stalled (the backend says its stream is active: a frozen server or driver) or stopped
// (the backend stopped it: JACK server gone, USB DAC unplugged, a file that could not be
// written). A stopped device is reopened at once, a stalled one after kReopenStalledNs (a
// paused server may resume by itself); failed attempts back off from kRetryFirstNs, doubling,
// to kRetryMaxNs.
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
  /// Stall time after which a stalled (not stopped) device is reopened.
  static constexpr mono_ns_t kReopenStalledNs = 5'000'000'000;
  /// Wait after the first failed reopening; it doubles with each failure up to kRetryMaxNs.
  static constexpr mono_ns_t kRetryFirstNs = 100'000'000;
  static constexpr mono_ns_t kRetryMaxNs = 5'000'000'000;
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

  /// True when the device should be opened again now (see the file comment).
  [[nodiscard]] bool reopen_due(mono_ns_t now) const noexcept;
  /// An attempt at `now` failed: the next one is due after the backoff.
  void reopen_failed(mono_ns_t now) noexcept;
  /// A new stream was started at `now`: it has kStallNs to deliver a callback before it counts
  /// as stalled; the state turns running when the count moves.
  void reopened(mono_ns_t now) noexcept;
  /// A device resumed at `now` after a deliberate suspension (no reading was taken meanwhile):
  /// it has kStallNs to call back before it counts as stalled.
  void watch_from(mono_ns_t now) noexcept { progress_ns_ = now; }
  /// Attempts since the device was lost (0 while running).
  [[nodiscard]] int attempts() const noexcept { return attempts_; }
  /// When the callbacks last moved (the outage's start while the device is lost), ns.
  [[nodiscard]] mono_ns_t last_progress_ns() const noexcept { return progress_ns_; }

 private:
  State state_ = State::running;
  std::uint64_t seen_ = 0;
  mono_ns_t progress_ns_ = 0;     ///< when the callback count last moved (0: no reading yet)
  mono_ns_t grace_until_ns_ = 0;  ///< a reopened stream's first callback is awaited until then
  mono_ns_t next_retry_ns_ = 0;
  mono_ns_t backoff_ns_ = 0;
  int attempts_ = 0;
};

/// The stderr line of a change: "audio device running again", or "audio device stalled: no
/// callback for 512 ms (the stream is active but silent)".
std::string describe(const DeviceMonitor::Change& c);
/// "running", "stalled", "stopped".
const char* to_string(DeviceMonitor::State s) noexcept;

}  // namespace rtpnode
