#include "rtp/ortp_log.hpp"

#include <ortp/logging.h>

#include <array>
#include <atomic>
#include <cstdarg>
#include <cstdio>
#include <mutex>

namespace rtpnode {

namespace {

constexpr std::size_t kMaxKinds = 64;  // beyond that, every new kind is counted, not printed

struct Filter {
  std::mutex mutex;  // oRTP logs from the loop thread and from rtpsend's threads, never audio
  std::array<const char*, kMaxKinds> printed{};
  std::size_t kinds = 0;
  std::atomic<std::uint64_t> lines{0};
  std::atomic<std::uint64_t> suppressed{0};
};

Filter& filter() {
  static Filter f;
  return f;
}

const char* level_name(BctbxLogLevel lev) {
  switch (lev) {
    case BCTBX_LOG_FATAL:
      return "fatal";
    case BCTBX_LOG_ERROR:
      return "error";
    case BCTBX_LOG_WARNING:
      return "warning";
    default:
      return "message";
  }
}

void on_log(const char* domain, BctbxLogLevel lev, const char* fmt, va_list args) {
  if (lev < BCTBX_LOG_WARNING || fmt == nullptr) return;
  Filter& f = filter();
  f.lines.fetch_add(1, std::memory_order_relaxed);
  {
    std::lock_guard<std::mutex> lock(f.mutex);
    for (std::size_t i = 0; i < f.kinds; ++i) {
      if (f.printed[i] == fmt) {
        f.suppressed.fetch_add(1, std::memory_order_relaxed);
        return;
      }
    }
    if (f.kinds == kMaxKinds) {
      f.suppressed.fetch_add(1, std::memory_order_relaxed);
      return;
    }
    f.printed[f.kinds++] = fmt;
  }
  char text[512];
  std::vsnprintf(text, sizeof text, fmt, args);
  std::fprintf(stderr, "rtpnode: %s %s: %s (repeats are counted, not printed)\n",
               domain ? domain : "oRTP", level_name(lev), text);
}

}  // namespace

void ortp_log_route() {
  ortp_set_log_handler(&on_log);
  ortp_set_log_level_mask(nullptr, BCTBX_LOG_WARNING | BCTBX_LOG_ERROR | BCTBX_LOG_FATAL);
}

std::uint64_t ortp_log_lines() noexcept {
  return filter().lines.load(std::memory_order_relaxed);
}
std::uint64_t ortp_log_suppressed() noexcept {
  return filter().suppressed.load(std::memory_order_relaxed);
}

}  // namespace rtpnode
