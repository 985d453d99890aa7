// This node's wall clock as the absolute timeline reads it (issue #19): NTP time (CLOCK_REALTIME,
// ns since 1900) against the loop's CLOCK_MONOTONIC, its steps, and how well it is synchronised.
//
// The two clocks are read back to back; their difference only changes when the wall clock is
// stepped (settimeofday, chrony's makestep, ADJ_SETOFFSET): NTP slewing adjusts the frequency
// of both alike. A change beyond kStepNs between two polls is a step.
//
// Synchronisation state comes from adjtimex(2) with modes 0 (read only), as chrony or ptp4l with
// phc2sys leave it: STA_UNSYNC in `status` (or a TIME_ERROR state) means nobody disciplines the
// clock; `maxerror` and `esterror` (µs) are the kernel's bounds on its error. A node whose
// clock is unsynchronised says so (stats, events) and keeps playing.
//
// Test seam: the adjtimex call is injected (constructor); when the environment variable
// RTPNODE_TEST_WALL_CLOCK_OFFSET_FILE names a file, the decimal number of milliseconds in it
// (re-read at each poll) is added to the wall clock, as a wrong or stepped clock would be --
// the system tests prove the mapping with it without touching this machine's clock.
//
// Thread: loop only.
#pragma once

#include <sys/timex.h>

#include <cstddef>
#include <cstdint>
#include <functional>
#include <string>

#include "rtp/units.hpp"

namespace rtpnode {

/// The wall clock's synchronisation state (adjtimex(2)).
struct ClockSyncState {
  bool known = false;      ///< adjtimex answered
  bool synced = false;     ///< disciplined: no STA_UNSYNC and not TIME_ERROR
  double maxerror_ms = 0;  ///< the kernel's maximum error bound, ms
  double esterror_ms = 0;  ///< the kernel's estimated error, ms
  int state = 0;           ///< adjtimex's return value (TIME_OK 0 .. TIME_ERROR 5)
};

/// ClockSyncState from one adjtimex(2) answer: `state` its return value, `tx` its struct.
/// Pure; any thread.
ClockSyncState clock_sync_state(int state, const timex& tx) noexcept;

/// One reading of another clock between two CLOCK_MONOTONIC readings, ns.
struct ClockBracket {
  std::int64_t mono_before = 0;
  std::int64_t other = 0;  ///< the other clock (e.g. CLOCK_REALTIME as NTP ns)
  std::int64_t mono_after = 0;
};

/// Other clock minus CLOCK_MONOTONIC from the bracket with the smallest monotonic span (the one
/// least disturbed by preemption), taking the other clock as read at that span's midpoint, ns.
/// The same technique as PTP_SYS_OFFSET (linux/ptp_clock.h). `n` >= 1. Any thread.
[[nodiscard]] std::int64_t tightest_bracket_offset(const ClockBracket* b, std::size_t n) noexcept;

class WallClock {
 public:
  /// adjtimex(2) with modes 0: fills the struct, returns the clock state (< 0: failed).
  using Adjtimex = std::function<int(timex&)>;
  /// A change of NTP - monotonic beyond this between polls is a step, ns.
  static constexpr std::int64_t kStepNs = 1'000'000;

  /// `adjtimex`: the system call (default) or a test's; `offset_file`: the test offset file
  /// (default: $RTPNODE_TEST_WALL_CLOCK_OFFSET_FILE; empty: none).
  explicit WallClock(Adjtimex adjtimex = {}, std::string offset_file = default_offset_file());

  /// Reads both clocks, the test offset and the sync state. Returns the step since the last
  /// poll (ns, > 0: the wall clock jumped ahead), 0 when none or at the first poll.
  std::int64_t poll();
  /// NTP time minus monotonic time as of the last poll (ns); polls once if never polled.
  [[nodiscard]] std::int64_t ntp_minus_monotonic_ns();
  /// The wall clock at monotonic time `mono_ns`, ns since 1900 (as of the last poll).
  [[nodiscard]] std::int64_t ntp_at(mono_ns_t mono_ns) {
    return mono_ns + ntp_minus_monotonic_ns();
  }
  /// The synchronisation state as of the last poll.
  [[nodiscard]] const ClockSyncState& sync_state() const noexcept { return sync_; }
  /// Steps seen.
  [[nodiscard]] std::uint64_t steps() const noexcept { return steps_; }
  /// TAI - UTC, s: the kernel's (adjtimex `tai`, set by chrony or ptp4l from the leap-second
  /// table) when it has one, else kDefaultTaiMinusUtcS. For RFC 7273 ptp media clocks.
  [[nodiscard]] int tai_minus_utc_s() const noexcept {
    return tai_ > 0 ? tai_ : kDefaultTaiMinusUtcS;
  }
  /// TAI - UTC since 2017-01-01 (IERS Bulletin C).
  static constexpr int kDefaultTaiMinusUtcS = 37;
  /// The test offset in effect, ns (0 without the test file).
  [[nodiscard]] std::int64_t test_offset_ns() const noexcept { return test_offset_ns_; }

  static std::string default_offset_file();
  /// NTP time (CLOCK_REALTIME, ns since 1900) minus CLOCK_MONOTONIC, read now, without the test
  /// offset: the tightest of kBrackets monotonic-realtime-monotonic brackets
  /// (tightest_bracket_offset). Any thread; a few vDSO clock reads, no allocation.
  static std::int64_t read_ntp_minus_monotonic_ns() noexcept;
  /// Brackets read per offset reading.
  static constexpr std::size_t kBrackets = 3;

 private:
  Adjtimex adjtimex_;
  std::string offset_file_;
  bool polled_ = false;
  std::int64_t ntp_minus_mono_ = 0;
  std::int64_t test_offset_ns_ = 0;
  std::uint64_t steps_ = 0;
  int tai_ = 0;
  ClockSyncState sync_;
};

}  // namespace rtpnode
