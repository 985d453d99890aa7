#include "node/wall_clock.hpp"

#include <time.h>

#include <cmath>
#include <cstdlib>
#include <fstream>

#include "node/sync_timeline.hpp"

namespace rtpnode {

ClockSyncState clock_sync_state(int state, const timex& tx) noexcept {
  ClockSyncState s;
  s.state = state;
  s.known = state >= 0;
  if (!s.known) return s;
  s.synced = (tx.status & STA_UNSYNC) == 0 && state != TIME_ERROR;
  s.maxerror_ms = static_cast<double>(tx.maxerror) / 1000.0;
  s.esterror_ms = static_cast<double>(tx.esterror) / 1000.0;
  return s;
}

std::string WallClock::default_offset_file() {
  const char* f = std::getenv("RTPNODE_TEST_WALL_CLOCK_OFFSET_FILE");
  return f != nullptr ? f : "";
}

WallClock::WallClock(Adjtimex adjtimex, std::string offset_file)
    : adjtimex_(adjtimex ? std::move(adjtimex)
                         : Adjtimex([](timex& tx) { return ::adjtimex(&tx); })),
      offset_file_(std::move(offset_file)) {}

std::int64_t WallClock::read_ntp_minus_monotonic_ns() noexcept {
  // Three brackets (monotonic, realtime, monotonic); the tightest one's realtime against its
  // midpoint. One pair read back to back is off by however long the thread was descheduled
  // between the two reads (up to a time slice on a loaded VM), and the absolute timeline would
  // carry that error until the next poll.
  ClockBracket b[kBrackets]{};
  for (ClockBracket& x : b) {
    timespec m0{}, w{}, m1{};
    clock_gettime(CLOCK_MONOTONIC, &m0);
    clock_gettime(CLOCK_REALTIME, &w);
    clock_gettime(CLOCK_MONOTONIC, &m1);
    auto ns = [](const timespec& t) {
      return static_cast<std::int64_t>(t.tv_sec) * 1'000'000'000 + t.tv_nsec;
    };
    x = {ns(m0), ns(w) + kNtpUnixOffsetS * 1'000'000'000, ns(m1)};
  }
  return tightest_bracket_offset(b, kBrackets);
}

std::int64_t tightest_bracket_offset(const ClockBracket* b, std::size_t n) noexcept {
  std::size_t best = 0;
  for (std::size_t i = 1; i < n; ++i)
    if (b[i].mono_after - b[i].mono_before < b[best].mono_after - b[best].mono_before) best = i;
  const std::int64_t mid = b[best].mono_before + (b[best].mono_after - b[best].mono_before) / 2;
  return b[best].other - mid;
}

std::int64_t WallClock::poll() {
  if (!offset_file_.empty()) {
    double ms = 0;
    std::ifstream in(offset_file_);
    if (in >> ms && std::isfinite(ms)) test_offset_ns_ = std::llround(ms * 1e6);
  }
  const std::int64_t d = read_ntp_minus_monotonic_ns() + test_offset_ns_;
  timex tx{};
  tx.modes = 0;
  sync_ = clock_sync_state(adjtimex_(tx), tx);
  tai_ = sync_.known ? tx.tai : 0;
  std::int64_t step = 0;
  if (polled_ && std::llabs(d - ntp_minus_mono_) > kStepNs) {
    step = d - ntp_minus_mono_;
    ++steps_;
  }
  polled_ = true;
  ntp_minus_mono_ = d;
  return step;
}

std::int64_t WallClock::ntp_minus_monotonic_ns() {
  if (!polled_) (void)poll();
  return ntp_minus_mono_;
}

}  // namespace rtpnode
