#include "node/event_log.hpp"

#include <cerrno>
#include <cmath>
#include <chrono>
#include <cstring>
#include <ctime>
#include <iostream>
#include <nlohmann/json.hpp>
#include <stdexcept>

namespace rtpnode {

namespace {

std::string utc_now() {
  const auto now = std::chrono::system_clock::now();
  const std::time_t t = std::chrono::system_clock::to_time_t(now);
  const auto ms =
      std::chrono::duration_cast<std::chrono::milliseconds>(now.time_since_epoch()).count() % 1000;
  std::tm tm{};
  gmtime_r(&t, &tm);
  char buf[96];
  std::snprintf(buf, sizeof buf, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm.tm_year + 1900,
                tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, static_cast<int>(ms));
  return buf;
}

}  // namespace

EventLog::EventLog(const std::string& path) : path_(path) {
  if (path.empty()) return;
  file_ = std::fopen(path.c_str(), "a");
  if (file_ == nullptr)
    throw std::runtime_error("--event-log " + path + ": cannot open: " + std::strerror(errno));
}

EventLog::~EventLog() {
  if (file_ != nullptr) std::fclose(file_);
}

void EventLog::write(const char* event, double uptime_s, const nlohmann::json& fields) {
  if (file_ == nullptr) return;
  nlohmann::ordered_json line;
  line["time"] = utc_now();
  line["uptime_s"] = std::round(uptime_s * 1000.0) / 1000.0;
  line["event"] = event;
  for (auto it = fields.begin(); it != fields.end(); ++it) line[it.key()] = it.value();
  const std::string text =
      line.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace) + "\n";
  if (std::fwrite(text.data(), 1, text.size(), file_) != text.size() || std::fflush(file_) != 0) {
    std::cerr << "rtpnode: --event-log " << path_ << ": write failed (" << std::strerror(errno)
              << "); event log closed\n";
    std::fclose(file_);
    file_ = nullptr;
    return;
  }
  ++written_;
}

}  // namespace rtpnode
