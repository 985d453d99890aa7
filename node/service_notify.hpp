// The service manager's side channel (issue #15): systemd's notify protocol through libsystemd's
// sd_notify (sd_notify(3)). rtpnode runs as `Type=notify`: READY=1 once the device runs and the
// sockets receive (with a STATUS= line), STOPPING=1, and -- when the unit sets WatchdogSec= --
// WATCHDOG=1 only while the audio callback makes progress, so that systemd restarts a node whose
// audio has died even though its loop thread still runs. Without NOTIFY_SOCKET (not under systemd)
// every call does nothing.
//
// Thread: loop only.
#pragma once

#include <cstdint>
#include <string>

#include "rtp/units.hpp"

namespace rtpnode {

class ServiceNotifier {
 public:
  /// Reads the watchdog interval the service manager asked for (WATCHDOG_USEC), if any.
  ServiceNotifier();

  /// READY=1 with a STATUS= line.
  void ready(const std::string& status);
  void stopping();
  /// Called often (every loop tick) with the audio callback's count: sends WATCHDOG=1 every third
  /// of the interval, but only when the count moved since the previous one.
  /// `device_suspended`: the device was released on purpose (--idle-suspend): the loop is what
  /// must be alive, and it is (it is calling).
  void tick(mono_ns_t now, std::uint64_t callbacks, bool device_suspended = false);

  [[nodiscard]] bool watchdog_enabled() const noexcept { return interval_ns_ > 0; }
  [[nodiscard]] mono_ns_t watchdog_interval_ns() const noexcept { return interval_ns_; }

 private:
  mono_ns_t interval_ns_ = 0;
  mono_ns_t next_ns_ = 0;
  std::uint64_t last_callbacks_ = 0;
};

}  // namespace rtpnode
