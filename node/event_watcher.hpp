// The event log's watcher (--event-log, README "Event log"): every check it compares each source's
// statistics with the previous check and writes what happened -- underruns and their cause,
// concealment and late-packet bursts (written once each, when they end), device xruns, drift at
// its limit, a payload type change -- plus the events the node reports itself (joins, leaves,
// control). Thread: loop only. Pure bookkeeping over SourceStats: the tests drive it with
// scripted statistics.
#pragma once

#include <cstdint>
#include <string>
#include <unordered_map>
#include <vector>

#include <nlohmann/json_fwd.hpp>

#include "node/event_log.hpp"
#include "node/source.hpp"

namespace rtpnode {

/// "0x1a2b3c4d".
std::string hex32(std::uint32_t v);
/// Event-log fields naming a source: ssrc, port, remote, payload.
nlohmann::json source_id(const SourceStats& st);

class EventWatcher {
 public:
  /// `path`: --event-log ("" = none). Throws std::runtime_error when it cannot be opened.
  explicit EventWatcher(const std::string& path) : log_(path) {}
  [[nodiscard]] bool enabled() const noexcept { return log_.enabled(); }
  /// Events written so far.
  [[nodiscard]] std::uint64_t written() const noexcept { return log_.written(); }
  /// The monotonic time uptime_s counts from (the device start).
  void set_start(mono_ns_t started) noexcept { started_ns_ = started; }
  /// Writes one event at monotonic time `now`.
  void event(const char* name, const nlohmann::json& fields, mono_ns_t now);
  /// A source joined: its statistics are the baseline of the next check.
  void watch(const Source& s);
  /// A source left: no more checks of it.
  void forget(const Source* s) { watch_.erase(s); }
  /// Compares every source in `sources` with the previous check. `xruns`: the device's xrun
  /// count; `max_loop_gap`: the loop's largest lateness since the last check (how long after
  /// its render was due a tick came; issue #18: the loop sleeps until the next deadline);
  /// `lead_ms`: the render lead (a loop stall longer than it starves the callback).
  void check(mono_ns_t now, const std::vector<Source*>& sources, std::uint64_t xruns,
             mono_ns_t max_loop_gap, double lead_ms);

 private:
  /// Per source, what the event log compares between two checks.
  struct Watch {
    SourceStats last;
    bool in_concealment = false;  ///< a concealment burst is open
    double burst_start_s = 0;
    std::uint64_t burst_frames = 0, burst_lost = 0, burst_late = 0;
    bool stalled = false;      ///< a window of the burst had no packet for >= 100 ms
    bool device_xrun = false;  ///< the device reported an xrun during the burst
    double loop_stall_ms = 0;  ///< the longest loop-thread stall during the burst
    bool in_late = false;      ///< a late-packet burst is open
    double late_start_s = 0;
    std::uint64_t late_packets = 0;
  };
  EventLog log_;
  std::unordered_map<const Source*, Watch> watch_;
  std::uint64_t watched_xruns_ = 0;
  mono_ns_t started_ns_ = 0;
};

}  // namespace rtpnode
