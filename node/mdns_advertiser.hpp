// Advertises the node's HTTP endpoint over mDNS / DNS-SD (RFC 6762, RFC 6763) so that a
// controller (Home Assistant, a script running `avahi-browse -r _rtpnode._tcp`) finds every room
// (issue #19). Through avahi-client: the host's avahi-daemon answers the queries, rtpnode only
// registers the service over D-Bus.
//
// The service is "_rtpnode._tcp" named by --name (default: the host name), on the HTTP port,
// with TXT records (RFC 6763 §6) txtvers=1, the paths of /stats, /metrics and /sources, the sync
// mode and the playout delay. A name taken by another node is renamed the way avahi proposes
// ("kitchen #2") and logged. An HTTP endpoint bound to a loopback address is advertised on the
// loopback interface only (a remote controller could not reach it anyway).
//
// Without avahi-daemon (or without a system bus) the node says so once on stderr and keeps
// playing; the client waits for the daemon (AVAHI_CLIENT_NO_FAIL; without a bus, a new try
// every 5 s) and registers when it appears, again after a daemon restart.
//
// Thread: loop only. avahi's poll interface runs on the node's libuv loop (LibuvAvahiPoll:
// uv_poll_t for D-Bus's socket, uv_timer_t for its timeouts), so no thread is added. Destroy
// before the loop's handles are closed.
#pragma once

#include <uv.h>

#include <cstdint>
#include <memory>
#include <ostream>
#include <string>
#include <vector>

namespace rtpnode {

class MdnsAdvertiser {
 public:
  struct Service {
    std::string name;              ///< instance name, UTF-8, <= 63 bytes (RFC 6763 §4.1.1)
    std::uint16_t port = 0;        ///< the HTTP port
    bool loopback_only = false;    ///< advertise on the loopback interface only
    std::vector<std::string> txt;  ///< "key=value" TXT entries
  };
  static constexpr const char* kServiceType = "_rtpnode._tcp";

  /// Starts registering `service` on `loop` (returns at once; registration completes on the
  /// loop). A missing daemon or bus is logged, not thrown.
  MdnsAdvertiser(uv_loop_t* loop, Service service, std::ostream& log);
  ~MdnsAdvertiser();
  MdnsAdvertiser(const MdnsAdvertiser&) = delete;
  MdnsAdvertiser& operator=(const MdnsAdvertiser&) = delete;

  /// "registering", "advertised", "waiting for avahi-daemon", "failed: REASON".
  [[nodiscard]] const std::string& state() const noexcept;
  /// The name in use (after a rename on collision).
  [[nodiscard]] const std::string& name() const noexcept;

  struct Impl;

 private:
  std::unique_ptr<Impl> impl_;
};

}  // namespace rtpnode
