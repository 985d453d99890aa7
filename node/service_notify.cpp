#include "node/service_notify.hpp"

#include <systemd/sd-daemon.h>

namespace rtpnode {

ServiceNotifier::ServiceNotifier() {
  std::uint64_t usec = 0;
  if (sd_watchdog_enabled(0, &usec) > 0) interval_ns_ = static_cast<mono_ns_t>(usec) * 1000;
}

void ServiceNotifier::ready(const std::string& status) {
  sd_notify(0, ("READY=1\nSTATUS=" + status).c_str());
}

void ServiceNotifier::stopping() {
  sd_notify(0, "STOPPING=1");
}

void ServiceNotifier::tick(mono_ns_t now, std::uint64_t callbacks, bool device_suspended) {
  if (interval_ns_ <= 0 || now < next_ns_) return;
  next_ns_ = now + interval_ns_ / 3;
  // The audio callback is not running (and should be): no ping.
  if (callbacks == last_callbacks_ && !device_suspended) return;
  last_callbacks_ = callbacks;
  sd_notify(0, "WATCHDOG=1");
}

}  // namespace rtpnode
