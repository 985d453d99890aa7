// --event-log: what happened and when, one JSON object per line (JSON Lines), so a user can
// answer "why did it click at 12:03?". Each line has "time" (UTC, ISO 8601 with ms),
// "uptime_s" (since the device started) and "event"; the other keys depend on the event
// (README "Event log" lists them). Lines are written whole and flushed at once; a write error
// is reported once on stderr and the log is closed (playback goes on).
//
// Thread: loop only.
#pragma once

#include <cstdint>
#include <cstdio>
#include <string>

#include <nlohmann/json_fwd.hpp>

namespace rtpnode {

class EventLog {
 public:
  EventLog() = default;
  /// Opens `path` for appending; "" = no log. Throws std::runtime_error when it cannot.
  explicit EventLog(const std::string& path);
  ~EventLog();
  EventLog(const EventLog&) = delete;
  EventLog& operator=(const EventLog&) = delete;

  /// Writes `fields` (an object) with "time", "uptime_s" and "event" = `event` added first.
  void write(const char* event, double uptime_s, const nlohmann::json& fields);
  [[nodiscard]] bool enabled() const noexcept { return file_ != nullptr; }
  /// Events written so far.
  [[nodiscard]] std::uint64_t written() const noexcept { return written_; }

 private:
  std::FILE* file_ = nullptr;
  std::string path_;
  std::uint64_t written_ = 0;
};

}  // namespace rtpnode
