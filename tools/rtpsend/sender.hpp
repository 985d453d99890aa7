// rtpsend's pacing loop: every stream's packets are generated at their nominal departure
// (t0 + i x ptime / (1 + skew), absolute deadlines: sleep errors never accumulate), pass the
// fault injector, and leave at their send time; the earliest event of any stream goes next.
// RTCP SRs carry the exact sampling instant of a timestamp (RFC 3550 §6.4.1).
// Thread: the main thread; request_stop() may be called from a signal handler.
#pragma once

#include <cstdint>
#include <memory>
#include <random>
#include <vector>

#include "tools/rtpsend/options.hpp"
#include "tools/rtpsend/stream.hpp"

namespace rtpnode::rtpsend {

/// Async-signal-safe: the loop ends after its current event (SIGINT, SIGTERM).
void request_stop() noexcept;

class Sender {
 public:
  /// Fixes the start time (now + 2 ms, --start-at, aligned to --live-epoch's 10 ms grid) and the
  /// sender's NTP clock. Throws std::runtime_error naming a bad --start-at or --live-epoch.
  Sender(const Options& o, const Plan& p, std::vector<std::unique_ptr<Stream>>& streams,
         std::random_device& rd);
  /// Streams until every input ends, --duration passes or request_stop(); then RTCP BYE
  /// (unless --no-bye). Throws std::runtime_error when an encoder fails.
  void run();

 private:
  /// Nominal departure of packet i: every ptime on absolute deadlines, scaled by the skew.
  [[nodiscard]] std::int64_t nominal(const Stream& s, std::uint64_t i) const;
  /// RTCP SR + SDES (+ BYE): the RTP timestamp of packet `index` and the wall-clock instant its
  /// first frame was sampled (nominal, skew included).
  void send_sr(Stream& s, std::uint64_t index, bool bye);
  /// Encodes the packet due at `at`, applies scripted events and faults, queues it.
  void generate(Stream& s, std::int64_t at);
  /// Sends the stream's earliest queued packet.
  void send(Stream& s);

  const Options& o_;
  const Plan& p_;
  std::vector<std::unique_ptr<Stream>>& streams_;
  std::random_device& rd_;
  std::int64_t t0_ = 0;
  std::int64_t ntp_minus_mono_ = 0;  ///< sender wall clock (NTP scale) = monotonic + this
  std::int64_t end_ = INT64_MAX;
  double rate_scale_ = 1.0;
  std::vector<std::uint8_t> payload_ = std::vector<std::uint8_t>(65536);
};

}  // namespace rtpnode::rtpsend
